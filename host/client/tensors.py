"""numpy arrays <-> the wire's RFC 8746 tensors (cbor2 ``CBORTag`` trees)."""

from __future__ import annotations

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
