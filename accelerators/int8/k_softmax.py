"""SOFTMAX and LOGISTIC, int8 in and out (TFLM reference_ops::Softmax on gemmlowp fixed point,
reference_integer_ops::Logistic).  Device code.

Both results depend on the input only through a byte: LOGISTIC through each int8 value, SOFTMAX
through each value's difference to its row maximum (0..255).  So prepare runs gemmlowp's
``exp_on_negative_values`` / ``logistic`` once per possible byte into a table, with TFLM's int32
arithmetic emulated exactly, and run only looks the tables up; per row, softmax computes the
reciprocal of the sum of exponentials as TFLM does.
"""

from array import array

from kpdev.accelerators.int8.fxp import mbqm, rdbpot, srdhm, wrap32
from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError

_E_INFER = const(24)
_INT32_MAX = const(0x7FFFFFFF)
_F32_ONE_256 = const(0x3B800000)  # 1.0f / 256, the only int8 softmax output scale TFLM takes
# Q5.26 for the exp() argument, sums of exponentials in Q12.19 (reference softmax.h).
_SOFTMAX_INT_BITS = const(5)
_ACCUM_INT_BITS = const(12)
# Q4.27 for the logistic() argument (logistic_common.cc).
_LOGISTIC_INT_BITS = const(4)
# A row whose exponentials sum to 2**28 or more makes TFLM's output shift exceed 31: it aborts.
_SUM_LIMIT = const(1 << 28)


# ---------------------------------------------------------------------------------------------
# gemmlowp fixedpoint.h on int32 raw values (Python ints holding int32 values)


def _srmpot(x, exponent):
    """SaturatingRoundingMultiplyByPOT<exponent> of an int32."""
    if exponent > 0:
        threshold = (1 << (31 - exponent)) - 1
        if x > threshold:
            return _INT32_MAX
        if x < -threshold:
            return -_INT32_MAX - 1
        return x << exponent
    if exponent < 0:
        return rdbpot(x, -exponent)
    return x


def _rounding_half_sum(a, b):
    s = a + b
    # (s + sign) / 2 with C's truncating division
    return (s + 1) // 2 if s >= 0 else -((1 - s) // 2)


def _exp_quarter(a):
    """exp_on_interval_between_negative_one_quarter_and_0_excl, Q0.31 -> Q0.31."""
    constant_term = 1895147668  # exp(-1/8)
    x = a + (1 << 28)  # Taylor expansion around -1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    poly = rdbpot(wrap32(srdhm(wrap32(x4_over_4 + x3), 715827883) + x2), 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


# exp(-2**k) in Q0.31 for k = -2..4: gemmlowp's barrel shifter multipliers.
_EXP_BARREL = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)


def exp_on_negative_values(a, int_bits):
    """gemmlowp exp_on_negative_values of a Q(int_bits) int32 a <= 0; returns Q0.31."""
    frac_bits = 31 - int_bits
    quarter = 1 << (frac_bits - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_quarter(_srmpot(a_mod, int_bits))
    remainder = wrap32(a_mod - a)
    for k in range(7):
        exponent = k - 2
        if int_bits > exponent and remainder & (1 << (frac_bits + exponent)):
            result = srdhm(result, _EXP_BARREL[k])
    if int_bits > 5 and a < -(1 << (36 - int_bits)):
        result = 0
    if a == 0:
        result = _INT32_MAX
    return result


def one_over_one_plus_x(a):
    """gemmlowp one_over_one_plus_x_for_x_in_0_1: Q0.31 in, Q0.31 out (Newton-Raphson)."""
    half_denominator = _rounding_half_sum(a, _INT32_MAX)
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))  # 48/17 - 32/17 * d, Q2.29
    for _ in range(3):
        one_minus = wrap32((1 << 29) - srdhm(half_denominator, x))
        x = wrap32(x + _srmpot(srdhm(x, one_minus), 2))
    return _srmpot(x, 1)


def logistic_q4(a):
    """gemmlowp logistic of a Q4.27 int32; returns Q0.31."""
    if a == 0:
        return 1 << 30
    positive = _one_over_one_plus_exp(a if a > 0 else wrap32(-a))
    return positive if a > 0 else _INT32_MAX - positive


def _one_over_one_plus_exp(a):
    return one_over_one_plus_x(exp_on_negative_values(wrap32(-a), _LOGISTIC_INT_BITS))


def _clz32(x):
    """CountLeadingZeros of a positive int32."""
    n = 0
    while x < 0x80000000:
        x <<= 1
        n += 1
    return n


# ---------------------------------------------------------------------------------------------
# Prepare: TFLM's parameters, computed exactly.  fixedpoint and kcommon are imported inside:
# prepare-time modules a small board drops once the model is loaded.


def prepare(ctx, op):
    from kpdev.accelerators.int8.kcommon import need, need_dtype, need_quant

    need(len(op.inputs) == 1 and len(op.outputs) == 1, "takes one input and one output")
    inp = ctx.t(op.inputs[0])
    out = ctx.t(op.outputs[0])
    need_dtype(inp, "int8", "input")
    need_dtype(out, "int8", "output")
    need_quant(inp, "input")
    need_quant(out, "output")
    if op.code == 25:
        return _prepare_softmax(op, inp, out)
    return _prepare_logistic(inp, out)


