"""An int8 TFLite interpreter whose outputs are bit-identical to TFLite Micro's reference kernels.

Device code (MicroPython and CPython).  This module is what stays in RAM while a model runs:
the tensor and operator records, the model source, and ``Interpreter.invoke``.  Loading
(loader.py: parse the flatbuffer with reader.py, give every operator to its kernel module's
``prepare``, plan the arena) needs more code, which a small board drops again once the model
is loaded.  Kernel modules are imported only for the operators a model uses.

Kernel modules (``k_*.py``) export ``prepare(ctx, op) -> params`` and ``run(ctx, op, params)``;
``ctx`` is the ``Interpreter``: ``ctx.t(i)`` is tensor i's ``TensorInfo`` (in ``prepare`` only),
``ctx.const(i)`` its constant bytes, ``ctx.buf[i]`` its arena slice (valid in ``run``),
``ctx.loops`` the inner loops (viper or plain Python, see loops_plain.py).  ``run`` sees ``op``
as an ``Op`` (code, inputs, outputs): the options table and the ``TensorInfo`` records are
load-time data, dropped once the model is prepared (``Interpreter.compact``), so a loaded model
holds per tensor two ints of an array and a buffer, and per operator a small tuple.
"""

import struct
import sys
from array import array

try:
    from collections import namedtuple
except ImportError:
    from ucollections import namedtuple

from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError

_E_MODEL_LOAD = const(23)
_E_INFER = const(24)

_PAGE = const(512)

# BuiltinOperator code -> kernel module (under kpdev.accelerators.int8).
KERNELS = {
    0: "k_arith",  # ADD
    1: "k_pool",  # AVERAGE_POOL_2D
    2: "k_data",  # CONCATENATION
    3: "k_conv",  # CONV_2D
    4: "k_conv",  # DEPTHWISE_CONV_2D
    6: "k_quant",  # DEQUANTIZE
    9: "k_fc",  # FULLY_CONNECTED
    14: "k_softmax",  # LOGISTIC
    17: "k_pool",  # MAX_POOL_2D
    18: "k_arith",  # MUL
    22: "k_data",  # RESHAPE
    25: "k_softmax",  # SOFTMAX
    34: "k_data",  # PAD
    40: "k_arith",  # MEAN
    45: "k_data",  # STRIDED_SLICE
    77: "k_data",  # SHAPE
    83: "k_data",  # PACK
    114: "k_quant",  # QUANTIZE
}


def op_name(code):
    """The operator's schema name (loads the name table only when asked)."""
    from kpdev.accelerators.int8.opnames import name

    return name(code)


def word_bits():
    """The machine word the native emitter computes in here: 32 or 64 bits."""
    return 32 if sys.maxsize < (1 << 62) else 64


def select_loops(kernels="auto"):
    """The inner-loop module: viper where this MicroPython has the native emitter, else plain.

    The viper loops come in two variants, loops_viper (64-bit word) and loops_viper32.

    ``kernels`` is "auto", "viper" (fail unless available) or "plain".
    """
    if kernels not in ("auto", "viper", "plain"):
        raise DeviceError("kernels must be auto, viper or plain, not %r" % kernels, _E_MODEL_LOAD)
    if kernels != "plain":
        try:
            # The word size first: only the module that can run here is imported (a .mpy's
            # native code is in the heap once imported, whether its functions run or not).
            if word_bits() == 32:
                from kpdev.accelerators.int8 import loops_viper32 as loops
            else:
                from kpdev.accelerators.int8 import loops_viper as loops
            return loops
        except (ImportError, SyntaxError, ValueError, AttributeError, NotImplementedError) as e:
            if kernels == "viper":
                raise DeviceError("viper kernels are not available here: %s" % e, _E_MODEL_LOAD)
    from kpdev.accelerators.int8 import loops_plain

    return loops_plain


