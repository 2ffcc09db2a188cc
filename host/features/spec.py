"""Feature pipeline specs (docs/packs.md ``pipeline``): read, check, and the shapes they give.

A spec is plain data (a dict from YAML or a pack manifest).  ``check_spec`` raises UsageError
naming the first problem; the other functions read a checked spec."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kpdev.host.errors import UsageError

# gen -> (its parameter or None, needs windows of 2 samples or more)
GENERATORS: dict[str, tuple[str | None, bool]] = {
    "mean": (None, False),
    "std": (None, False),
    "min": (None, False),
    "max": (None, False),
    "rms": (None, False),
    "energy": (None, False),
    "zero_crossing_rate": (None, True),
    "mean_crossing_rate": (None, True),
    "sigma_crossing_rate": ("k", True),
    "threshold_crossing_rate": ("threshold", True),
    "threshold_offset_crossing_rate": ("threshold", True),
    "mean_difference": (None, True),
    "raw": (None, False),
}


# The raw sample dtypes a window may hold (64-bit integers do not convert to double alike on
# every runtime).
INPUT_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64")


OUTPUT_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}

# 8- and 16-bit integer samples -> the largest square of one.  Their std comes from the exact
# integer sums when n * n * that < 2**53 (docs/packs.md): every product and sum is then an
# exact double, and only the division rounds.  The device's pipeline_spec has the same rule.
SQUARE_MAX = {
    "int8": 128 * 128,
    "uint8": 255 * 255,
    "int16": 32768 * 32768,
    "uint16": 65535 * 65535,
}


def exact_std(dtype: str, size: int) -> bool:
    """Whether windows of ``size`` samples of ``dtype`` get the std from exact integer sums."""
    top = SQUARE_MAX.get(dtype)
    return top is not None and size * size * top < 2**53


SPEC_KEYS = (
    "axes",
    "input_dtype",
    "input_scale",
    "rate_hz",
    "window",
    "features",
    "scale",
    "output",
)


OUTPUT_KEYS = ("dtype", "scale", "zero_point", "shape", "encoding")


# Output encodings (output.encoding.kind): each scaled feature value -> ``levels`` bits.
ENCODINGS = ("thermometer",)


ENCODING_KEYS = ("kind", "levels", "low", "high")


MAX_LEVELS = 32


DEFAULT_K = 1.0  # sigma_crossing_rate without k: one standard deviation


@dataclass(frozen=True)
class Entry:
    gen: str
    axes: tuple[int, ...]
    param: float | None


@dataclass(frozen=True)
class Spec:
    axes: list[str]
    input_dtype: str
    size: int
    stride: int
    entries: list[Entry]
    n_features: int
    offsets: np.ndarray | None  # scaled = (f - offsets) / divisors
    divisors: np.ndarray | None
    out_dtype: str
    out_scale: float | None
    zero_point: int | None
    out_shape: tuple[int, ...]
    encoding: dict | None  # {"kind", "levels", "low", "high"}, as the device's Pipeline.encoding
    thresholds: np.ndarray | None  # the encoding's, ascending


def _bad(message: str) -> UsageError:
    return UsageError("pipeline: " + message)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _is_list(v: Any) -> bool:
    return isinstance(v, (list, tuple))


def _parse_axes(spec: dict) -> list[str]:
    axes = spec.get("axes")
    if not _is_list(axes) or not axes:
        raise _bad('axes must be a non-empty list of axis names, e.g. ["accel_x", "accel_y"]')
    for i, a in enumerate(axes):
        if not isinstance(a, str) or not a:
            raise _bad("axes[%d] is %r; axis names are non-empty strings" % (i, a))
        if a in axes[:i]:
            raise _bad("axis %r is listed twice in axes" % (a,))
    return list(axes)


def _parse_window(spec: dict) -> tuple[int, int]:
    w = spec.get("window")
    if not isinstance(w, dict):
        raise _bad('window must be {"size": samples, "stride": samples}, not %r' % (w,))
    for key in w:
        if key not in ("size", "stride"):
            raise _bad("window has an unknown key %r; it takes size and stride" % (key,))
    size, stride = w.get("size"), w.get("stride")
    if not is_int(size) or size < 1:
        raise _bad("window size is %r; it must be a positive integer (samples)" % (size,))
    if not is_int(stride) or stride < 1:
        raise _bad("window stride is %r; it must be a positive integer (samples)" % (stride,))
    return size, stride


def _entry_axes(entry: dict, index: int, names: list[str]) -> tuple[int, ...]:
    sel = entry.get("axes")
    if sel is None:
        return tuple(range(len(names)))
    if not _is_list(sel) or not sel:
        raise _bad("features[%d] axes must be a non-empty list of axis indexes or names" % index)
    out: list[int] = []
    for a in sel:
        if is_int(a):
            if not 0 <= a < len(names):
                raise _bad(
                    "features[%d] names axis %d; the spec has axes 0..%d (%s)"
                    % (index, a, len(names) - 1, ", ".join(names))
                )
            j = a
        elif isinstance(a, str):
            if a not in names:
                raise _bad(
                    "features[%d] names axis %r; the spec's axes are %s"
                    % (index, a, ", ".join(names))
                )
            j = names.index(a)
        else:
            raise _bad("features[%d] axes holds %r; give axis indexes or names" % (index, a))
        if j in out:
            raise _bad("features[%d] lists axis %s twice" % (index, names[j]))
        out.append(j)
    return tuple(out)


def _parse_features(spec: dict, names: list[str], size: int) -> tuple[list[Entry], int]:
    feats = spec.get("features")
    if not _is_list(feats) or not feats:
        raise _bad('features must be a non-empty list of {"gen": name, ...} entries')
    entries = []
    n = 0
    for i, entry in enumerate(feats):
        if not isinstance(entry, dict):
            raise _bad('features[%d] is %r; each feature is a {"gen": name, ...} map' % (i, entry))
        gen = entry.get("gen")
        info = GENERATORS.get(gen) if isinstance(gen, str) else None
        if info is None:
            raise _bad(
                "features[%d] has gen %r; known generators: %s"
                % (i, gen, ", ".join(sorted(GENERATORS)))
            )
        pname, needs_two = info
        for key in entry:
            if key not in ("gen", "axes", pname):
                takes = "gen, axes" + (", " + pname if pname else "")
                raise _bad(
                    "features[%d] (%s) has an unknown key %r; it takes %s" % (i, gen, key, takes)
                )
        param = None
        if pname is not None:
            param = entry.get(pname)
            if param is None and pname == "k":
                param = DEFAULT_K
            if not _is_number(param):
                raise _bad(
                    "features[%d] (%s) needs a finite number %s, not %r" % (i, gen, pname, param)
                )
            param = float(param)
        if needs_two and size < 2:
            raise _bad(
                "features[%d] (%s) needs windows of at least 2 samples, not %d" % (i, gen, size)
            )
        axes = _entry_axes(entry, i, names)
        entries.append(Entry(gen, axes, param))
        n += len(axes) * (size if gen == "raw" else 1)
    return entries, n


def _vector(scale: dict, key: str, n: int) -> np.ndarray:
    v = scale.get(key)
    if not _is_list(v) or len(v) != n:
        got = ("%d values" % len(v)) if _is_list(v) else repr(v)
        raise _bad("scale %s has %s; it needs one number per feature (%d)" % (key, got, n))
    for i, x in enumerate(v):
        if not _is_number(x):
            raise _bad("scale %s[%d] is %r; it must be a finite number" % (key, i, x))
    return np.array([float(x) for x in v], dtype=np.float64)


def _parse_scale(spec: dict, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    scale = spec.get("scale")
    if scale is None:
        return None
    if not isinstance(scale, dict):
        raise _bad("scale must be null or a map with kind standard or minmax, not %r" % (scale,))
    kind = scale.get("kind")
    if kind == "standard":
        keys = ("kind", "mean", "std")
    elif kind == "minmax":
        keys = ("kind", "min", "max")
    else:
        raise _bad("scale kind is %r; it must be standard or minmax" % (kind,))
    for key in scale:
        if key not in keys:
            raise _bad(
                "scale (%s) has an unknown key %r; it takes %s" % (kind, key, ", ".join(keys))
            )
    a = _vector(scale, keys[1], n)
    b = _vector(scale, keys[2], n)
    if kind == "standard":
        bad = np.flatnonzero(b < 0)
        if bad.size:
            i = int(bad[0])
            raise _bad(
                "scale std[%d] is %r; a standard deviation is not negative" % (i, scale["std"][i])
            )
        d = b
    else:
        bad = np.flatnonzero(b < a)
        if bad.size:
            i = int(bad[0])
            raise _bad(
                "scale max[%d] (%r) is below min[%d] (%r)"
                % (i, scale["max"][i], i, scale["min"][i])
            )
        d = b - a
    return a, np.where(d == 0.0, 1.0, d)


def _parse_encoding(enc: Any, dtype: Any, scale: Any, zp: Any) -> dict:
    # The device's checks, in its order (same messages).
    if not isinstance(enc, dict):
        raise _bad(
            'output encoding must be a map {"kind": "thermometer", "levels": ..., "low": ..., '
            '"high": ...}, not %r' % (enc,)
        )
    kind = enc.get("kind")
    if kind not in ENCODINGS:
        raise _bad(
            "output encoding kind is %r; known encodings: %s" % (kind, ", ".join(ENCODINGS))
        )
    for key in enc:
        if key not in ENCODING_KEYS:
            raise _bad(
                "output encoding (%s) has an unknown key %r; it takes %s"
                % (kind, key, ", ".join(ENCODING_KEYS))
            )
    if dtype != "uint8":
        raise _bad(
            "output dtype is %r; a %s encoding needs dtype uint8 (0 or 1 a value)" % (dtype, kind)
        )
    if scale is not None or zp is not None:
        raise _bad("an encoded output is not quantized; leave out scale and zero_point")
    levels = enc.get("levels")
    if not is_int(levels) or not 1 <= levels <= MAX_LEVELS:
        raise _bad(
            "output encoding levels is %r; it must be an integer in 1..%d" % (levels, MAX_LEVELS)
        )
    for key in ("low", "high"):
        if not _is_number(enc.get(key)):
            raise _bad(
                "output encoding %s is %r; it must be a finite number" % (key, enc.get(key))
            )
    low, high = float(enc["low"]), float(enc["high"])
    span = high - low  # inf when it overflows
    if not (span > 0.0 and math.isfinite(span)):
        raise _bad(
            "output encoding low is %r and high %r; low must be below high (a finite span)"
            % (enc["low"], enc["high"])
        )
    return {"kind": kind, "levels": levels, "low": low, "high": high}


def _thresholds(enc: dict) -> np.ndarray:
    # t_j = low + (high - low) * (j + 1) / (levels + 1): the device's operations in its order.
    levels, low, high = enc["levels"], enc["low"], enc["high"]
    return low + (high - low) * np.arange(1, levels + 1, dtype=np.float64) / (levels + 1)


def _parse_output(
    spec: dict, n: int
) -> tuple[str, float | None, int | None, tuple[int, ...], dict | None]:
    out = spec.get("output")
    if out is None:
        out = {}
    if not isinstance(out, dict):
        raise _bad('output must be a map {"dtype": ..., "shape": [...]}, not %r' % (out,))
    for key in out:
        if key not in OUTPUT_KEYS:
            raise _bad("output has an unknown key %r; it takes %s" % (key, ", ".join(OUTPUT_KEYS)))
    dtype = out.get("dtype", "float32")
    scale = out.get("scale")
    zp = out.get("zero_point")
    enc = out.get("encoding")
    count = n  # values in the output
    if enc is not None:
        enc = _parse_encoding(enc, dtype, scale, zp)
        count = n * enc["levels"]
    elif dtype == "float32":
        if scale is not None or zp is not None:
            raise _bad("a float32 output is not quantized; leave out scale and zero_point")
    elif dtype in OUTPUT_RANGES:
        lo, hi = OUTPUT_RANGES[dtype]
        if not _is_number(scale) or scale <= 0:
            raise _bad(
                "output scale is %r; an %s output needs a finite scale > 0" % (scale, dtype)
            )
        if zp is None:
            zp = 0
        if not is_int(zp) or not lo <= zp <= hi:
            raise _bad(
                "output zero_point is %r; %s needs an integer in %d..%d" % (zp, dtype, lo, hi)
            )
        scale = float(scale)
    else:
        raise _bad("output dtype is %r; it must be float32, int8 or uint8" % (dtype,))
    shape = out.get("shape")
    if shape is None:
        return dtype, scale, zp, (1, count), enc
    if not _is_list(shape) or not shape:
        raise _bad("output shape is %r; give a list of dimensions, e.g. [1, %d]" % (shape, count))
    for d in shape:
        if not is_int(d) or d < 1:
            raise _bad("output shape %r has a dimension %r; dimensions are positive" % (shape, d))
    held = math.prod(shape)
    if held != count:
        if enc is None:
            raise _bad("output shape %r holds %d values; the features give %d" % (shape, held, n))
        raise _bad(
            "output shape %r holds %d values; the encoding gives n_features * levels = "
            "%d * %d = %d" % (shape, held, n, enc["levels"], count)
        )
    return dtype, scale, zp, tuple(shape), enc


def parse(spec: Any) -> Spec:
    if not isinstance(spec, dict):
        raise _bad("the spec must be a map, not %r" % (spec,))
    for key in spec:
        if key not in SPEC_KEYS:
            raise _bad("unknown key %r in the spec; it takes %s" % (key, ", ".join(SPEC_KEYS)))
    axes = _parse_axes(spec)
    dtype = spec.get("input_dtype", "float32")
    if dtype not in INPUT_DTYPES:
        raise _bad(
            "input_dtype is %r; raw samples must be one of %s"
            % (dtype, ", ".join(sorted(INPUT_DTYPES)))
        )
    for key in ("rate_hz", "input_scale"):  # informational: what a count or a sample means
        v = spec.get(key)
        if v is not None and (not _is_number(v) or v <= 0):
            raise _bad("%s is %r; it must be a positive number (or left out)" % (key, v))
    size, stride = _parse_window(spec)
    entries, n = _parse_features(spec, axes, size)
    scale = _parse_scale(spec, n)
    out_dtype, out_scale, zp, shape, enc = _parse_output(spec, n)
    return Spec(
        axes=axes,
        input_dtype=dtype,
        size=size,
        stride=stride,
        entries=entries,
        n_features=n,
        offsets=None if scale is None else scale[0],
        divisors=None if scale is None else scale[1],
        out_dtype=out_dtype,
        out_scale=out_scale,
        zero_point=zp,
        out_shape=shape,
        encoding=enc,
        thresholds=None if enc is None else _thresholds(enc),
    )


def check_spec(spec: Any) -> None:
    """Raise ``UsageError`` (one line saying what is wrong) unless ``spec`` is a valid pipeline."""
    parse(spec)


def load_spec(path: str | Path) -> dict:
    """Read a pipeline spec from a YAML or JSON file and check it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError("cannot read pipeline spec %s: %s" % (path, e.strerror or e))
    try:
        spec = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError("pipeline spec %s is not valid YAML/JSON: %s" % (path, first))
    try:
        check_spec(spec)
    except UsageError as e:
        raise UsageError("%s: %s" % (path, e))
    return spec


