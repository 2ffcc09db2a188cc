"""The feature pipeline on the device: raw sensor windows -> model input (docs/packs.md).

``Pipeline`` checks a pipeline spec once and then turns each window (a Tensor of
``(size, n_axes)`` raw samples) into the model input: per-axis columns, the features in spec
order, scaling, then quantization or an encoding (thermometer bits).  ``Segmenter`` cuts a
stream of samples into those windows.

The arithmetic is fixed so that ``kpdev.host.features`` (numpy) gets the same doubles: sums run
left to right from 0.0, the mean is computed before any deviation from it, ``x * x`` squares,
divisions are by ``n`` (or ``n - 1``) as written in the definitions table.  A board whose
MicroPython has single-precision floats computes in single precision and only approaches the
host's values.

Heap: the per-axis columns and the feature values live in buffers allocated once per
``Pipeline`` (arrays: 8 bytes a feature value, 4 or 8 bytes a sample); ``columns()`` and
``features()`` return those buffers, so their contents last until the next call.  A call
allocates the output tensor's bytes and the short-lived floats of the arithmetic, nothing the
size of the window.

A deliberate twin: ``kpdev.host.features`` computes the same pipeline with numpy for the host
(pack building, the reference runtime).  The fixed arithmetic above keeps the two identical;
tests/test_pipeline.py ``test_parity`` (and the thermometer parity tests) runs both on the same
windows, this module under CPython and under the micropython binary, and compares.
"""

import math
import struct
from array import array

from kpdev.device.sysinfo import ticks_diff, ticks_us
from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.tensors import Tensor

_E_BAD_SHAPE = const(18)
_E_BAD_DTYPE = const(19)
_E_BAD_VALUE = const(25)

# Raw sample dtypes a window may hold -> struct format.  64-bit integers are left out: their
# conversion to a double is not the same on every runtime.
_FORMATS = {
    "int8": "<b",
    "uint8": "<B",
    "int16": "<h",
    "uint16": "<H",
    "int32": "<i",
    "uint32": "<I",
    "float32": "<f",
    "float64": "<d",
}
# Output dtype -> (smallest, largest) quantized value; float32 is not quantized.
_QRANGE = {"int8": (-128, 127), "uint8": (0, 255)}
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


def _bad(message, code=_E_BAD_VALUE):
    raise DeviceError("pipeline: " + message, code)


def _array(n, typecode="d"):
    # An array of n doubles (or floats), made from range(): sized once, with no temporary the
    # array's size.
    return array(typecode, range(n))


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    # Finite int or float; ``v - v`` is NaN for inf and NaN.
    if isinstance(v, bool) or not (isinstance(v, int) or isinstance(v, float)):
        return False
    return isinstance(v, int) or v - v == 0.0


def _is_list(v):
    return isinstance(v, list) or isinstance(v, tuple)


# -- feature generators -------------------------------------------------------------------------
# The mean and the standard deviation of a column are kept for the rest of the window: several
# generators need them, and recomputing would give the same doubles anyway.


def _mean(p, col, j):
    if p._known[j] & 1:
        return p._means[j]
    s = 0.0
    for v in col:
        s += v
    m = s / len(col)
    p._means[j] = m
    p._known[j] |= 1
    return m


def _std(p, col, j):
    if p._known[j] & 2:
        return p._stds[j]
    m = _mean(p, col, j)
    s = 0.0
    for v in col:
        d = v - m
        s += d * d
    sd = math.sqrt(s / len(col))
    p._stds[j] = sd
    p._known[j] |= 2
    return sd


def _energy(col):
    s = 0.0
    for v in col:
        s += v * v
    return s / len(col)


def _crossings(col, level):
    # a < L <= b or a >= L > b is exactly a change of (sample >= L) between neighbours.
    c = 0
    above = col[0] >= level
    for v in col:
        now = v >= level
        if now is not above:
            c += 1
            above = now
    return c


# Generator codes: the order of the definitions table.
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