def _prepare_softmax(op, inp, out):
    from kpdev.accelerators.int8 import fixedpoint as fp
    from kpdev.accelerators.int8.kcommon import need

    need(len(inp.shape) >= 1, "input must have at least one dimension")
    need(out.shape == inp.shape, "output shape %s differs from input %s" % (out.shape, inp.shape))
    need(
        out.zero_point() == -128 and out.scale_bits() == _F32_ONE_256,
        "int8 softmax output must have scale 1/256 and zero point -128, not %r and %d"
        % (fp.f32_value(out.scale_bits()), out.zero_point()),
    )
    opts = op.options
    beta_bits = opts.u32(0) if opts else 0
    # PreprocessSoftmaxScaling(beta, input_scale, 5) in double: min(beta * scale * 2**26,
    # 2**31 - 1); the product of two floats is exact.
    real = fp.dmul(fp.from_f32(beta_bits), fp.from_f32(inp.scale_bits()))
    real = (real[0], real[1] + 31 - _SOFTMAX_INT_BITS)
    cap = fp.from_int(_INT32_MAX)
    if fp.dcmp(real, cap) > 0:
        real = cap
    # QuantizeMultiplierGreaterThanOne aborts TFLM unless the multiplier exceeds 1.
    need(
        fp.dcmp(real, fp.from_int(1)) > 0,
        "beta %r times input scale %r times 2**26 must exceed 1"
        % (fp.f32_value(beta_bits), fp.f32_value(inp.scale_bits())),
    )
    mult, shift = fp.quantize_multiplier(real)
    # diff_min = -CalculateInputRadius(5, shift) = -floor(31 * 2**26 / 2**shift), exact.
    diff_min = -((((1 << _SOFTMAX_INT_BITS) - 1) << (31 - _SOFTMAX_INT_BITS)) >> shift)
    # Tables by d = max - x (0..255): exp(-d * beta * scale) in Q0.31 and in Q12.19; zero
    # where -d is below diff_min, which leaves those outputs at -128 as TFLM's skip does.
    exps = array("i", [0] * 256)
    summands = array("i", [0] * 256)
    for d in range(256):
        if -d >= diff_min:
            # MultiplyByQuantizedMultiplierGreaterThanOne
            scaled = srdhm(wrap32(-d << shift), mult)
            e = exp_on_negative_values(scaled, _SOFTMAX_INT_BITS)
            exps[d] = e
            summands[d] = rdbpot(e, _ACCUM_INT_BITS)  # Rescale<12>
    depth = inp.shape[-1]
    rows = inp.size() // depth if depth else 0
    return (rows, depth, exps, summands)


def _prepare_logistic(inp, out):
    from kpdev.accelerators.int8 import fixedpoint as fp
    from kpdev.accelerators.int8.kcommon import need

    # TFLM checks the output zero point only; the kernel assumes scale 1/256 whatever it is.
    need(out.zero_point() == -128, "int8 logistic output zero point must be -128")
    need(
        out.size() == inp.size(),
        "output %r has %d values for %d inputs" % (out.name, out.size(), inp.size()),
    )
    scale = fp.from_f32(inp.scale_bits())
    need(scale[0] > 0, "input scale must be positive")
    # frexp(input_scale * 2**27): exact, as the float's 24-bit significand fits the multiplier.
    mult, shift = fp.quantize_multiplier((scale[0], scale[1] + 31 - _LOGISTIC_INT_BITS))
    # TFLM's CalculateInputRadius shifts 1LL by this: undefined behaviour when negative.
    need(shift >= 0, "input scale %r is too small" % fp.f32_value(inp.scale_bits()))
    radius = (((1 << _LOGISTIC_INT_BITS) - 1) << (31 - _LOGISTIC_INT_BITS)) >> shift
    zp = inp.zero_point()
    table = bytearray(256)
    for b in range(256):
        x = (b - 256 if b > 127 else b) - zp
        if x <= -radius:
            y = -128
        elif x >= radius:
            y = 127
        else:
            y = rdbpot(logistic_q4(mbqm(x, mult, shift)), 31 - 8) - 128
            y = -128 if y < -128 else 127 if y > 127 else y
        table[b] = y & 0xFF
    return (inp.size(), table)


# ---------------------------------------------------------------------------------------------
# Run


def _run_softmax(x, y, p):
    rows, depth, exps, summands = p
    for r in range(rows):
        base = r * depth
        end = base + depth
        # int8 bytes xor 0x80 are the values + 128: same order, same differences
        top = 0
        for i in range(base, end):
            v = x[i] ^ 0x80
            if v > top:
                top = v
        total = 0
        for i in range(base, end):
            total += summands[top - (x[i] ^ 0x80)]
        if total >= _SUM_LIMIT:
            raise DeviceError(
                "SOFTMAX: a row of %d values sums past TFLM's int8 range (TFLM aborts)" % depth,
                _E_INFER,
            )
        # GetReciprocal(sum, 12): 1 / (1 + x) of the sum scaled into [1, 2)
        clz = _clz32(total)
        recip = one_over_one_plus_x((total << clz) - 0x80000000)
        shift = _ACCUM_INT_BITS - clz + 31 - 8
        half = 1 << (shift - 1)
        for i in range(base, end):
            # recip and exp are non-negative, so gemmlowp's SRDHM and RoundingDivideByPOT
            # reduce to adding half and shifting.
            u = ((((recip * exps[top - (x[i] ^ 0x80)]) + 0x40000000) >> 31) + half) >> shift
            y[i] = (u if u < 255 else 255) ^ 0x80


def _run_logistic(x, y, p):
    n, table = p
    for i in range(n):
        y[i] = table[x[i]]


def run(ctx, op, p):
    x = ctx.buf[op.inputs[0]]
    y = ctx.buf[op.outputs[0]]
    if op.code == 25:
        _run_softmax(x, y, p)
    else:
        _run_logistic(x, y, p)
