"""Checking a feature pipeline spec for the device (docs/packs.md): ``check`` fills a ``Pipeline``.

Run once a pipeline, when the pack arrives or the agent starts: ``Pipeline.__init__`` imports this
module and lets MicroPython forget it afterwards (``compat.forget_modules``), so the checks and
their messages are not in a board's heap while windows go through.  Refusals are
``DeviceError(E_BAD_VALUE)`` with a message naming the problem, checked in the order of
``kpdev.host.features`` (the host's twin of these checks).
"""

from kpdev.device.pipeline import _FORMATS, _array, _bad, _is_int, _is_list
from kpdev.protocol.compat import const

_QRANGE = {"int8": (-128, 127), "uint8": (0, 255)}
# 8- and 16-bit samples -> the largest square of one: the std comes from the exact integer sums
# when n * n * that < 2**53 (docs/packs.md; kpdev.host.features.spec has the same rule).
_SQUARE_MAX = {"int8": 16384, "uint8": 65025, "int16": 1073741824, "uint16": 4294836225}
_SPEC_KEYS = (
    "axes",
    "input_dtype",
    "input_scale",
    "rate_hz",
    "window",
    "features",
    "scale",
    "output",
)
_OUTPUT_KEYS = ("dtype", "scale", "zero_point", "shape", "encoding")
# Output encodings: each scaled feature value becomes ``levels`` values of 0 or 1.
_ENCODINGS = ("thermometer",)
_ENCODING_KEYS = ("kind", "levels", "low", "high")
_MAX_LEVELS = const(32)
# The definitions table has no k for sigma_crossing_rate; one standard deviation it is.
_DEFAULT_K = 1.0


def _is_number(v):
    # Finite int or float; ``v - v`` is NaN for inf and NaN.
    if isinstance(v, bool) or not (isinstance(v, int) or isinstance(v, float)):
        return False
    return isinstance(v, int) or v - v == 0.0


# Generator codes: the order of the definitions table; the same numbers as kpdev.device.pipeline's
# (MicroPython inlines a const only within its own module, so each module names them; the parity
# tests, which run every generator through codes set here and read there, fail on any difference).
_G_MEAN = const(0)
_G_STD = const(1)
_G_MIN = const(2)
_G_MAX = const(3)
_G_RMS = const(4)
_G_ENERGY = const(5)
_G_ZCR = const(6)
_G_MCR = const(7)
_G_SCR = const(8)
_G_TCR = const(9)
_G_TOCR = const(10)
_G_MEAN_DIFF = const(11)
_G_RAW = const(12)

# gen name -> (code, its parameter or None, needs windows of 2 samples or more)
_GENS = {
    "mean": (_G_MEAN, None, False),
    "std": (_G_STD, None, False),
    "min": (_G_MIN, None, False),
    "max": (_G_MAX, None, False),
    "rms": (_G_RMS, None, False),
    "energy": (_G_ENERGY, None, False),
    "zero_crossing_rate": (_G_ZCR, None, True),
    "mean_crossing_rate": (_G_MCR, None, True),
    "sigma_crossing_rate": (_G_SCR, "k", True),
    "threshold_crossing_rate": (_G_TCR, "threshold", True),
    "threshold_offset_crossing_rate": (_G_TOCR, "threshold", True),
    "mean_difference": (_G_MEAN_DIFF, None, True),
    "raw": (_G_RAW, None, False),
}


def _check_axes(spec):
    axes = spec.get("axes")
    if not _is_list(axes) or not axes:
        _bad('axes must be a non-empty list of axis names, e.g. ["accel_x", "accel_y"]')
    for i in range(len(axes)):
        a = axes[i]
        if not isinstance(a, str) or not a:
            _bad("axes[%d] is %r; axis names are non-empty strings" % (i, a))
        for k in range(i):
            if axes[k] == a:
                _bad("axis %r is listed twice in axes" % (a,))
    return list(axes)


def _check_window(spec):
    w = spec.get("window")
    if not isinstance(w, dict):
        _bad('window must be {"size": samples, "stride": samples}, not %r' % (w,))
    for key in w:
        if key != "size" and key != "stride":
            _bad("window has an unknown key %r; it takes size and stride" % (key,))
    size = w.get("size")
    stride = w.get("stride")
    if not _is_int(size) or size < 1:
        _bad("window size is %r; it must be a positive integer (samples)" % (size,))
    if not _is_int(stride) or stride < 1:
        _bad("window stride is %r; it must be a positive integer (samples)" % (stride,))
    return size, stride


def _entry_axes(entry, index, names, every):
    sel = entry.get("axes")
    if sel is None:
        return every  # one tuple shared by the entries that cover every axis
    if not _is_list(sel) or not sel:
        _bad("features[%d] axes must be a non-empty list of axis indexes or names" % index)
    out = []
    for a in sel:
        if _is_int(a):
            if a < 0 or a >= len(names):
                _bad(
                    "features[%d] names axis %d; the spec has axes 0..%d (%s)"
                    % (index, a, len(names) - 1, ", ".join(names))
                )
            j = a
        elif isinstance(a, str):
            j = -1
            for k in range(len(names)):
                if names[k] == a:
                    j = k
            if j < 0:
                _bad(
                    "features[%d] names axis %r; the spec's axes are %s"
                    % (index, a, ", ".join(names))
                )
        else:
            _bad("features[%d] axes holds %r; give axis indexes or names" % (index, a))
        if j in out:
            _bad("features[%d] lists axis %s twice" % (index, names[j]))
        out.append(j)
    return tuple(out)


