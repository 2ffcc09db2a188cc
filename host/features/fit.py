"""Fitting a spec to training data: the scaling (standard or min-max) and the output
quantization (scale and zero point of the int8 or uint8 model input)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kpdev.host.errors import UsageError
from kpdev.host.features.spec import OUTPUT_RANGES, Spec, parse
from kpdev.host.features.transforms import (
    apply_scale,
    as_windows,
    compute_features,
    feature_matrix,
)


def _training_features(s: Spec, data: Any) -> np.ndarray:
    a = np.asarray(data)
    if a.ndim == 3:
        return compute_features(s, as_windows(s, a))
    return feature_matrix(s, a, "features")


def fit_scale(spec: dict, windows_or_features: Any, kind: str = "standard") -> dict:
    """The ``scale`` entry fitted on training data (windows ``(n, size, axes)`` or raw features).

    ``standard``: each feature's mean and population standard deviation; ``minmax``: its
    smallest and largest value.  The spec's own ``scale`` is not used.
    """
    s = parse(spec)
    f = _training_features(s, windows_or_features)
    if f.shape[0] == 0:
        raise UsageError("fit_scale: no training data")
    if kind == "standard":
        return {"kind": "standard", "mean": f.mean(0).tolist(), "std": f.std(0).tolist()}
    if kind == "minmax":
        return {"kind": "minmax", "min": f.min(0).tolist(), "max": f.max(0).tolist()}
    raise UsageError("fit_scale: kind is %r; it must be standard or minmax" % (kind,))


def fit_output(spec: dict, scaled_features: Any, dtype: str = "int8") -> dict:
    """The ``output`` entry for ``dtype``: a scale and zero point covering the scaled features.

    The range covered always includes 0 (so 0.0 is exactly a quantized value).  Raw windows
    ``(n, size, axes)`` are accepted too and go through the spec's features and scale.  A spec
    whose output has an encoding is refused: its output is bits, with nothing to fit.
    """
    s = parse(spec)
    if s.encoding is not None:
        raise UsageError(
            "fit_output: the spec's output has a %s encoding (uint8 bits, no scale or zero point "
            "to fit); remove output.encoding first to fit a quantized output" % s.encoding["kind"]
        )
    a = np.asarray(scaled_features)
    if a.ndim == 3:
        f = apply_scale(spec, compute_features(s, as_windows(s, a)))
    else:
        f = feature_matrix(s, a, "scaled features")
    shape = list(s.out_shape)
    if dtype == "float32":
        return {"dtype": "float32", "shape": shape}
    if dtype not in OUTPUT_RANGES:
        raise UsageError("fit_output: dtype is %r; it must be float32, int8 or uint8" % (dtype,))
    if f.size == 0:
        raise UsageError("fit_output: no training data")
    qmin, qmax = OUTPUT_RANGES[dtype]
    lo = min(float(f.min()), 0.0)
    hi = max(float(f.max()), 0.0)
    scale = (hi - lo) / (qmax - qmin) if hi > lo else 1.0
    z = qmin - lo / scale
    zero_point = int(np.clip(np.sign(z) * np.floor(abs(z) + 0.5), qmin, qmax))
    return {"dtype": dtype, "scale": scale, "zero_point": zero_point, "shape": shape}
