"""numpy arrays <-> the wire's RFC 8746 tensors (cbor2 ``CBORTag`` trees)."""

from __future__ import annotations

import struct
import sys
from typing import TYPE_CHECKING

from cbor2 import CBORTag

from kpdev.host.errors import UsageError
from kpdev.protocol.tensors import DTYPES, TAG_DTYPES, TAG_NDARRAY

if TYPE_CHECKING:  # numpy is imported where tensors are handled: a command that sends none
    import numpy as np  # (info, ping, models...) starts without it


_WIRE: dict = {}  # numpy dtype -> (typed-array tag, item size)
_LITTLE: dict = {}  # typed-array tag -> (its little-endian numpy dtype, the dtype's name)


def to_wire(array: np.ndarray) -> CBORTag:
    """A numpy array as a tag-40 typed array, little-endian bytes."""
    import numpy as np

    array = np.asarray(array)
    dt = array.dtype
    entry = _WIRE.get(dt)  # dtype.name takes a microsecond or two: looked up once per dtype
    if entry is None:
        entry = DTYPES.get(dt.name)
        if entry is None:
            raise UsageError(f"dtype {dt.name} cannot travel: use one of {', '.join(DTYPES)}")
        _WIRE[dt] = entry
    if dt.byteorder == ">" or (dt.byteorder == "=" and sys.byteorder == "big"):
        array = array.astype(dt.newbyteorder("<"))
    # tobytes() is C order whatever the array's layout.
    return CBORTag(TAG_NDARRAY, [list(array.shape), CBORTag(entry[0], array.tobytes())])


def from_wire(obj) -> np.ndarray:
    """A tag-40 typed array from the device as a numpy array."""
    import numpy as np

    if not isinstance(obj, CBORTag) or obj.tag != TAG_NDARRAY:
        raise UsageError("device sent something that is not a tensor")
    shape, typed = obj.value
    known = _LITTLE.get(typed.tag)
    if known is None:
        name = TAG_DTYPES.get(typed.tag)
        if name is None:
            raise UsageError(f"device sent a tensor with unknown typed-array tag {typed.tag}")
        known = _LITTLE[typed.tag] = (np.dtype(name).newbyteorder("<"), name)
    return np.frombuffer(typed.value, dtype=known[0]).reshape(shape).astype(known[1], copy=False)


def nbytes(arrays) -> int:
    """Raw bytes of the tensors' data, the floor for bytes on the wire."""
    import numpy as np

    return sum(np.asarray(a).nbytes for a in arrays)


# -- INFER without the generic codec -------------------------------------------------------------
# The request and the reply of every inference, written and read directly: cbor2 builds and walks
# a tree of CBORTag objects for them, a third of the client's time per INFER.  A deliberate twin
# of ``cbor2.dumps(infer_body(...))`` and of ``cbor2.loads`` + ``from_wire``;
# tests/host/test_infer_codec.py holds them equal.  Anything else returns None: the generic way.
_HEADS: dict = {}  # (dtype, shape) -> the bytes of its tensor before the data


def _cbor_head(mt: int, n: int) -> bytes:
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return struct.pack(">BH", mt | 25, n)
    if n < 0x100000000:
        return struct.pack(">BI", mt | 26, n)
    return struct.pack(">BQ", mt | 27, n)


def _tensor_parts(array, parts: list) -> bool:
    import numpy as np

    array = np.asarray(array)
    dt = array.dtype
    key = (dt, array.shape)
    head = _HEADS.get(key)
    if head is None:
        entry = DTYPES.get(dt.name)
        if entry is None:
            return False  # the generic path says why it cannot travel
        size = entry[1]
        for d in array.shape:
            size *= d
        head = [b"\xd8\x28\x82", _cbor_head(0x80, len(array.shape))]
        head += [_cbor_head(0x00, d) for d in array.shape]
        head += [_cbor_head(0xC0, entry[0]), _cbor_head(0x40, size)]
        head = b"".join(head)
        if len(_HEADS) > 256:
            _HEADS.clear()
        _HEADS[key] = head
    if dt.byteorder == ">" or (dt.byteorder == "=" and sys.byteorder == "big"):
        array = array.astype(dt.newbyteorder("<"))
    parts.append(head)
    parts.append(array.tobytes())
    return True


def infer_payload(inputs, model: str | None = None) -> bytes | None:
    """``cbor2.dumps(infer_body(inputs, model))`` written directly, or None (then encode it so)."""
    if model is not None and type(model) is not str:
        return None
    parts = [b"\xa2\x61x" if model else b"\xa1\x61x"]
    if isinstance(inputs, (list, tuple)):
        parts.append(_cbor_head(0x80, len(inputs)))
        for a in inputs:
            if not _tensor_parts(a, parts):
                return None
    elif not _tensor_parts(inputs, parts):
        return None
    if model:
        name = model.encode()
        parts += [b"\x61m", _cbor_head(0x60, len(name)), name]
    return b"".join(parts)


def _arg(data: bytes, pos: int, mt: int) -> tuple[int, int]:
    ib = data[pos]
    if ib & 0xE0 != mt:
        raise ValueError("another item")
    ai = ib & 0x1F
    if ai < 24:
        return ai, pos + 1
    if ai == 24:
        return data[pos + 1], pos + 2
    if ai == 25:
        return struct.unpack_from(">H", data, pos + 1)[0], pos + 3
    if ai == 26:
        return struct.unpack_from(">I", data, pos + 1)[0], pos + 5
    if ai == 27:
        return struct.unpack_from(">Q", data, pos + 1)[0], pos + 9
    raise ValueError("another head")


def read_infer_reply(data: bytes):
    """(outputs as numpy arrays, device µs) of an INFER reply ``{"y": [...], "t": µs}``, read
    as ``cbor2.loads`` and ``from_wire`` read it; None for anything else."""
    import numpy as np

    try:
        if data[0] != 0xA2 or data[1] != 0x61 or data[2] != 0x79:  # {"y":
            return None
        count, pos = _arg(data, 3, 0x80)
        ys = []
        for _ in range(count):
            if data[pos] != 0xD8 or data[pos + 1] != 40 or data[pos + 2] != 0x82:
                return None
            rank, pos = _arg(data, pos + 3, 0x80)
            shape = []
            for _ in range(rank):
                d, pos = _arg(data, pos, 0x00)
                shape.append(d)
            tag, pos = _arg(data, pos, 0xC0)
            size, pos = _arg(data, pos, 0x40)
            known = _LITTLE.get(tag)
            if known is None:
                name = TAG_DTYPES.get(tag)
                if name is None:
                    return None
                known = _LITTLE[tag] = (np.dtype(name).newbyteorder("<"), name)
            n = 1
            for d in shape:
                n *= d
            if pos + size > len(data) or n * known[0].itemsize != size:
                return None  # from_wire would refuse it: its way
            a = np.frombuffer(data, dtype=known[0], count=n, offset=pos)
            ys.append(a.reshape(shape).astype(known[1], copy=False))
            pos += size
        if data[pos] != 0x61 or data[pos + 1] != 0x74:  # "t":
            return None
        t, pos = _arg(data, pos + 2, 0x00)
        if pos != len(data):
            return None
        return ys, t
    except (ValueError, IndexError, struct.error):
        return None
