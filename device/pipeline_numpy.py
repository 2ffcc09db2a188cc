"""The device pipeline's loops with numpy: a CPython board (sim-linux, embedded Linux) with numpy.

``kpdev.device.pipeline`` imports this module once where numpy imports (never on MicroPython) and
hands a ``Pipeline`` its ``Plan``: the window becomes one float64 array, a row an axis, and each
generator runs on every axis at once; numpy scales the feature values, and the plain loops of
``Pipeline.output`` quantize or encode them (on a few dozen values they are faster than numpy's
calls).  The arithmetic is the plain loops', operation for operation: sums left to right from
0.0 (``np.add.accumulate``), the mean before any deviation from it, ``x * x`` squares, the
divisions of the definitions table.  So the doubles are the plain loops', and the model inputs
their bytes.

A deliberate twin of the plain loops in pipeline.py, and like ``kpdev.host.features`` (the host's
batch twin, which device code may not import) numpy: tests/device/test_pipeline.py runs this,
the plain loops and the host on the same windows and compares them bit for bit.
"""

import numpy as np

from kpdev.device.sysinfo import ticks_diff, ticks_us
from kpdev.protocol.errors import DeviceError

_E_BAD_SHAPE = 18
_E_BAD_VALUE = 25

# Generator codes of pipeline.py (the order of the definitions table).
_G_MEAN, _G_STD, _G_MIN, _G_MAX, _G_RMS, _G_ENERGY = 0, 1, 2, 3, 4, 5
_G_ZCR, _G_MCR, _G_SCR, _G_TCR, _G_TOCR, _G_MEAN_DIFF, _G_RAW = 6, 7, 8, 9, 10, 11, 12


def _seqsum(x):
    # Left to right from 0.0 along each row, as the plain loop adds.
    return 0.0 + np.add.accumulate(x, axis=-1)[..., -1]


def _crossings(x, level):
    above = x >= level[:, None]
    return np.count_nonzero(above[:, 1:] != above[:, :-1], axis=-1)


class Plan:
    """What a ``Pipeline`` runs with numpy: its columns, features and scaling."""

    def __init__(self, p):
        self.p = p
        self.dtype = np.dtype(p.input_dtype).newbyteorder("<")
        self.floats = self.dtype.kind == "f"
        self.offsets = self.divisors = None
        if p._scale is not None:
            self.offsets = np.array(p._scale[0], dtype=np.float64)
            self.divisors = np.array(p._scale[1], dtype=np.float64)
        # entries as (gen name, code, axes as an index array or None for all of them, param)
        every = tuple(range(p.n_axes))
        self.entries = [
            (g, c, None if tuple(a) == every else np.array(a, dtype=np.intp), q)
            for g, c, a, q in p._entries
        ]

    def columns(self, data):
        """The window's bytes (checked by the caller) -> float64 ``(n_axes, size)``."""
        p = self.p
        a = np.frombuffer(data, dtype=self.dtype).reshape(p.size, p.n_axes)
        x = np.ascontiguousarray(a.T, dtype=np.float64)
        if self.floats:
            bad = np.argwhere(~np.isfinite(x))
            if bad.size:
                j, i = (int(v) for v in bad[0])  # the plain loops' order: axis, then sample
                raise DeviceError(
                    "pipeline: window sample %d of axis %s is %r; samples must be finite"
                    % (i, p.axes[j], float(x[j, i])),
                    _E_BAD_VALUE,
                )
        return x

    def features(self, columns, timings=None):
        """Columns (``columns()``'s array, or one sequence per axis) -> float64 features."""
        p = self.p
        try:
            x = np.asarray(columns, dtype=np.float64)
        except (TypeError, ValueError):
            x = None
        if x is None or x.ndim != 2 or x.shape != (p.n_axes, p.size):
            raise DeviceError(
                "pipeline: features() takes one column of %d samples per axis (%d), not %r"
                % (p.size, p.n_axes, columns if x is None else x.shape),
                _E_BAD_SHAPE,
            )
        size = p.size
        out = np.empty(p.n_features, dtype=np.float64)
        mean = std = energy = None
        k = 0
        for gen, code, axes, param in self.entries:
            if timings is not None:
                t0 = ticks_us()
            if code == _G_RAW:
                v = (x if axes is None else x[axes]).ravel()
            else:
                if code in (_G_MEAN, _G_STD, _G_MCR, _G_SCR, _G_TOCR) and mean is None:
                    mean = _seqsum(x) / size
                if code in (_G_STD, _G_SCR) and std is None:
                    if p._exact_std:  # exact integer sums in doubles, one rounding
                        t = _seqsum(x)
                        std = np.sqrt((size * _seqsum(x * x) - t * t) / (size * size))
                    else:
                        d = x - mean[:, None]
                        std = np.sqrt(_seqsum(d * d) / size)
                if code in (_G_RMS, _G_ENERGY) and energy is None:
                    energy = _seqsum(x * x) / size
                if code == _G_MEAN:
                    v = mean
                elif code == _G_STD:
                    v = std
                elif code == _G_MIN:
                    v = x.min(axis=-1)
                elif code == _G_MAX:
                    v = x.max(axis=-1)
                elif code == _G_RMS:
                    v = np.sqrt(energy)
                elif code == _G_ENERGY:
                    v = energy
                elif code == _G_MEAN_DIFF:
                    v = (x[:, size - 1] - x[:, 0]) / (size - 1)
                else:
                    if code == _G_ZCR:
                        c = _crossings(x, np.zeros(p.n_axes))
                    elif code == _G_MCR:
                        c = _crossings(x, mean)
                    elif code == _G_SCR:
                        c = _crossings(x, mean + param * std)
                    elif code == _G_TCR:
                        c = _crossings(x, np.full(p.n_axes, param))
                    else:  # _G_TOCR
                        c = _crossings(x, mean + param) + _crossings(x, mean - param)
                    v = c / (size - 1)
                if axes is not None:
                    v = v[axes]
            out[k : k + len(v)] = v
            k += len(v)
            if timings is not None:
                timings.append((gen, ticks_diff(ticks_us(), t0)))
        return out

    def scale(self, values):
        """Feature values -> scaled, ``(f - offset) / divisor``, as a list of Python floats."""
        f = np.asarray(values, dtype=np.float64)
        return ((f - self.offsets) / self.divisors).tolist()

    def as_floats(self, values):
        """Feature values as a list of Python floats (the same doubles)."""
        return np.asarray(values, dtype=np.float64).tolist()
