"""CONV_2D and DEPTHWISE_CONV_2D, int8 (TFLM reference_integer_ops::ConvPerChannel and
DepthwiseConvPerChannel; per-tensor filters use the per-channel path with one scale, as TFLM
does).  Device code."""


def prepare(ctx, op):
    # Imported here: prepare-time code a small board drops once the model is loaded.
    from kpdev.accelerators.int8.kcommon import (
        act_range,
        bias_array,
        conv_multipliers,
        ints,
        need,
        need_dtype,
        out_size_and_pad,
    )

    depthwise = op.code == 4
    need(len(op.inputs) >= 2 and len(op.outputs) == 1, "convolution takes 2 or 3 inputs")
    inp = ctx.t(op.inputs[0])
    w = ctx.t(op.inputs[1])
    out = ctx.t(op.outputs[0])
    need_dtype(inp, "int8", "input")
    need_dtype(w, "int8", "filter")
    need_dtype(out, "int8", "output")
    need(ctx.is_const(op.inputs[1]), "filter must be constant")
    need(len(inp.shape) == 4 and len(w.shape) == 4 and len(out.shape) == 4, "tensors must be 4-D")
    o = op.options
    need(o is not None, "options missing")
    padding = o.i8(0)
    sw = o.i32(1)
    sh = o.i32(2)
    if depthwise:
        dm = o.i32(3)
        act = o.i8(4)
        dw = o.i32(5, 1)
        dh = o.i32(6, 1)
    else:
        act = o.i8(3)
        dw = o.i32(4, 1)
        dh = o.i32(5, 1)
    batches, in_h, in_w, in_c = inp.shape
    if depthwise:
        _, f_h, f_w, out_c = w.shape
        dm = out_c // in_c if in_c else 0
        need(dm * in_c == out_c, "filter depth %d is not a multiple of %d" % (out_c, in_c))
        third = dm
    else:
        out_c, f_h, f_w, f_c = w.shape
        need(f_c > 0 and in_c % f_c == 0, "input depth %d vs filter depth %d" % (in_c, f_c))
        need(out_c % (in_c // f_c) == 0, "output channels do not divide into groups")
        third = f_c
    out_h, ph = out_size_and_pad(padding, sh, dh, in_h, f_h)
    out_w, pw = out_size_and_pad(padding, sw, dw, in_w, f_w)
    need(
        out.shape == [batches, out_h, out_w, out_c],
        "output shape %s, expected %s" % (out.shape, [batches, out_h, out_w, out_c]),
    )
    need(
        not w.zero_points or max([abs(z) for z in w.zero_points]) == 0,
        "filter zero point must be 0",
    )
    # Kept arrays first, before the garbage the multipliers' exact arithmetic leaves.
    bias = bias_array(ctx, op.inputs[2] if len(op.inputs) > 2 else -1, out_c)
    dims = ints([batches, in_h, in_w, in_c, out_h, out_w, out_c, f_h, f_w, third])
    geo = ints([sh, sw, dh, dw, ph, pw])
    mult, shift = conv_multipliers(inp, w, out, out_c)
    lo, hi = act_range(act, out)
    return (depthwise, dims, geo, -inp.zero_point(), out.zero_point(), mult, shift, lo, hi, bias)


def run(ctx, op, p):
    depthwise, dims, geo, in_off, out_off, mult, shift, lo, hi, bias = p
    w = ctx.const(op.inputs[1])
    loop = ctx.loops.dwconv if depthwise else ctx.loops.conv
    loop(
        ctx.buf[op.inputs[0]],
        w,
        bias,
        ctx.buf[op.outputs[0]],
        dims,
        geo,
        in_off,
        out_off,
        mult,
        shift,
        lo,
        hi,
    )