class Source:
    """Random access to the model's bytes: ``data`` in RAM, or a file read through a page."""

    def __init__(self, data=None, path=None):
        self.data = data
        self.path = path
        self.file = None
        if data is not None:
            self.size = len(data)
        else:
            self.file = open(path, "rb")
            self.file.seek(0, 2)
            self.size = self.file.tell()
            self._page = b""
            self._start = 0

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None

    def read(self, pos, n):
        """``n`` bytes at ``pos`` (a memoryview into the model when it is in RAM)."""
        if pos < 0 or n < 0 or pos + n > self.size:
            raise ValueError("offset %d+%d outside the %d-byte model" % (pos, n, self.size))
        if self.data is not None:
            return memoryview(self.data)[pos : pos + n]
        if self.file is None:
            raise ValueError("model file is closed")
        start = self._start
        if pos >= start and pos + n <= start + len(self._page):
            return self._page[pos - start : pos - start + n]
        self.file.seek(pos)
        if n > _PAGE:
            return self.file.read(n)
        self._page = self.file.read(_PAGE)
        self._start = pos
        return self._page[:n]

    def readinto(self, pos, buf):
        """Fill ``buf`` with the bytes at ``pos`` (weights of a file-backed model)."""
        n = len(buf)
        if pos < 0 or pos + n > self.size:
            raise ValueError("offset %d+%d outside the %d-byte model" % (pos, n, self.size))
        if self.data is not None:
            buf[:] = memoryview(self.data)[pos : pos + n]
            return
        self.file.seek(pos)
        got = self.file.readinto(buf)
        if got != n:
            raise ValueError("short read of the model file")

    def u8(self, pos):
        return self.read(pos, 1)[0]

    def unpack(self, fmt, pos, n):
        if self.data is not None:
            # Straight from the bytes: no view object per field read (load-time garbage that
            # would leave a small heap in pieces).
            if pos < 0 or pos + n > self.size:
                raise ValueError("offset %d+%d outside the %d-byte model" % (pos, n, self.size))
            return struct.unpack_from(fmt, self.data, pos)[0]
        return struct.unpack(fmt, self.read(pos, n))[0]


class Table:
    """One flatbuffer table at ``pos``: read its fields by number."""

    def __init__(self, src, pos):
        self.src = src
        self.pos = pos
        vt = pos - src.unpack("<i", pos, 4)
        self._vt = vt
        self._vlen = src.unpack("<H", vt, 2)

    def _field(self, i):
        slot = 4 + 2 * i
        if slot + 2 > self._vlen:
            return 0
        off = self.src.unpack("<H", self._vt + slot, 2)
        return self.pos + off if off else 0

    def has(self, i):
        return self._field(i) != 0

    def scalar(self, i, fmt, size, default=0):
        p = self._field(i)
        return self.src.unpack(fmt, p, size) if p else default

    def i8(self, i, default=0):
        return self.scalar(i, "<b", 1, default)

    def u8(self, i, default=0):
        return self.scalar(i, "<B", 1, default)

    def i32(self, i, default=0):
        return self.scalar(i, "<i", 4, default)

    def u32(self, i, default=0):
        return self.scalar(i, "<I", 4, default)

    def f32(self, i, default=0.0):
        return self.scalar(i, "<f", 4, default)

    def _target(self, i):
        p = self._field(i)
        if not p:
            return 0
        return p + self.src.unpack("<I", p, 4)

    def table(self, i):
        p = self._target(i)
        return Table(self.src, p) if p else None

    def vector(self, i):
        """(position of the first element, length) of a vector field, or (0, 0)."""
        p = self._target(i)
        if not p:
            return 0, 0
        return p + 4, self.src.unpack("<I", p, 4)

    def ints(self, i, fmt="<i", size=4):
        start, n = self.vector(i)
        if not n:
            return []
        raw = self.src.read(start, n * size)
        return list(struct.unpack("<%d%s" % (n, fmt[1]), raw))

    def tables(self, i):
        start, n = self.vector(i)
        out = []
        for k in range(n):
            p = start + 4 * k
            out.append(Table(self.src, p + self.src.unpack("<I", p, 4)))
        return out

    def string(self, i):
        start, n = self.vector(i)
        if not n:
            return ""
        return str(bytes(self.src.read(start, n)), "utf-8")


