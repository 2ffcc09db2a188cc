"""The feature pipeline's hot loops as MicroPython viper and native code.

Device code for MicroPython with the native emitter.  ``kpdev.device.pipeline`` imports this
module once, at its own import, and falls back to its plain loops where it does not import
(CPython, a port without the native emitter).

- viper, integer work only: ``unpack`` copies one axis of a raw window into its column (a byte
  copy: the column has the window's sample type) and finds the first non-finite float sample;
  ``moments`` makes one pass over an 8- or 16-bit integer column for its sum, minimum, maximum
  and sum of squares (exact integers); ``crossings`` counts the changes of ``sample >= t``
  for an integer level ``t``.
- native, floats: ``fsum``, ``fsumsq``, ``dev2``, ``scale`` and ``quantize`` are the plain loops
  of pipeline.py (``_mean``, ``_energy``, ``_std``, ``Pipeline.output``) compiled to machine
  code; they make the same runtime calls in the same order, so they give the same doubles.

Integers are machine words: 32 bits on a microcontroller.  ``moments`` keeps every sum below
2**31 for columns of at most ``MAX_SIZE`` samples of 16 bits (pipeline.py checks this before
choosing it); the sum of squares comes back in three parts (see ``square_sum``).

A deliberate twin of the plain loops in pipeline.py (the reference): tests/device/
test_pipeline.py runs both on the micropython binary, checks which ran, and compares their
features with each other and with the host's numpy twin, bit for bit.
"""

# Viper code annotates with MicroPython's built-in pointer types (ptr8, ptr32); pyproject.toml's
# per-file ignore covers this file.
# ruff: noqa: F821

import math

import micropython
from micropython import const

from kpdev.protocol.compat import MICROPYTHON

# A CPython with a ``micropython`` stand-in module installed gets this far.
if not MICROPYTHON:
    raise ImportError("viper loops run on MicroPython only")

# Longest column ``moments`` takes: 8192 * 65535 and 8192 * 255 * 255 stay below 2**31.
MAX_SIZE = const(8192)


@micropython.viper
def unpack(src: ptr8, dst: ptr8, n: int, row: int, off: int, step: int, check: int) -> int:
    """Copy ``n`` samples of ``step`` bytes, ``row`` bytes apart from ``off``, to ``dst``.

    ``check`` 4 or 8: the samples are float32 or float64; returns the index of the first
    infinite or NaN one (all exponent bits set), or -1.
    """
    s = off
    d = 0
    i = 0
    while i < n:
        k = 0
        while k < step:
            dst[d + k] = src[s + k]
            k += 1
        if check == 4:
            if (int(src[s + 3]) & 0x7F) == 0x7F and (int(src[s + 2]) & 0x80):
                return i
        elif check == 8:
            if (int(src[s + 7]) & 0x7F) == 0x7F and (int(src[s + 6]) & 0xF0) == 0xF0:
                return i
        s += row
        d += step
        i += 1
    return -1


@micropython.viper
def moments(col: ptr8, n: int, width: int, signed: int, out: ptr32):
    """One pass over ``n`` little-endian samples of ``width`` bytes (1 or 2, ``signed`` or not).

    ``out`` gets the sum, the minimum, the maximum and the sum of squares as three parts
    ``a``, ``b``, ``c`` (``square_sum`` puts them together).
    """
    s = 0
    lo = 70000  # above any 8- or 16-bit sample
    hi = -70000
    qa = 0
    qb = 0
    qc = 0
    i = 0
    while i < n:
        if width == 1:
            v = int(col[i])
            if signed and v > 127:
                v -= 256
        else:
            v = int(col[2 * i]) | (int(col[2 * i + 1]) << 8)
            if signed and v > 32767:
                v -= 65536
        s += v
        if v < lo:
            lo = v
        if v > hi:
            hi = v
        # v * v reaches 2**32 for uint16: square |v| = a * 256 + b by parts instead.
        u = v
        if u < 0:
            u = 0 - u
        a = u >> 8
        b = u & 0xFF
        qa += a * a
        qb += a * b
        qc += b * b
        i += 1
    out[0] = s
    out[1] = lo
    out[2] = hi
    out[3] = qa
    out[4] = qb
    out[5] = qc


def square_sum(out):
    """The exact sum of squares from ``moments``' parts: (a * 256 + b)**2 summed."""
    return (out[3] << 16) + (out[4] << 9) + out[5]


@micropython.viper
def crossings(col: ptr8, n: int, width: int, signed: int, t: int) -> int:
    """How often ``sample >= t`` changes between neighbours of ``n`` integer samples."""
    c = 0
    above = 2  # neither 0 nor 1: the first sample sets it
    i = 0
    while i < n:
        if width == 1:
            v = int(col[i])
            if signed and v > 127:
                v -= 256
        else:
            v = int(col[2 * i]) | (int(col[2 * i + 1]) << 8)
            if signed and v > 32767:
                v -= 65536
        now = 0
        if v >= t:
            now = 1
        if now != above:
            if above != 2:
                c += 1
            above = now
        i += 1
    return c


@micropython.native
def fsum(col):
    """Left-to-right sum from 0.0 (pipeline.py ``_mean``'s loop)."""
    s = 0.0
    for v in col:
        s += v
    return s


@micropython.native
def fsumsq(col):
    """Left-to-right sum of ``v * v`` from 0.0 (pipeline.py ``_energy``'s loop)."""
    s = 0.0
    for v in col:
        s += v * v
    return s


@micropython.native
def dev2(col, m):
    """Left-to-right sum of squared deviations from ``m`` (pipeline.py ``_std``'s loop)."""
    s = 0.0
    for v in col:
        d = v - m
        s += d * d
    return s


@micropython.native
def scale(values, offsets, divisors, scaled, n):
    """``Pipeline.output``'s scaling loop: (f - offset) / divisor into ``scaled``."""
    for i in range(n):
        scaled[i] = (values[i] - offsets[i]) / divisors[i]


@micropython.native
def quantize(values, n, scale, zp, lo, hi, data):
    """``Pipeline.output``'s quantization loop into ``data`` (bytes; int8 as two's complement)."""
    for i in range(n):
        t = values[i] / scale
        a = abs(t)
        if a < 1e9:
            r = math.floor(a + 0.5)
            q = (r if t >= 0 else -r) + zp
        else:
            q = hi if t > 0 else lo
        if q < lo:
            q = lo
        elif q > hi:
            q = hi
        data[i] = q & 0xFF
