"""Windows to model inputs, with the device's arithmetic: the numpy twin of
``kpdev.device.pipeline``.

A deliberate twin (see STYLE.md): the device computes one window at a time in plain Python;
this module computes many at once with numpy, in the same order of operations, so the doubles
match bit for bit.  tests/ check the two agree on every generator, scaling and encoding."""

from __future__ import annotations

from typing import Any

import numpy as np

from kpdev.host.errors import UsageError
from kpdev.host.features.spec import (
    OUTPUT_RANGES,
    Spec,
    _bad,
    batch_shape,
    exact_std,
    is_int,
    parse,
)


def as_windows(s: Spec, windows: Any) -> np.ndarray:
    # (n, size, n_axes) of the input dtype -> (n, n_axes, size) float64, checked.
    w = np.asarray(windows)
    if w.ndim != 3 or w.shape[1:] != (s.size, len(s.axes)):
        raise _bad(
            "windows have shape %s; the pipeline expects (n, %d, %d): windows x samples x axes"
            % (tuple(w.shape), s.size, len(s.axes))
        )
    if w.dtype.kind not in "biuf":
        raise _bad("windows hold %s; the pipeline expects numbers" % w.dtype)
    if w.dtype != np.dtype(s.input_dtype):
        # What the device would receive: the samples as input_dtype.  Integers must fit.
        with np.errstate(all="ignore"):
            cast = w.astype(s.input_dtype)
        if np.dtype(s.input_dtype).kind in "iu" and not np.array_equal(cast, w):
            raise _bad(
                "windows hold %s values that are not exact %s samples" % (w.dtype, s.input_dtype)
            )
        w = cast
    x = np.ascontiguousarray(np.swapaxes(w, 1, 2), dtype=np.float64)
    if w.dtype.kind == "f":
        bad = np.argwhere(~np.isfinite(x))
        if bad.size:
            k, j, i = (int(v) for v in bad[0])
            raise _bad(
                "window %d sample %d of axis %s is %r; samples must be finite"
                % (k, i, s.axes[j], float(x[k, j, i]))
            )
    return x


def _seqsum(x: np.ndarray) -> np.ndarray:
    # Left-to-right sum over the last axis from 0.0, as the device's loop adds (bit for bit).
    return 0.0 + np.add.accumulate(x, axis=-1)[..., -1]


def _crossings(x: np.ndarray, level: np.ndarray | float) -> np.ndarray:
    # a < L <= b or a >= L > b is exactly a change of (sample >= L) between neighbours.
    above = x >= (level[..., None] if isinstance(level, np.ndarray) else level)
    return np.count_nonzero(above[..., 1:] != above[..., :-1], axis=-1)


def compute_features(s: Spec, x: np.ndarray) -> np.ndarray:
    n_win, _, size = x.shape
    cache: dict[str, np.ndarray] = {}

    def mean() -> np.ndarray:
        if "mean" not in cache:
            cache["mean"] = _seqsum(x) / size
        return cache["mean"]

    def std() -> np.ndarray:
        if "std" not in cache:
            if exact_std(s.input_dtype, size):
                # sqrt((n * sum(x^2) - sum(x)^2) / n^2): exact integers in doubles, one rounding
                q = _seqsum(x * x)
                t = _seqsum(x)
                cache["std"] = np.sqrt((size * q - t * t) / (size * size))
            else:
                d = x - mean()[..., None]
                cache["std"] = np.sqrt(_seqsum(d * d) / size)
        return cache["std"]

    def energy() -> np.ndarray:
        if "energy" not in cache:
            cache["energy"] = _seqsum(x * x) / size
        return cache["energy"]

    parts = []
    for e in s.entries:
        ax = list(e.axes)
        g = e.gen
        if g == "raw":
            parts.append(x[:, ax, :].reshape(n_win, -1))
            continue
        if g == "mean":
            v = mean()
        elif g == "std":
            v = std()
        elif g == "min":
            v = x.min(axis=-1)
        elif g == "max":
            v = x.max(axis=-1)
        elif g == "rms":
            v = np.sqrt(energy())
        elif g == "energy":
            v = energy()
        elif g == "zero_crossing_rate":
            v = _crossings(x, 0.0) / (size - 1)
        elif g == "mean_crossing_rate":
            v = _crossings(x, mean()) / (size - 1)
        elif g == "sigma_crossing_rate":
            v = _crossings(x, mean() + e.param * std()) / (size - 1)
        elif g == "threshold_crossing_rate":
            v = _crossings(x, e.param) / (size - 1)
        elif g == "threshold_offset_crossing_rate":
            m = mean()
            v = (_crossings(x, m + e.param) + _crossings(x, m - e.param)) / (size - 1)
        elif g == "mean_difference":
            # sum(x[i] - x[i-1]) telescopes to x[n-1] - x[0]: the definition's exact value.
            v = (x[..., -1] - x[..., 0]) / (size - 1)
        else:  # pragma: no cover - parse knows every generator
            raise AssertionError(g)
        parts.append(v[:, ax].astype(np.float64))
    return np.concatenate(parts, axis=1)