def _value(p, code, col, j, param):
    # One generator's value for column ``col`` (axis ``j``).  Branches rather than a function
    # a generator: a board's heap holds every function object (about 0.5 KB for thirteen).
    if code == _G_MEAN:
        return _mean(p, col, j)
    if code == _G_STD:
        return _std(p, col, j)
    if code == _G_MIN:
        return float(min(col))
    if code == _G_MAX:
        return float(max(col))
    if code == _G_RMS:
        return math.sqrt(_energy(col))
    if code == _G_ENERGY:
        return _energy(col)
    if code == _G_MEAN_DIFF:
        # sum(x[i] - x[i-1]) telescopes to x[n-1] - x[0]: the exact value of the definition.
        return (col[len(col) - 1] - col[0]) / (len(col) - 1)
    if code == _G_ZCR:
        c = _crossings(col, 0.0)
    elif code == _G_MCR:
        c = _crossings(col, _mean(p, col, j))
    elif code == _G_SCR:
        c = _crossings(col, _mean(p, col, j) + param * _std(p, col, j))
    elif code == _G_TCR:
        c = _crossings(col, param)
    else:  # _G_TOCR
        m = _mean(p, col, j)
        c = _crossings(col, m + param) + _crossings(col, m - param)
    return c / (len(col) - 1)


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