class TensorInfo:
    """A tensor of the graph: shape, dtype, quantization and where constant data lives."""

    def __init__(self):
        self.name = ""
        self.shape = []
        self.type = 0
        self.dtype = "float32"
        self.itemsize = 4
        self.const = None  # (offset in the model, byte size) of constant data, else None
        self.scales = []  # float32 bit patterns
        self.zero_points = []
        self.qdim = 0

    def size(self):
        n = 1
        for d in self.shape:
            n *= d
        return n

    def nbytes(self):
        return self.size() * self.itemsize

    def scale_bits(self):
        return self.scales[0] if self.scales else 0

    def zero_point(self):
        return self.zero_points[0] if self.zero_points else 0


class OpInfo:
    """An operator of the graph: builtin code, tensor indices and its options table."""

    def __init__(self, code, version, inputs, outputs, options):
        self.code = code
        self.version = version
        self.inputs = inputs
        self.outputs = outputs
        self.options = options  # Table or None


# A prepared operator as ``run`` sees it: builtin code, input and output tensor indices (tuples).
Op = namedtuple("Op", ("code", "inputs", "outputs"))


class Interpreter:
    """A loaded model: prepared operators, planned arena, constants in RAM or in the file.

    Built by ``loader.load``; kernels see it as ``ctx``.
    """

    def __init__(self, src, loops, tensors, inputs, outputs, stream):
        self.src = src
        self.loops = loops
        self.tensors = tensors  # TensorInfo records: while loading only (see compact)
        self.inputs = inputs
        self.outputs = outputs
        self.stream = stream
        self.buf = [None] * len(tensors)
        # Where each tensor's constant data lies in the model: offset (-1: not a constant) and
        # byte size, two arrays rather than a field of an object per tensor.
        self.const_at = array("i", [-1] * len(tensors))
        self.const_len = array("i", [0] * len(tensors))
        for i in range(len(tensors)):
            c = tensors[i].const
            if c is not None:
                self.const_at[i] = c[0]
                self.const_len[i] = c[1]
        self.steps = []
        self.arena = None
        self.arena_size = 0
        self.reserved = False  # the arena is the block the agent reserved at start
        self.scratch = None
        self.ops = {}  # builtin operator code -> count, for model info

    # -- for kernels ------------------------------------------------------------------------

    def t(self, i):
        return self.tensors[i]

    def const(self, i):
        """Tensor i's constant bytes (read from the file into scratch when weights stream)."""
        b = self.buf[i]
        if b is not None:
            return b
        off = self.const_at[i]
        if off < 0:
            raise ValueError("tensor %d has no data" % i)
        size = self.const_len[i]
        view = memoryview(self.scratch)[:size] if self.scratch is not None else bytearray(size)
        self.src.readinto(off, view)
        return view

    def is_const(self, i):
        return i >= 0 and self.const_at[i] >= 0

    def compact(self):
        """Drop the load-time records: ``run`` needs only the arrays, buffers and steps."""
        self.tensors = None

    # -- running ----------------------------------------------------------------------------

    def invoke(self, inputs):
        """Run the graph on a list of input byte strings; returns output byte strings."""
        for k in range(len(self.inputs)):
            dst = self.buf[self.inputs[k]]
            if inputs[k] is not dst:  # staged by INFER_INPUT: already in place
                dst[:] = inputs[k]
        for module, op, params in self.steps:
            try:
                module.run(self, op, params)
            except DeviceError:
                raise
            except (ValueError, IndexError, OverflowError, TypeError, ZeroDivisionError) as e:
                raise DeviceError("operator %s failed: %s" % (op_name(op.code), e), _E_INFER)
        return [bytes(self.buf[i]) for i in self.outputs]

    def close(self):
        self.src.close()
        if self.reserved:
            from kpdev.accelerators.base import give_back_arena

            give_back_arena()
            self.reserved = False
        self.arena = None
        self.buf = None
        self.steps = None


def supported():
    """Names of the operators tflite_int8 runs."""
    return [op_name(code) for code in sorted(KERNELS)]