def _check_features(spec, names, size):
    feats = spec.get("features")
    if not _is_list(feats) or not feats:
        _bad('features must be a non-empty list of {"gen": name, ...} entries')
    entries = []
    every = tuple(range(len(names)))
    n = 0
    for i in range(len(feats)):
        entry = feats[i]
        if not isinstance(entry, dict):
            _bad('features[%d] is %r; each feature is a {"gen": name, ...} map' % (i, entry))
        gen = entry.get("gen")
        info = _GENS.get(gen) if isinstance(gen, str) else None
        if info is None:
            _bad(
                "features[%d] has gen %r; known generators: %s"
                % (i, gen, ", ".join(sorted(_GENS)))
            )
        code, pname, needs_two = info
        for key in entry:
            if key != "gen" and key != "axes" and key != pname:
                takes = "gen, axes" + (", " + pname if pname else "")
                _bad("features[%d] (%s) has an unknown key %r; it takes %s" % (i, gen, key, takes))
        param = None
        if pname is not None:
            param = entry.get(pname)
            if param is None and pname == "k":
                param = _DEFAULT_K
            if not _is_number(param):
                _bad("features[%d] (%s) needs a finite number %s, not %r" % (i, gen, pname, param))
            param = float(param)
        if needs_two and size < 2:
            _bad("features[%d] (%s) needs windows of at least 2 samples, not %d" % (i, gen, size))
        axes = _entry_axes(entry, i, names, every)
        entries.append((gen, code, axes, param))
        n += len(axes) * (size if code == _G_RAW else 1)
    return entries, n


def _check_vector(scale, key, n):
    v = scale.get(key)
    if not _is_list(v) or len(v) != n:
        got = ("%d values" % len(v)) if _is_list(v) else repr(v)
        _bad("scale %s has %s; it needs one number per feature (%d)" % (key, got, n))
    for i in range(n):
        if not _is_number(v[i]):
            _bad("scale %s[%d] is %r; it must be a finite number" % (key, i, v[i]))
    return v


def _check_scale(spec, n):
    # -> (offsets, divisors) as arrays of doubles, or None: scaled = (f - offset) / divisor.
    scale = spec.get("scale")
    if scale is None:
        return None
    if not isinstance(scale, dict):
        _bad("scale must be null or a map with kind standard or minmax, not %r" % (scale,))
    kind = scale.get("kind")
    if kind == "standard":
        keys = ("kind", "mean", "std")
    elif kind == "minmax":
        keys = ("kind", "min", "max")
    else:
        _bad("scale kind is %r; it must be standard or minmax" % (kind,))
    for key in scale:
        if key not in keys:
            _bad("scale (%s) has an unknown key %r; it takes %s" % (kind, key, ", ".join(keys)))
    a = _check_vector(scale, keys[1], n)
    b = _check_vector(scale, keys[2], n)
    offsets = _array(n)
    divisors = _array(n)
    for i in range(n):
        lo = float(a[i])
        if kind == "standard":
            d = float(b[i])
            if d < 0:
                _bad("scale std[%d] is %r; a standard deviation is not negative" % (i, b[i]))
        else:
            if b[i] < a[i]:
                _bad("scale max[%d] (%r) is below min[%d] (%r)" % (i, b[i], i, a[i]))
            d = float(b[i]) - lo
        offsets[i] = lo
        divisors[i] = d if d != 0.0 else 1.0
    return offsets, divisors


def _check_encoding(enc, dtype, scale, zp):
    # -> {"kind", "levels", "low", "high"}, checked in the order of kpdev.host.features.
    if not isinstance(enc, dict):
        _bad(
            'output encoding must be a map {"kind": "thermometer", "levels": ..., "low": ..., '
            '"high": ...}, not %r' % (enc,)
        )
    kind = enc.get("kind")
    if kind not in _ENCODINGS:
        _bad("output encoding kind is %r; known encodings: %s" % (kind, ", ".join(_ENCODINGS)))
    for key in enc:
        if key not in _ENCODING_KEYS:
            _bad(
                "output encoding (%s) has an unknown key %r; it takes %s"
                % (kind, key, ", ".join(_ENCODING_KEYS))
            )
    if dtype != "uint8":
        _bad(
            "output dtype is %r; a %s encoding needs dtype uint8 (0 or 1 a value)" % (dtype, kind)
        )
    if scale is not None or zp is not None:
        _bad("an encoded output is not quantized; leave out scale and zero_point")
    levels = enc.get("levels")
    if not _is_int(levels) or levels < 1 or levels > _MAX_LEVELS:
        _bad(
            "output encoding levels is %r; it must be an integer in 1..%d" % (levels, _MAX_LEVELS)
        )
    for key in ("low", "high"):
        if not _is_number(enc.get(key)):
            _bad("output encoding %s is %r; it must be a finite number" % (key, enc.get(key)))
    low = float(enc["low"])
    high = float(enc["high"])
    d = high - low
    if not d > 0.0 or d - d != 0.0:  # d - d: NaN when the span overflows to inf
        _bad(
            "output encoding low is %r and high %r; low must be below high (a finite span)"
            % (enc["low"], enc["high"])
        )
    return {"kind": kind, "levels": levels, "low": low, "high": high}


