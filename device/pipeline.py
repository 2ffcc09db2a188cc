"""The feature pipeline on the device: raw sensor windows -> model input (docs/packs.md).

``Pipeline`` checks a pipeline spec once (``pipeline_spec``) and then turns each window (a Tensor
of ``(size, n_axes)`` raw samples) into the model input: per-axis columns, the features in spec
order, scaling, then quantization or an encoding (thermometer bits).  ``Segmenter`` cuts a
stream of samples into those windows.

The arithmetic is fixed so that ``kpdev.host.features`` (numpy) gets the same doubles: sums run
left to right from 0.0, the mean is computed before any deviation from it, ``x * x`` squares,
divisions are by ``n`` (or ``n - 1``) as written in the definitions table.  A board whose
MicroPython has single-precision floats computes in single precision and only approaches the
host's values.

The loops, chosen once at import (``LOOPS``): on MicroPython with the native emitter, viper for
the integer work (unpacking the window; one pass over an 8- or 16-bit column for its sum,
minimum, maximum and sum of squares, exact integers that are the very doubles the float sums
reach; crossings of an integer level) and native code for the float sums; numpy on CPython
(``pipeline_numpy``, for Linux boards); the plain loops of this module elsewhere, and always
with ``Pipeline(spec, "plain")``.

Heap: the per-axis columns and the feature values live in buffers allocated once per
``Pipeline`` (arrays: 8 bytes a feature value, the window's own sample size a sample);
``columns()`` and ``features()`` return those buffers, so their contents last until the next
call.  A call allocates the output tensor's bytes and the short-lived floats of the arithmetic,
nothing the size of the window.  The spec checks are forgotten once the pipeline is made.

Deliberate twins: ``kpdev.host.features`` computes the same pipeline with numpy for the host
(pack building, the reference runtime), ``pipeline_viper`` and ``pipeline_numpy`` are the fast
loops of this module.  The fixed arithmetic keeps them identical; tests/device/test_pipeline.py
``test_parity`` (and the thermometer and extremes parity tests) runs the host and the device
code, under CPython and under the micropython binary, with the fast and the plain loops, on the
same windows, and compares them bit for bit.
"""

import math
import struct
from array import array

from kpdev.device.sysinfo import ticks_diff, ticks_us
from kpdev.protocol.compat import MICROPYTHON, const, forget_modules
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


def _bad(message, code=_E_BAD_VALUE):
    raise DeviceError("pipeline: " + message, code)


def _array(n, typecode="d"):
    # An array of n doubles (or floats), made from range(): sized once, with no temporary the
    # array's size.
    return array(typecode, range(n))


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_list(v):
    return isinstance(v, list) or isinstance(v, tuple)


# -- the loops -----------------------------------------------------------------------------------
# Chosen once, here: viper and native loops on a MicroPython with the native emitter
# (pipeline_viper), numpy on CPython where it imports (pipeline_numpy, for Linux boards), the
# plain loops below elsewhere.  Each gives the same doubles as the plain loops (tests/ check it).
# ``Pipeline(spec, loops="plain")`` takes the plain loops whatever imported.
_viper = None
_numpy = None
if MICROPYTHON:
    try:
        from kpdev.device import pipeline_viper as _viper
    except (ImportError, SyntaxError, ValueError, AttributeError, NotImplementedError):
        _viper = None
else:
    try:
        from kpdev.device import pipeline_numpy as _numpy
    except ImportError:
        _numpy = None
LOOPS = "viper" if _viper is not None else ("numpy" if _numpy is not None else "plain")


# -- feature generators -------------------------------------------------------------------------
# The mean and the standard deviation of a column are kept for the rest of the window: several
# generators need them, and recomputing would give the same doubles anyway.  So are an integer
# column's moments (viper): its sum and sum of squares are exact integers, and below 2**53 (the
# viper loops take columns of at most MAX_SIZE samples of 16 bits), so they are the very doubles
# the plain loops' left-to-right float sums reach.


def _moments(p, col, j):
    # [sum, min, max, squares in parts] of integer column j, one viper pass a window.
    m = p._moms[j]
    if not p._known[j] & 4:
        _viper.moments(col, len(col), p._width, p._signed, m)
        p._known[j] |= 4
    return m


def _mean(p, col, j):
    if p._known[j] & 1:
        return p._means[j]
    if p._ints:
        m = _moments(p, col, j)[0] / len(col)
    else:
        if p._native:
            s = _viper.fsum(col)
        else:
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
    n = len(col)
    if p._exact_std:
        # 8- and 16-bit samples (docs/packs.md): sqrt((n * sum(x^2) - sum(x)^2) / n^2) from the
        # exact integer sums; every product is exact in a double, only the division rounds.
        if p._ints:
            m = _moments(p, col, j)
            s = m[0]
            q = _viper.square_sum(m)
        else:
            s = 0
            q = 0
            for v in col:
                s += v
                q += v * v
        sd = math.sqrt((n * q - s * s) / (n * n))
    else:
        m = _mean(p, col, j)
        if p._native:
            s = _viper.dev2(col, m)
        else:
            s = 0.0
            for v in col:
                d = v - m
                s += d * d
        sd = math.sqrt(s / n)
    p._stds[j] = sd
    p._known[j] |= 2
    return sd


