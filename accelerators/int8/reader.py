"""Read a TFLite flatbuffer without the flatbuffers package: tensors, buffers, operators.

Device code (MicroPython and CPython), needed only while a model loads.  The model is read
through ``interp.Source``: bytes held in RAM, or a file that stays on the filesystem, read
through a small page cache; constant tensors are only located (offset and size), so a kernel
can read its weights when it runs.  Every offset is bounds-checked: a damaged file raises
``ValueError``, never reads outside the model.

Field numbers follow tensorflow/lite/schema/schema.fbs (a table's field i has its offset at
vtable slot 4 + 2 * i).
"""

import gc

from kpdev.accelerators.int8.interp import OpInfo, Table, TensorInfo
from kpdev.accelerators.int8.kcommon import raw_array
from kpdev.protocol.compat import MICROPYTHON

# TensorType -> (dtype name, item size)
TYPES = {
    0: ("float32", 4),
    2: ("int32", 4),
    3: ("uint8", 1),
    4: ("int64", 8),
    6: ("bool", 1),
    7: ("int16", 2),
    9: ("int8", 1),
}


class Model:
    """The parts of a TFLite model an interpreter needs (subgraph 0)."""

    def __init__(self, src):
        self.src = src
        if src.size < 8 or bytes(src.read(4, 4)) != b"TFL3":
            raise ValueError("not a TFLite model (no TFL3 file identifier)")
        root = Table(src, src.unpack("<I", 0, 4))
        self.version = root.u32(0)
        self.description = root.string(3)
        codes = []
        for oc in root.tables(1):
            code = max(oc.i8(0), oc.i32(3))
            if code == 32:  # CUSTOM
                code = "custom:" + oc.string(1)
            codes.append((code, oc.i32(2, 1)))
        # Tables are made one at a time, as they are read: a model has a buffer and a tensor
        # table per tensor, and a list of them all would be load-time heap for nothing.
        buffers = root.vector(4)
        subgraphs = root.vector(2)
        if not subgraphs[1]:
            raise ValueError("the model has no subgraph")
        self.subgraphs = subgraphs[1]
        sg = _table_at(src, subgraphs, 0)
        self.inputs = sg.ints(1)
        self.outputs = sg.ints(2)
        graph = self.inputs + self.outputs
        tensors = sg.vector(0)
        self.tensors = []
        for k in range(tensors[1]):
            info = _tensor(_table_at(src, tensors, k), buffers, src)
            if k not in graph:
                # Only the graph's inputs and outputs keep their names (the io spec reports
                # them); other tensors are named by index in messages: names are long.
                info.name = k
            self.tensors.append(info)
            if MICROPYTHON:
                # Each tensor's parse leaves garbage: collected now, what the next one keeps
                # goes next to this one's, and the heap stays in one piece for the arena.
                gc.collect()
        n = len(self.tensors)
        self.ops = []
        for op in sg.tables(3):
            index = op.u32(0)
            if index >= len(codes):
                raise ValueError("operator code index %d out of range" % index)
            code, version = codes[index]
            ins = op.ints(1)
            outs = op.ints(2)
            for t in ins + outs:
                if t >= n or t < -1:
                    raise ValueError("tensor index %d out of range" % t)
            self.ops.append(OpInfo(code, version, ins, outs, op.table(4)))
        for t in self.inputs + self.outputs:
            if not 0 <= t < n:
                raise ValueError("graph tensor index %d out of range" % t)


def _table_at(src, vector, k):
    # The k-th table of a vector of tables given as (position of its first offset, length).
    p = vector[0] + 4 * k
    return Table(src, p + src.unpack("<I", p, 4))


def _zeros(view):
    for b in view:
        if b:
            return False
    return True


def _tensor(t, buffers, src):
    info = TensorInfo()
    info.shape = t.ints(0)
    info.type = t.i8(1)
    if info.type in TYPES:
        info.dtype, info.itemsize = TYPES[info.type]
    else:
        info.dtype, info.itemsize = "type%d" % info.type, 1
    info.name = t.string(3)
    b = t.u32(2)
    if b >= buffers[1] and b != 0:
        raise ValueError("buffer index %d out of range" % b)
    if b < buffers[1]:
        buf = _table_at(src, buffers, b)
        start, size = buf.vector(0)
        if size:
            info.const = (start, size)
        elif buf.has(1):  # data outside the flatbuffer, at an offset from the file's start
            off = buf.scalar(1, "<Q", 8)
            size = buf.scalar(2, "<Q", 8)
            if off > 1 and size:
                if off + size > src.size:
                    raise ValueError("buffer %d lies outside the model" % b)
                info.const = (off, size)
    q = t.table(4)
    if q is not None:
        # Arrays, not lists: a per-channel tensor has a scale and a zero point per channel.
        # No kernel reads an int32 tensor's (a bias's) quantization: one entry tells it has
        # one.  Zero points all alike (a filter's zeros) are kept once: kernels read the first.
        start, n = q.vector(2)
        if n:
            if info.type == 2:
                n = 1
            info.scales = raw_array("I", src.read(start, 4 * n))
        start, n = q.vector(3)
        if n:
            if info.type == 2 or _zeros(src.read(start, 8 * n)):
                n = 1
            info.zero_points = raw_array("q", src.read(start, 8 * n))
        info.qdim = q.i32(6)
    return info