def _thresholds(enc):
    # t_j = low + (high - low) * (j + 1) / (levels + 1), operation for operation as the host.
    # Rounding is monotonic, so the thresholds never descend.
    levels = enc["levels"]
    low = enc["low"]
    high = enc["high"]
    t = _array(levels)
    for j in range(levels):
        t[j] = low + (high - low) * (j + 1) / (levels + 1)
    return t


def _check_output(spec, n):
    # -> (dtype, scale, zero_point, shape, encoding or None)
    out = spec.get("output")
    if out is None:
        out = {}
    if not isinstance(out, dict):
        _bad('output must be a map {"dtype": ..., "shape": [...]}, not %r' % (out,))
    for key in out:
        if key not in _OUTPUT_KEYS:
            _bad("output has an unknown key %r; it takes %s" % (key, ", ".join(_OUTPUT_KEYS)))
    dtype = out.get("dtype", "float32")
    scale = out.get("scale")
    zp = out.get("zero_point")
    enc = out.get("encoding")
    count = n  # values in the output
    if enc is not None:
        enc = _check_encoding(enc, dtype, scale, zp)
        count = n * enc["levels"]
    elif dtype == "float32":
        if scale is not None or zp is not None:
            _bad("a float32 output is not quantized; leave out scale and zero_point")
    elif dtype in _QRANGE:
        lo, hi = _QRANGE[dtype]
        if not _is_number(scale) or scale <= 0:
            _bad("output scale is %r; an %s output needs a finite scale > 0" % (scale, dtype))
        if zp is None:
            zp = 0
        if not _is_int(zp) or zp < lo or zp > hi:
            _bad("output zero_point is %r; %s needs an integer in %d..%d" % (zp, dtype, lo, hi))
        scale = float(scale)
    else:
        _bad("output dtype is %r; it must be float32, int8 or uint8" % (dtype,))
    shape = out.get("shape")
    if shape is None:
        shape = (1, count)
    else:
        if not _is_list(shape) or not shape:
            _bad("output shape is %r; give a list of dimensions, e.g. [1, %d]" % (shape, count))
        held = 1
        for d in shape:
            if not _is_int(d) or d < 1:
                _bad("output shape %r has a dimension %r; dimensions are positive" % (shape, d))
            held *= d
        if held != count:
            if enc is None:
                _bad("output shape %r holds %d values; the features give %d" % (shape, held, n))
            _bad(
                "output shape %r holds %d values; the encoding gives n_features * levels = "
                "%d * %d = %d" % (shape, held, n, enc["levels"], count)
            )
        shape = tuple(shape)
    return dtype, scale, zp, shape, enc


def check(p, spec):
    """Check ``spec`` and set what Pipeline ``p`` is made of (see ``Pipeline``)."""
    if not isinstance(spec, dict):
        _bad("the spec must be a map, not %r" % (spec,))
    for key in spec:
        if key not in _SPEC_KEYS:
            _bad("unknown key %r in the spec; it takes %s" % (key, ", ".join(_SPEC_KEYS)))
    p.axes = _check_axes(spec)
    p.n_axes = len(p.axes)
    dtype = spec.get("input_dtype", "float32")
    if not isinstance(dtype, str) or _FORMATS.get(dtype) is None:
        _bad(
            "input_dtype is %r; raw samples must be one of %s"
            % (dtype, ", ".join(sorted(_FORMATS)))
        )
    p.input_dtype = dtype
    for key in ("rate_hz", "input_scale"):  # informational: what a sample or count means
        v = spec.get(key)
        if v is not None and (not _is_number(v) or v <= 0):
            _bad("%s is %r; it must be a positive number (or left out)" % (key, v))
    p.size, p.stride = _check_window(spec)
    top = _SQUARE_MAX.get(dtype)
    p._exact_std = top is not None and p.size * p.size * top < 9007199254740992  # 2**53
    p._entries, p.n_features = _check_features(spec, p.axes, p.size)
    p._scale = _check_scale(spec, p.n_features)
    out = _check_output(spec, p.n_features)
    p.out_dtype, p._qscale, p._zero_point, p.out_shape, p.encoding = out
    p._qrange = _QRANGE.get(p.out_dtype)
    p.n_out = p.n_features
    p._thresholds = None
    if p.encoding is not None:
        p.n_out = p.n_features * p.encoding["levels"]
        p._thresholds = _thresholds(p.encoding)
    names = ["unpack"] + [e[0] for e in p._entries]
    if p._scale is not None:
        names.append("scale")
    if p.encoding is not None:
        names.append("encode")
    elif p.out_dtype != "float32":
        names.append("quantize")
    p.stage_names = names
