"""numpy arrays <-> kpdev ``Tensor`` for the CPython backends (the wire is little-endian).

CPython only (numpy); MicroPython boards never get this module.
"""

import numpy as np

from kpdev.protocol.tensors import Tensor


def array_of(t):
    """A read-only numpy view of a ``Tensor``'s bytes in its dtype and shape."""
    return np.frombuffer(t.data, dtype=np.dtype(t.dtype).newbyteorder("<")).reshape(t.shape)


def tensor_of(a, dtype=None):
    """A ``Tensor`` of array ``a`` (named ``dtype``, default the array's own), little-endian."""
    a = np.asarray(a)
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return Tensor(dtype or a.dtype.name, a.shape, a.tobytes())
