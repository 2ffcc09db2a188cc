"""numpy arrays <-> kpdev ``Tensor`` for the CPython backends (the wire is little-endian), and
the tensor specs of the TFLite interpreters' tensor details.

CPython only (numpy); MicroPython boards never get this module.
"""

import sys

import numpy as np

from kpdev.protocol.tensors import Tensor

_LITTLE = {}  # dtype name -> its little-endian numpy dtype


def _little(name):
    dt = _LITTLE.get(name)
    if dt is None:
        dt = _LITTLE[name] = np.dtype(name).newbyteorder("<")
    return dt


def array_of(t):
    """A read-only numpy view of a ``Tensor``'s bytes in its dtype and shape."""
    return np.frombuffer(t.data, dtype=_little(t.dtype)).reshape(t.shape)


def tensor_of(a, dtype=None):
    """A ``Tensor`` of array ``a`` (named ``dtype``, default the array's own), little-endian."""
    a = np.asarray(a)
    order = a.dtype.byteorder
    if order == ">" or (order == "=" and sys.byteorder == "big"):
        a = a.astype(a.dtype.newbyteorder("<"))
    return Tensor(dtype or a.dtype.name, a.shape, a.tobytes())


def tflite_spec(details, name=None):
    """A kpdev tensor spec from a TFLite interpreter's tensor details (LiteRT, tflite-micro).

    ``name`` overrides the details' own (tflite-micro's details carry none).
    """
    q = details["quantization_parameters"]
    scales = [float(s) for s in q["scales"]]
    zero_points = [int(z) for z in q["zero_points"]]
    spec = {
        "name": details["name"] if name is None else name,
        "dtype": np.dtype(details["dtype"]).name,
        "shape": [int(d) for d in details["shape"]],
        "scale": None,
        "zero_point": None,
    }
    if len(scales) == 1 and scales[0] != 0.0:
        spec["scale"] = scales[0]
        spec["zero_point"] = zero_points[0] if zero_points else 0
    elif len(scales) > 1:
        spec["scale"] = scales
        spec["zero_point"] = zero_points
        spec["axis"] = int(q["quantized_dimension"])
    return spec