def n_features(spec: dict) -> int:
    """How many values the features of ``spec`` give."""
    return parse(spec).n_features


def out_shape(spec: dict) -> tuple[int, ...]:
    """The model input shape ``spec`` makes (``output.shape``, default ``(1, n_features)``)."""
    return parse(spec).out_shape


def encoding(spec: dict) -> dict | None:
    """The spec's output encoding, checked: ``{"kind", "levels", "low", "high"}``, or None.

    The same dict the device's ``Pipeline.encoding`` holds; an encoded output is uint8 with
    ``n_features * levels`` values, each 0 or 1.
    """
    enc = parse(spec).encoding
    return None if enc is None else dict(enc)


def thresholds(spec: dict) -> np.ndarray | None:
    """The encoding's thresholds ``t_j`` (``levels`` of them, ascending), or None."""
    t = parse(spec).thresholds
    return None if t is None else t.copy()


def batch_shape(spec: dict, n: int) -> tuple[int, ...]:
    """Shape of ``transform_batch`` for ``n`` windows: the leading 1 of out_shape becomes n."""
    shape = parse(spec).out_shape
    return (n, *shape[1:]) if shape[0] == 1 else (n, *shape)


def feature_names(spec: dict) -> list[str]:
    """One name per feature value, in order: ``mean(accel_x)``, ``raw(accel_x)[0]``, ..."""
    s = parse(spec)
    names = []
    for e in s.entries:
        pname = GENERATORS[e.gen][0]
        extra = ", %s=%r" % (pname, e.param) if pname else ""
        for j in e.axes:
            base = "%s(%s%s)" % (e.gen, s.axes[j], extra)
            if e.gen == "raw":
                names.extend("%s[%d]" % (base, i) for i in range(s.size))
            else:
                names.append(base)
    return names
