"""TFLite Micro's integer arithmetic, exactly: rounding, requantization and its double math.

Device code (MicroPython and CPython).  TFLM computes its quantization multipliers in C
``double`` from ``float`` scales; a microcontroller port of MicroPython may have only
single-precision floats, so the few double expressions a kernel's prepare step needs are
evaluated here on exact integers instead: a "double" is a pair ``(m, e)`` meaning ``m * 2**e``
with ``|m|`` a 53-bit significand (or 0), and every operation rounds to nearest-even as IEEE 754
does.  Results are therefore bit-identical to TFLM on every port.

Prepare-time only: a small board drops this module once a model is loaded.  The per-element
primitives kernels use while running live in fxp.py.
"""

import struct

# ---------------------------------------------------------------------------------------------
# Exact float32 / double arithmetic at prepare time


def f32_bits(x):
    """The IEEE 754 binary32 bit pattern of a Python float (rounded to float32 first)."""
    return struct.unpack("<I", struct.pack("<f", x))[0]


def _round_bits(m, e, bits):
    """(m, e) with positive integer m, rounded to ``bits`` significant bits, half to even."""
    n = m.bit_length() if hasattr(m, "bit_length") else len(bin(m)) - 2
    if n <= bits:
        return m, e
    drop = n - bits
    q = m >> drop
    r = m - (q << drop)
    half = 1 << (drop - 1)
    if r > half or (r == half and q & 1):
        q += 1
        if q >> bits:
            q >>= 1
            drop += 1
    return q, e + drop


def _normal(m, e, bits):
    if m == 0:
        return 0, 0
    if m < 0:
        q, e = _round_bits(-m, e, bits)
        return -q, e
    return _round_bits(m, e, bits)


def from_f32(bits):
    """Exact (m, e) of a float32 given by its bit pattern (NaN and inf are refused)."""
    exp = (bits >> 23) & 0xFF
    frac = bits & 0x7FFFFF
    if exp == 0xFF:
        raise ValueError("scale is not finite")
    if exp == 0:
        m, e = frac, -149
    else:
        m, e = frac | 0x800000, exp - 150
    if bits >> 31:
        m = -m
    return _normal(m, e, 53)


def from_int(n):
    return _normal(n, 0, 53)


def dmul(a, b):
    """a * b in double precision."""
    return _normal(a[0] * b[0], a[1] + b[1], 53)


def fmul(a, b):
    """a * b in single precision (both operands float32 values)."""
    return _normal(a[0] * b[0], a[1] + b[1], 24)


def _div(a, b, bits):
    if b[0] == 0:
        raise ZeroDivisionError("scale is zero")
    if a[0] == 0:
        return 0, 0
    neg = (a[0] < 0) != (b[0] < 0)
    n, d = abs(a[0]), abs(b[0])
    # Enough quotient bits for rounding: bits + 2 plus a sticky bit from the remainder.
    k = bits + 3 + (len(bin(d)) - len(bin(n)))
    if k < 0:
        k = 0
    q, r = divmod(n << k, d)
    q = (q << 1) | (1 if r else 0)
    m, e = _round_bits(q, a[1] - b[1] - k - 1, bits)
    return (-m if neg else m), e


def ddiv(a, b):
    """a / b in double precision."""
    return _div(a, b, 53)


def fdiv(a, b):
    """a / b in single precision (both operands float32 values)."""
    return _div(a, b, 24)


def dcmp(a, b):
    """-1, 0 or 1 as a <, ==, > b."""
    d = dsub(a, b)[0]
    return (d > 0) - (d < 0)


def dsub(a, b):
    e = min(a[1], b[1])
    return _normal((a[0] << (a[1] - e)) - (b[0] << (b[1] - e)), e, 53)


def round_away(a):
    """C's round()/TfLiteRound: to nearest, halves away from zero, as an int."""
    m, e = a
    if e >= 0:
        return m << e
    neg = m < 0
    m = abs(m)
    q = (m + (1 << (-e - 1))) >> -e
    return -q if neg else q


def quantize_multiplier(d):
    """TFLM's QuantizeMultiplier of a double (m, e): returns (int32 multiplier, shift)."""
    m, e = d
    if m == 0:
        return 0, 0
    if m < 0:
        raise ValueError("negative multiplier")
    m, e = _round_bits(m, e, 53)
    # Normalise to a 53-bit significand: frexp's fraction is m / 2**53, its exponent e + 53.
    n = len(bin(m)) - 2
    m <<= 53 - n
    e -= 53 - n
    shift = e + 53
    q = (m + (1 << 21)) >> 22  # round(fraction * 2**31), half away from zero (m > 0)
    if q == 1 << 31:
        q >>= 1
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def quantize_value(f, scale_bits, zero_point):
    """TFLM's Quantize(): zero_point + round(f / scale) in float32 (f a small float32)."""
    return zero_point + round_away(fdiv(_f32_of(f), from_f32(scale_bits)))


def _f32_of(x):
    return from_f32(f32_bits(x))


def activation_range(act, scale_bits, zero_point, qmin=-128, qmax=127):
    """CalculateActivationRangeQuantized for a fused activation (0 none, 1 relu, 2 relu_n1_to_1,
    3 relu6); returns (act_min, act_max)."""
    if act == 0:
        return qmin, qmax
    if act == 1:
        return max(qmin, quantize_value(0.0, scale_bits, zero_point)), qmax
    if act == 3:
        lo = quantize_value(0.0, scale_bits, zero_point)
        hi = quantize_value(6.0, scale_bits, zero_point)
        return max(qmin, lo), min(qmax, hi)
    if act == 2:
        lo = quantize_value(-1.0, scale_bits, zero_point)
        hi = quantize_value(1.0, scale_bits, zero_point)
        return max(qmin, lo), min(qmax, hi)
    raise ValueError("activation %d" % act)


def f32_value(bits):
    """The float32 bit pattern as a Python float (exact where floats are doubles)."""
    return struct.unpack("<f", struct.pack("<I", bits))[0]
