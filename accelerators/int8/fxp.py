"""TFLM's per-element integer primitives (gemmlowp), for kernels in plain Python.

Device code, needed while a model runs (fixedpoint.py, the prepare-time arithmetic, is
dropped from a small board's heap once a model is loaded).  Double rounding, as TFLM's default
build (TFLITE_SINGLE_ROUNDING off).
"""

_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul of two int32."""
    if a == b == _INT32_MIN:
        return _INT32_MAX
    ab = a * b
    if ab >= 0:
        return (ab + (1 << 30)) >> 31
    # C division truncates toward zero.
    return -((-(ab + 1 - (1 << 30))) >> 31)


def rdbpot(x, exponent):
    """RoundingDivideByPOT: x / 2**exponent rounded to nearest, halves away from zero."""
    if exponent == 0:
        return x
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def wrap32(x):
    """x as C's int32 arithmetic would leave it (two's complement wrap)."""
    x &= 0xFFFFFFFF
    return x - 0x100000000 if x & 0x80000000 else x


def mbqm(x, multiplier, shift):
    """MultiplyByQuantizedMultiplier(int32 x, multiplier, shift), double rounding."""
    if shift > 0:
        return rdbpot(srdhm(wrap32(x << shift), multiplier), 0)
    return rdbpot(srdhm(x, multiplier), -shift)


def round_half_away_float(v):
    """TfLiteRound of a Python float holding a float32 value, exactly on every float width."""
    n = int(v)  # truncates toward zero
    frac = v - n
    if frac >= 0.5:
        n += 1
    elif frac <= -0.5:
        n -= 1
    return n