class Pipeline:
    """A checked pipeline spec, ready to turn raw windows into model inputs."""

    def __init__(self, spec):
        if not isinstance(spec, dict):
            _bad("the spec must be a map, not %r" % (spec,))
        for key in spec:
            if key not in _SPEC_KEYS:
                _bad("unknown key %r in the spec; it takes %s" % (key, ", ".join(_SPEC_KEYS)))
        self.axes = _check_axes(spec)
        self.n_axes = len(self.axes)
        dtype = spec.get("input_dtype", "float32")
        if not isinstance(dtype, str) or _FORMATS.get(dtype) is None:
            _bad(
                "input_dtype is %r; raw samples must be one of %s"
                % (dtype, ", ".join(sorted(_FORMATS)))
            )
        self.input_dtype = dtype
        for key in ("rate_hz", "input_scale"):  # informational: what a sample or count means
            v = spec.get(key)
            if v is not None and (not _is_number(v) or v <= 0):
                _bad("%s is %r; it must be a positive number (or left out)" % (key, v))
        self.size, self.stride = _check_window(spec)
        self._entries, self.n_features = _check_features(spec, self.axes, self.size)
        self._scale = _check_scale(spec, self.n_features)
        # What the model input is: out_dtype, out_shape (n_out values) and encoding, the
        # parsed {"kind", "levels", "low", "high"} or None; encoded values are 0 or 1.
        out = _check_output(spec, self.n_features)
        self.out_dtype, self._qscale, self._zero_point, self.out_shape, self.encoding = out
        self.n_out = self.n_features
        self._thresholds = None
        if self.encoding is not None:
            self.n_out = self.n_features * self.encoding["levels"]
            self._thresholds = _thresholds(self.encoding)
        names = [e[0] for e in self._entries]
        if self._scale is not None:
            names.append("scale")
        if self.encoding is not None:
            names.append("encode")
        elif self.out_dtype != "float32":
            names.append("quantize")
        self.stage_names = names
        # Buffers reused by every window (see the module docstring).
        # A float32 holds every sample of these dtypes exactly: 4 bytes a sample, not 8.
        exact = dtype in ("float32", "int8", "uint8", "int16", "uint16")
        tc = "f" if exact else "d"
        self._cols = [_array(self.size, tc) for _ in range(self.n_axes)]
        self._values = _array(self.n_features)
        self._means = _array(self.n_axes)
        self._stds = _array(self.n_axes)
        self._known = bytearray(self.n_axes)

    def __repr__(self):
        return "Pipeline(%d axes, window %d/%d, %d features -> %s %r)" % (
            self.n_axes,
            self.size,
            self.stride,
            self.n_features,
            self.out_dtype,
            self.out_shape,
        )

    def columns(self, window):
        """Window Tensor ``(size, n_axes)`` or ``(1, size, n_axes)`` -> one column per axis.

        The columns are arrays owned by the pipeline (overwritten by the next call) holding the
        samples exactly: float32 for float32 and 8- and 16-bit samples, double otherwise.
        """
        shape = window.shape
        if len(shape) == 3 and shape[0] == 1:
            shape = shape[1:]
        if len(shape) != 2:
            _bad(
                "window has shape %r; the pipeline expects (%d, %d): samples x axes"
                % (tuple(window.shape), self.size, self.n_axes),
                _E_BAD_SHAPE,
            )
        if shape[1] != self.n_axes:
            _bad(
                "window has %d axes; the pipeline expects %d (%s)"
                % (shape[1], self.n_axes, ", ".join(self.axes)),
                _E_BAD_SHAPE,
            )
        if shape[0] != self.size:
            _bad(
                "window has %d samples; the pipeline expects %d" % (shape[0], self.size),
                _E_BAD_SHAPE,
            )
        if window.dtype != self.input_dtype:
            _bad(
                "window samples are %s; the pipeline expects %s"
                % (window.dtype, self.input_dtype),
                _E_BAD_DTYPE,
            )
        data = window.data
        fmt = _FORMATS[self.input_dtype]
        step = struct.calcsize(fmt)
        row = step * self.n_axes
        want = self.size * row
        if len(data) != want:
            _bad(
                "window holds %d bytes; %d samples x %d axes of %s take %d"
                % (len(data), self.size, self.n_axes, self.input_dtype, want),
                _E_BAD_SHAPE,
            )
        # One sample at a time: no copy of the window, only short-lived floats.
        check = self.input_dtype == "float32" or self.input_dtype == "float64"
        unpack = struct.unpack_from
        for j in range(self.n_axes):
            col = self._cols[j]
            off = j * step
            for i in range(self.size):
                v = unpack(fmt, data, off)[0]
                if check and v - v != 0.0:
                    _bad(
                        "window sample %d of axis %s is %r; samples must be finite"
                        % (i, self.axes[j], v),
                    )
                col[i] = v
                off += row
        return self._cols

    def features(self, columns, timings=None):
        """Per-axis columns -> the feature values in spec order (an array of doubles).

        The array is the pipeline's own (overwritten by the next call).  ``timings``, a list,
        gets one ``(stage name, µs)`` per feature entry.
        """
        if not _is_list(columns) or len(columns) != self.n_axes:
            _bad(
                "features() takes one column per axis (%d), not %r" % (self.n_axes, columns),
                _E_BAD_SHAPE,
            )
        out = self._values
        known = self._known
        for j in range(self.n_axes):
            known[j] = 0
        k = 0
        for gen, code, axes, param in self._entries:
            if timings is not None:
                t0 = ticks_us()
            for j in axes:
                col = columns[j]
                if col is None or len(col) != self.size:
                    _bad(
                        "column %d (%s) holds %s samples; the window has %d"
                        % (j, self.axes[j], "no" if col is None else len(col), self.size),
                        _E_BAD_SHAPE,
                    )
                if code == _G_RAW:
                    for v in col:
                        out[k] = v
                        k += 1
                else:
                    out[k] = _value(self, code, col, j, param)
                    k += 1
            if timings is not None:
                timings.append((gen, ticks_diff(ticks_us(), t0)))
        return out

    def output(self, values, timings=None):
        """Feature values -> the model input Tensor: scaled, then quantized or encoded.

        The scaled values go to the pipeline's feature buffer (the array ``features()``
        returns); ``timings``, a list, gets ``("scale", µs)`` and ``("quantize", µs)`` or
        ``("encode", µs)`` for the stages the spec has (docs/packs.md).
        """
        n = self.n_features
        if len(values) != n:
            _bad(
                "output() takes %d feature values, not %d" % (n, len(values)),
                _E_BAD_SHAPE,
            )
        if self._scale is not None:
            if timings is not None:
                t0 = ticks_us()
            offsets, divisors = self._scale
            scaled = self._values  # in place when ``values`` is that buffer: element by element
            for i in range(n):
                scaled[i] = (values[i] - offsets[i]) / divisors[i]
            values = scaled
            if timings is not None:
                timings.append(("scale", ticks_diff(ticks_us(), t0)))
        if self._thresholds is not None:
            return self._encode(values, timings)
        if self.out_dtype == "float32":
            data = bytearray(4 * n)
            for i in range(n):
                v = values[i]
                try:
                    struct.pack_into("<f", data, 4 * i, v)
                except OverflowError:  # CPython refuses what rounds to inf; numpy gives inf
                    struct.pack_into("<f", data, 4 * i, float("inf") if v > 0 else float("-inf"))
            return Tensor("float32", self.out_shape, data)
        if timings is not None:
            t0 = ticks_us()
        lo, hi = _QRANGE[self.out_dtype]
        scale = self._qscale
        zp = self._zero_point
        mask = self.out_dtype == "int8"
        data = bytearray(n)
        for i in range(n):
            t = values[i] / scale
            a = abs(t)
            if a < 1e9:  # beyond, the clip decides (and math.floor would overflow on inf)
                r = math.floor(a + 0.5)
                q = (r if t >= 0 else -r) + zp
            else:
                q = hi if t > 0 else lo
            if q < lo:
                q = lo
            elif q > hi:
                q = hi
            data[i] = q & 0xFF if mask else q
        if timings is not None:
            timings.append(("quantize", ticks_diff(ticks_us(), t0)))
        return Tensor(self.out_dtype, self.out_shape, data)

    def _encode(self, values, timings):
        # Thermometer: value i sets bit i * levels + j when it is above threshold j.
        if timings is not None:
            t0 = ticks_us()
        th = self._thresholds
        levels = len(th)
        data = bytearray(self.n_out)
        k = 0
        for i in range(self.n_features):
            v = values[i]
            for j in range(levels):
                if not v > th[j]:
                    break  # the thresholds never descend: the rest stay 0
                data[k + j] = 1
            k += levels
        if timings is not None:
            timings.append(("encode", ticks_diff(ticks_us(), t0)))
        return Tensor("uint8", self.out_shape, data)

    def transform(self, window, timings=None):
        """Raw window Tensor -> model input Tensor (columns, features, output)."""
        return self.output(self.features(self.columns(window), timings), timings)