def features_batch(spec: dict, windows: Any) -> np.ndarray:
    """Windows ``(n, size, n_axes)`` -> raw feature values ``(n, n_features)``, float64."""
    s = parse(spec)
    return compute_features(s, as_windows(s, windows))


def features(spec: dict, window: Any) -> np.ndarray:
    """One window ``(size, n_axes)`` -> its raw feature values ``(n_features,)``, float64."""
    return features_batch(spec, np.asarray(window)[None])[0]


def feature_matrix(s: Spec, values: Any, what: str) -> np.ndarray:
    f = np.asarray(values, dtype=np.float64)
    if f.ndim == 1:
        f = f[None]
    if f.ndim != 2 or f.shape[1] != s.n_features:
        raise _bad(
            "%s have shape %s; the pipeline gives %d features a window"
            % (what, tuple(np.shape(values)), s.n_features)
        )
    return f


def apply_scale(spec: dict, values: Any) -> np.ndarray:
    """Raw features ``(n, n_features)`` -> scaled as the spec's ``scale`` says (a copy)."""
    s = parse(spec)
    f = feature_matrix(s, values, "features")
    if s.offsets is None:
        return f.copy()
    return (f - s.offsets) / s.divisors


def quantize(spec: dict, scaled: Any) -> np.ndarray:
    """Scaled features ``(n, n_features)`` -> the output dtype (round half away from zero).

    With an encoding: thermometer bits ``(n, n_features * levels)``, uint8; value ``f`` gives
    bit ``f * levels + j`` = 1 when it is above threshold ``j``.
    """
    s = parse(spec)
    f = feature_matrix(s, scaled, "scaled features")
    if s.thresholds is not None:
        # NaN is above no threshold, as on the device.
        bits = f[:, :, None] > s.thresholds
        return bits.astype(np.uint8).reshape(f.shape[0], -1)
    if s.out_dtype == "float32":
        with np.errstate(over="ignore"):
            return f.astype(np.float32)
    lo, hi = OUTPUT_RANGES[s.out_dtype]
    t = f / s.out_scale
    r = np.sign(t) * np.floor(np.abs(t) + 0.5)
    return np.clip(r + s.zero_point, lo, hi).astype(s.out_dtype)


def transform_batch(spec: dict, windows: Any) -> np.ndarray:
    """Windows ``(n, size, n_axes)`` -> model inputs, shaped ``batch_shape(spec, n)``."""
    s = parse(spec)
    f = compute_features(s, as_windows(s, windows))
    out = quantize(spec, apply_scale(spec, f))
    return out.reshape(batch_shape(spec, f.shape[0]))


def transform(spec: dict, window: Any) -> np.ndarray:
    """One window ``(size, n_axes)`` -> the model input the device makes, shaped ``out_shape``."""
    s = parse(spec)
    return transform_batch(spec, np.asarray(window)[None]).reshape(s.out_shape)


def segment(signal: Any, size: int, stride: int) -> np.ndarray:
    """Signal ``(T, n_axes)`` -> windows ``(n, size, n_axes)`` starting at 0, stride, 2 * stride...

    The windows the device's ``Segmenter`` cuts from the same samples; a tail shorter than
    ``size`` makes no window.
    """
    x = np.asarray(signal)
    if x.ndim != 2:
        raise UsageError("segment: signal has shape %s; give (samples, axes)" % (x.shape,))
    if not is_int(size) or size < 1 or not is_int(stride) or stride < 1:
        raise UsageError(
            "segment: size %r and stride %r must be positive integers" % (size, stride)
        )
    return windows_of(x, size, stride)


def windows_of(x: Any, size: int, stride: int) -> np.ndarray:
    """Windows ``[count, size, ...]`` of ``x`` along its first axis, starting at 0, stride,
    2 * stride, ... (any number of further axes; labels too); a tail shorter than ``size``
    makes no window.  The one place kpdev cuts windows on the host."""
    x = np.asarray(x)
    count = (len(x) - size) // stride + 1 if len(x) >= size else 0
    index = np.arange(count)[:, None] * stride + np.arange(size)[None, :]
    return x[index]


def raw_input(spec: dict, x: Any) -> np.ndarray:
    """Recorded samples (windows or a signal) as the sensor delivers them: ``input_dtype``.

    An integer sensor reports counts: float recordings become ``round(x / input_scale)``
    (``input_scale`` from the spec, default 1), clipped to the dtype's range.  Float inputs are
    cast; integer data of the right dtype passes as it is.
    """
    x = np.asarray(x)
    dtype = np.dtype(spec.get("input_dtype") or "float32")
    if dtype.kind in "iu" and x.dtype.kind == "f":
        info = np.iinfo(dtype)
        counts = np.round(x / float(spec.get("input_scale") or 1.0))
        return np.clip(counts, info.min, info.max).astype(dtype)
    if dtype.kind == "f":
        return x.astype(dtype, copy=False)
    return x  # integers: transform refuses values the dtype cannot hold