def _energy(p, col, j):
    if p._ints:
        return _viper.square_sum(_moments(p, col, j)) / len(col)
    if p._native:
        return _viper.fsumsq(col) / len(col)
    s = 0.0
    for v in col:
        s += v * v
    return s / len(col)


def _crossings(p, col, level):
    if p._ints:
        # For an integer sample v, v >= level exactly when v >= ceil(level); every 8- or 16-bit
        # sample is above -70000 and below 70000 (NaN: no sample is >= it).
        if -70000.0 < level and level < 70000.0:
            t = math.ceil(level)
        elif level < 0.0:
            t = -70000
        else:
            t = 70000
        return _viper.crossings(col, len(col), p._width, p._signed, t)
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


def _value(p, code, col, j, param):
    # One generator's value for column ``col`` (axis ``j``).  Branches rather than a function
    # a generator: a board's heap holds every function object (about 0.5 KB for thirteen).
    if code == _G_MEAN:
        return _mean(p, col, j)
    if code == _G_STD:
        return _std(p, col, j)
    if code == _G_MIN:
        return float(_moments(p, col, j)[1] if p._ints else min(col))
    if code == _G_MAX:
        return float(_moments(p, col, j)[2] if p._ints else max(col))
    if code == _G_RMS:
        return math.sqrt(_energy(p, col, j))
    if code == _G_ENERGY:
        return _energy(p, col, j)
    if code == _G_MEAN_DIFF:
        # sum(x[i] - x[i-1]) telescopes to x[n-1] - x[0]: the exact value of the definition.
        return (col[len(col) - 1] - col[0]) / (len(col) - 1)
    if code == _G_ZCR:
        c = _crossings(p, col, 0.0)
    elif code == _G_MCR:
        c = _crossings(p, col, _mean(p, col, j))
    elif code == _G_SCR:
        c = _crossings(p, col, _mean(p, col, j) + param * _std(p, col, j))
    elif code == _G_TCR:
        c = _crossings(p, col, param)
    else:  # _G_TOCR
        m = _mean(p, col, j)
        c = _crossings(p, col, m + param) + _crossings(p, col, m - param)
    return c / (len(col) - 1)


