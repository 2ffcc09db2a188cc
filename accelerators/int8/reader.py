"""Read a TFLite flatbuffer without the flatbuffers package: tensors, buffers, operators.

Device code (MicroPython and CPython), needed only while a model loads.  The model is read
through ``interp.Source``: bytes held in RAM, or a file that stays on the filesystem, read
through a small page cache; constant tensors are only located (offset and size), so a kernel
can read its weights when it runs.  Every offset is bounds-checked: a damaged file raises
``ValueError``, never reads outside the model.

Field numbers follow tensorflow/lite/schema/schema.fbs (a table's field i has its offset at
vtable slot 4 + 2 * i).
"""

import struct

from kpdev.accelerators.int8.interp import OpInfo, Table, TensorInfo

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
        buffers = root.tables(4)
        subgraphs = root.tables(2)
        if not subgraphs:
            raise ValueError("the model has no subgraph")
        self.subgraphs = len(subgraphs)
        sg = subgraphs[0]
        self.tensors = []
        for t in sg.tables(0):
            self.tensors.append(_tensor(t, buffers, src))
        n = len(self.tensors)
        self.inputs = sg.ints(1)
        self.outputs = sg.ints(2)
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
    if b >= len(buffers) and b != 0:
        raise ValueError("buffer index %d out of range" % b)
    if b < len(buffers):
        buf = buffers[b]
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
        start, n = q.vector(2)
        if n:
            info.scales = list(struct.unpack("<%dI" % n, src.read(start, 4 * n)))
        start, n = q.vector(3)
        if n:
            info.zero_points = list(struct.unpack("<%dq" % n, src.read(start, 8 * n)))
        info.qdim = q.i32(6)
    return info
