"""Tensors on the wire: RFC 8746 typed arrays inside a tag-40 multi-dimensional array.

A tensor is ``Tag(40, [shape, Tag(T, data)])`` where ``data`` is the raw little-endian row-major
bytes and ``T`` the typed-array tag of its dtype.  ``Tensor`` is the device-side view; the host
converts to and from numpy with the same tables.
"""

import struct

from kpdev.protocol import ops
from kpdev.protocol.cbor import Tag
from kpdev.protocol.errors import ProtocolError

TAG_NDARRAY = 40

_STRUCT = {
    "uint8": "B",
    "int8": "b",
    "uint16": "H",
    "int16": "h",
    "uint32": "I",
    "int32": "i",
    "uint64": "Q",
    "int64": "q",
    "float32": "f",
    "float64": "d",
}

# dtype name -> (RFC 8746 little-endian typed-array tag, item size)
DTYPES = {
    "uint8": (64, 1),
    "int8": (72, 1),
    "uint16": (69, 2),
    "int16": (77, 2),
    "uint32": (70, 4),
    "int32": (78, 4),
    "uint64": (71, 8),
    "int64": (79, 8),
    "float16": (84, 2),
    "float32": (85, 4),
    "float64": (86, 8),
}
TAG_DTYPES = {}
for _name in DTYPES:
    TAG_DTYPES[DTYPES[_name][0]] = _name


class Tensor:
    """A dtype name, a shape tuple and the raw little-endian bytes."""

    def __init__(self, dtype, shape, data):
        self.dtype = dtype
        self.shape = tuple(shape)
        self.data = data

    def count(self):
        """Number of elements the shape holds."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    def tolist(self):
        """The elements as a flat list of Python numbers (for the REPL)."""
        fmt = _STRUCT.get(self.dtype)
        if fmt is None:
            raise ProtocolError("cannot unpack %s" % self.dtype, ops.E_BAD_DTYPE)
        return list(struct.unpack("<%d%s" % (self.count(), fmt), self.data))

    @classmethod
    def from_list(cls, dtype, shape, values):
        """Pack Python numbers into a tensor of ``dtype`` and ``shape``."""
        fmt = _STRUCT.get(dtype)
        if fmt is None:
            raise ProtocolError("cannot pack %s" % dtype, ops.E_BAD_DTYPE)
        return cls(dtype, shape, struct.pack("<%d%s" % (len(values), fmt), *values))

    def __repr__(self):
        return "Tensor(%s, %r, %d bytes)" % (self.dtype, self.shape, len(self.data))


def itemsize(dtype):
    """Bytes per element of a dtype name."""
    entry = DTYPES.get(dtype)
    if entry is None:
        raise ProtocolError("unknown dtype %r" % (dtype,), ops.E_BAD_DTYPE)
    return entry[1]


def encode_tensor(t):
    """Tensor -> CBOR tag tree."""
    entry = DTYPES.get(t.dtype)
    if entry is None:
        raise ProtocolError("unknown dtype %r" % (t.dtype,), ops.E_BAD_DTYPE)
    return Tag(TAG_NDARRAY, [list(t.shape), Tag(entry[0], t.data)])


def decode_tensor(obj):
    """CBOR tag tree -> Tensor, checking the byte count against shape and dtype."""
    if not isinstance(obj, Tag) or obj.tag != TAG_NDARRAY:
        raise ProtocolError("tensor must be a tag-40 array", ops.E_BAD_REQUEST)
    body = obj.value
    if not isinstance(body, list) or len(body) != 2:
        raise ProtocolError("tensor body must be [shape, typed array]", ops.E_BAD_REQUEST)
    shape, typed = body
    if not isinstance(shape, list):
        raise ProtocolError("tensor shape must be a list", ops.E_BAD_REQUEST)
    for d in shape:
        if not isinstance(d, int) or isinstance(d, bool) or d < 0:
            raise ProtocolError("tensor dimensions must be non-negative ints", ops.E_BAD_REQUEST)
    if not isinstance(typed, Tag):
        raise ProtocolError("tensor data must be an RFC 8746 typed array", ops.E_BAD_REQUEST)
    dtype = TAG_DTYPES.get(typed.tag)
    if dtype is None:
        raise ProtocolError("unsupported typed-array tag %d" % typed.tag, ops.E_BAD_DTYPE)
    data = typed.value
    if not isinstance(data, (bytes, bytearray)):
        raise ProtocolError("typed array must hold bytes", ops.E_BAD_REQUEST)
    t = Tensor(dtype, shape, data)
    if t.count() * DTYPES[dtype][1] != len(data):
        raise ProtocolError(
            "tensor holds %d bytes, shape %r of %s needs %d"
            % (len(data), t.shape, dtype, t.count() * DTYPES[dtype][1]),
            ops.E_BAD_SHAPE,
        )
    return t