class Pipeline:
    """A checked pipeline spec, ready to turn raw windows into model inputs.

    ``loops`` is "auto" (the fastest this runtime has: ``LOOPS``) or "plain" (the reference).
    """

    def __init__(self, spec, loops="auto"):
        if loops != "auto" and loops != "plain":
            _bad("loops is %r; it must be auto or plain" % (loops,))
        from kpdev.device import pipeline_spec

        # Sets axes, n_axes, input_dtype, size, stride, n_features, out_dtype, out_shape,
        # encoding (the parsed {"kind", "levels", "low", "high"} or None), n_out (encoded
        # values are 0 or 1), stage_names, and the checked entries, scaling and quantization.
        pipeline_spec.check(self, spec)
        del pipeline_spec
        forget_modules(("kpdev.device.pipeline_spec",))  # runs once: not kept in the heap
        dtype = self.input_dtype
        # The loops this pipeline runs (see LOOPS): "viper", "numpy" or "plain".
        self.loops = "plain" if loops == "plain" else LOOPS
        self._native = self.loops == "viper"
        self._ints = False  # set by features() for the window at hand
        # Columns hold the samples as they came: the struct format's letter is the array's
        # typecode.  The integer viper loops take 8- and 16-bit samples (bytes a sample, signed).
        fmt = _FORMATS[dtype]
        step = struct.calcsize(fmt)
        self._width = step
        self._signed = fmt[1] == "b" or fmt[1] == "h"
        self._int_loops = self._native and step <= 2 and self.size <= _viper.MAX_SIZE
        if self.loops == "numpy":
            self._np = _numpy.Plan(self)
            return
        # Buffers reused by every window (see the module docstring).
        self._cols = [array(fmt[1], bytes(step * self.size)) for _ in range(self.n_axes)]
        self._values = _array(self.n_features)
        self._means = _array(self.n_axes)
        self._stds = _array(self.n_axes)
        self._known = bytearray(self.n_axes)
        self._moms = None
        if self._int_loops:
            self._moms = [array("i", bytes(24)) for _ in range(self.n_axes)]

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
        samples as they came, of the window's dtype; numpy loops give one float64 array, a row
        an axis.
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
        check = self.input_dtype == "float32" or self.input_dtype == "float64"
        if self.loops == "numpy":
            return self._np.columns(data)
        if self._native:
            kind = step if check else 0  # which float's exponent bits to check
            for j in range(self.n_axes):
                i = _viper.unpack(data, self._cols[j], self.size, row, j * step, step, kind)
                if check and i >= 0:
                    self._not_finite(data, fmt, i, j)
            return self._cols
        # One sample at a time: no copy of the window, only short-lived floats.
        unpack = struct.unpack_from
        for j in range(self.n_axes):
            col = self._cols[j]
            off = j * step
            for i in range(self.size):
                v = unpack(fmt, data, off)[0]
                if check and v - v != 0.0:
                    self._not_finite(data, fmt, i, j)
                col[i] = v
                off += row
        return self._cols

    def _not_finite(self, data, fmt, i, j):
        step = struct.calcsize(fmt)
        v = struct.unpack_from(fmt, data, (i * self.n_axes + j) * step)[0]
        _bad("window sample %d of axis %s is %r; samples must be finite" % (i, self.axes[j], v))

    def features(self, columns, timings=None):
        """Per-axis columns -> the feature values in spec order (an array of doubles).

        The array is the pipeline's own (overwritten by the next call).  ``timings``, a list,
        gets one ``(stage name, µs)`` per feature entry.
        """
        if self.loops == "numpy":
            return self._np.features(columns, timings)
        if not _is_list(columns) or len(columns) != self.n_axes:
            _bad(
                "features() takes one column per axis (%d), not %r" % (self.n_axes, columns),
                _E_BAD_SHAPE,
            )
        # The integer viper loops read the pipeline's own columns, of a known sample type.
        own = columns is self._cols
        ints = self._ints = self._int_loops and own
        moms = self._moms
        size = self.size
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
                if not own and (col is None or len(col) != size):
                    _bad(
                        "column %d (%s) holds %s samples; the window has %d"
                        % (j, self.axes[j], "no" if col is None else len(col), size),
                        _E_BAD_SHAPE,
                    )
                if code == _G_RAW:
                    for v in col:
                        out[k] = v
                        k += 1
                    continue
                if ints and code <= _G_ENERGY and code != _G_STD:
                    # Straight from the column's moments: no call a value.
                    m = moms[j]
                    if not known[j] & 4:
                        _viper.moments(col, size, self._width, self._signed, m)
                        known[j] |= 4
                    if code == _G_MEAN:
                        v = m[0] / size
                        self._means[j] = v
                        known[j] |= 1
                    elif code == _G_MIN:
                        v = float(m[1])
                    elif code == _G_MAX:
                        v = float(m[2])
                    else:
                        v = _viper.square_sum(m) / size
                        if code == _G_RMS:
                            v = math.sqrt(v)
                    out[k] = v
                elif ints and code == _G_MCR:
                    # the commonest crossing rate, without the call to _value
                    lv = self._means[j] if known[j] & 1 else _mean(self, col, j)
                    out[k] = _crossings(self, col, lv) / (size - 1)
                else:
                    out[k] = _value(self, code, col, j, param)
                k += 1
            if timings is not None:
                timings.append((gen, ticks_diff(ticks_us(), t0)))
        return out

    def output(self, values, timings=None):
        """Feature values -> the model input Tensor: scaled, then quantized or encoded.

        The scaled values go to the pipeline's feature buffer (the array ``features()``
        returns; numpy loops make a list instead); ``timings``, a list, gets ``("scale", µs)``
        and ``("quantize", µs)`` or ``("encode", µs)`` for the stages the spec has
        (docs/packs.md).
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
            if self.loops == "numpy":
                values = self._np.scale(values)
            else:
                offsets, divisors = self._scale
                scaled = self._values  # in place when ``values`` is that buffer: item by item
                if self._native:
                    _viper.scale(values, offsets, divisors, scaled, n)
                else:
                    for i in range(n):
                        scaled[i] = (values[i] - offsets[i]) / divisors[i]
                values = scaled
            if timings is not None:
                timings.append(("scale", ticks_diff(ticks_us(), t0)))
        elif self.loops == "numpy":
            values = self._np.as_floats(values)
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
        lo, hi = self._qrange
        data = bytearray(n)
        if self._native:
            _viper.quantize(values, n, self._qscale, self._zero_point, lo, hi, data)
        else:
            scale = self._qscale
            zp = self._zero_point
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
                data[i] = q & 0xFF  # int8 as its two's complement byte
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
        """Raw window Tensor -> model input Tensor (columns, features, output).

        ``timings`` gets ``("unpack", µs)`` for ``columns()`` first, then the other stages.
        """
        if timings is None:
            return self.output(self.features(self.columns(window)))
        t0 = ticks_us()
        cols = self.columns(window)
        timings.append(("unpack", ticks_diff(ticks_us(), t0)))
        return self.output(self.features(cols, timings), timings)


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