class Segmenter:
    """Cuts a stream of raw samples into windows of ``size`` samples, ``stride`` apart.

    The first window starts at the first sample pushed.  At most ``size`` samples are held
    between pushes (fewer once a window has gone out); with ``stride > size`` the samples between
    windows are dropped as they arrive.
    """

    def __init__(self, size, stride, n_axes, dtype):
        if not _is_int(size) or size < 1:
            _bad("segmenter size is %r; it must be a positive integer" % (size,))
        if not _is_int(stride) or stride < 1:
            _bad("segmenter stride is %r; it must be a positive integer" % (stride,))
        if not _is_int(n_axes) or n_axes < 1:
            _bad("segmenter n_axes is %r; it must be a positive integer" % (n_axes,))
        fmt = _FORMATS.get(dtype) if isinstance(dtype, str) else None
        if fmt is None:
            _bad(
                "segmenter dtype is %r; samples must be one of %s"
                % (dtype, ", ".join(sorted(_FORMATS))),
                _E_BAD_DTYPE,
            )
        self.size = size
        self.stride = stride
        self.n_axes = n_axes
        self.dtype = dtype
        self._row = n_axes * struct.calcsize(fmt)
        self._buf = bytearray(size * self._row)
        self._view = memoryview(self._buf)
        self.reset()

    def reset(self):
        """Forget the samples held and the window count: the next sample starts a window."""
        self.buffered = 0  # samples held towards the next window
        self._skip = 0  # samples still to drop before the next window starts
        self.windows_out = 0

    def push(self, samples):
        """Add a Tensor ``(n, n_axes)`` of samples; returns the windows completed, in order."""
        shape = samples.shape
        if len(shape) == 3 and shape[0] == 1:
            shape = shape[1:]
        if len(shape) != 2 or shape[1] != self.n_axes:
            _bad(
                "samples have shape %r; the stream expects (n, %d): samples x axes"
                % (tuple(samples.shape), self.n_axes),
                _E_BAD_SHAPE,
            )
        if samples.dtype != self.dtype:
            _bad(
                "samples are %s; the stream expects %s" % (samples.dtype, self.dtype),
                _E_BAD_DTYPE,
            )
        row = self._row
        n = shape[0]
        if len(samples.data) != n * row:
            _bad(
                "samples hold %d bytes; %d samples x %d axes of %s take %d"
                % (len(samples.data), n, self.n_axes, self.dtype, n * row),
                _E_BAD_SHAPE,
            )
        src = memoryview(samples.data)
        buf = self._view
        size = self.size
        out = []
        p = 0
        while p < n:
            if self._skip:
                d = min(self._skip, n - p)
                self._skip -= d
                p += d
                continue
            fill = self.buffered
            d = min(size - fill, n - p)
            buf[fill * row : (fill + d) * row] = src[p * row : (p + d) * row]
            p += d
            fill += d
            if fill < size:
                self.buffered = fill
                break
            w = bytes(self._buf)
            out.append(Tensor(self.dtype, (size, self.n_axes), w))
            self.windows_out += 1
            if self.stride < size:
                keep = size - self.stride
                # From the window just made, not the buffer itself: no overlapping copy.
                buf[0 : keep * row] = memoryview(w)[self.stride * row :]
                self.buffered = keep
            else:
                self.buffered = 0
                self._skip = self.stride - size
        return out
