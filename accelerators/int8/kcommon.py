"""What several int8 kernels prepare alike: multipliers, biases, activation range, padding.

Device code.  Mirrors TFLM's kernel_util / padding helpers, with the double arithmetic done
exactly (fixedpoint.py).
"""

from array import array

from kpdev.accelerators.int8 import fixedpoint as fp

# Fused activation codes of the schema (ActivationFunctionType).
ACT_NAMES = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")


def need(cond, message):
    """Raise ValueError(message) unless cond (interp turns it into E_MODEL_LOAD)."""
    if not cond:
        raise ValueError(message)


def need_dtype(t, dtype, what):
    need(t.dtype == dtype, "%s %r must be %s, not %s" % (what, t.name, dtype, t.dtype))


def need_quant(t, what):
    need(len(t.scales) >= 1, "%s %r has no quantization parameters" % (what, t.name))


def act_range(act, out):
    """(act_min, act_max) for a fused activation on the int8 output tensor ``out``."""
    need(0 <= act <= 3, "fused activation %s is not supported" % _act_name(act))
    return fp.activation_range(act, out.scale_bits(), out.zero_point())


def _act_name(act):
    return ACT_NAMES[act] if 0 <= act < len(ACT_NAMES) else str(act)


def conv_multipliers(inp, w, out, n, per_tensor_float_product=False):
    """Per-output-channel (multiplier, shift) arrays, as TFLM's conv/FC prepare computes them.

    Per-channel scales: input_scale * filter_scale / output_scale in double.  A per-tensor
    fully connected layer multiplies input and filter scales in float first
    (GetQuantizedConvolutionMultipler), which ``per_tensor_float_product`` selects.
    """
    need_quant(inp, "input")
    need_quant(w, "filter")
    need_quant(out, "output")
    s_in = fp.from_f32(inp.scale_bits())
    s_out = fp.from_f32(out.scale_bits())
    per_channel = len(w.scales) > 1
    if per_channel:
        need(len(w.scales) == n, "filter has %d scales for %d channels" % (len(w.scales), n))
    mult = zeros(n)
    shift = zeros(n)
    # The last scale's result is reused (per-tensor: every channel's); a dict of every
    # channel's would be a few KB of load-time heap on a per-channel layer.
    last = None
    for c in range(n):
        bits = w.scales[c] if per_channel else w.scales[0]
        if bits != last:
            s_w = fp.from_f32(bits)
            if per_tensor_float_product and not per_channel:
                product = fp.fmul(s_in, s_w)
            else:
                product = fp.dmul(s_in, s_w)
            m, sh = fp.quantize_multiplier(fp.ddiv(product, s_out))
            last = bits
        mult[c] = m
        shift[c] = sh
    return mult, shift


def bias_array(ctx, index, n):
    """The int32 bias of ``n`` channels as array('i') (zeros when the op has none)."""
    if index < 0:
        return zeros(n)
    t = ctx.t(index)
    need_dtype(t, "int32", "bias")
    need(t.size() == n, "bias %r has %d values for %d channels" % (t.name, t.size(), n))
    need(t.const is not None, "bias %r is not a constant" % t.name)
    return raw_array("i", ctx.const(index))


def zeros(n):
    """array('i') of ``n`` zeros, made without a list of ``n`` items on the way."""
    try:
        return array("i", bytes(4 * n))  # MicroPython: an array over raw bytes
    except TypeError:
        return array("i", [0]) * n  # CPython


def raw_array(code, raw):
    """A new array of typecode ``code`` over the little-endian bytes ``raw`` (as both the
    model and the machines kpdev runs on are little-endian)."""
    a = array(code)
    try:
        a.frombytes(raw)  # CPython
    except AttributeError:
        a = array(code, bytes(raw))  # MicroPython makes an array of raw bytes this way
    return a


def out_size_and_pad(padding, stride, dilation, in_size, f_size):
    """TFLM's ComputeOutSize and ComputePadding for one spatial dimension -> (out, pad)."""
    eff = (f_size - 1) * dilation + 1
    need(stride > 0 and dilation > 0, "stride and dilation must be positive")
    if padding == 0:  # SAME
        out = (in_size + stride - 1) // stride
    elif padding == 1:  # VALID
        out = (in_size + stride - eff) // stride
    else:
        raise ValueError("padding type %d is not supported" % padding)
    pad = ((out - 1) * stride + eff - in_size) // 2
    return out, (pad if pad > 0 else 0)


def ints(values):
    return array("i", values)
