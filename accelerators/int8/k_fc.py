"""FULLY_CONNECTED, int8 (TFLM reference_integer_ops::FullyConnected, per-tensor or
per-channel weights).  Device code."""


def prepare(ctx, op):
    # Imported here: prepare-time code a small board drops once the model is loaded.
    from kpdev.accelerators.int8.kcommon import (
        act_range,
        bias_array,
        conv_multipliers,
        need,
        need_dtype,
    )

    need(len(op.inputs) >= 2 and len(op.outputs) == 1, "FULLY_CONNECTED takes 2 or 3 inputs")
    inp = ctx.t(op.inputs[0])
    w = ctx.t(op.inputs[1])
    out = ctx.t(op.outputs[0])
    need_dtype(inp, "int8", "input")
    need_dtype(w, "int8", "weights")
    need_dtype(out, "int8", "output")
    need(ctx.is_const(op.inputs[1]), "weights must be constant")
    need(len(w.shape) == 2, "weights must be 2-D, not %s" % w.shape)
    opts = op.options
    act = opts.i8(0) if opts else 0
    need(not opts or opts.i8(1) == 0, "shuffled weight formats are not supported")
    n_out, n_in = w.shape
    need(inp.size() % n_in == 0, "input size %d is not a multiple of %d" % (inp.size(), n_in))
    batches = inp.size() // n_in
    need(out.size() == batches * n_out, "output size does not match %d x %d" % (batches, n_out))
    need(not w.zero_points or w.zero_points[0] == 0, "weights must be symmetric (zero point 0)")
    bias_i = op.inputs[2] if len(op.inputs) > 2 else -1
    # The bias first: kept arrays go before the garbage the multipliers' arithmetic leaves.
    bias = bias_array(ctx, bias_i, n_out)
    mult, shift = conv_multipliers(inp, w, out, n_out, per_tensor_float_product=True)
    lo, hi = act_range(act, out)
    return (n_in, n_out, batches, -inp.zero_point(), out.zero_point(), mult, shift, lo, hi, bias)


def run(ctx, op, p):
    n_in, n_out, batches, in_off, out_off, mult, shift, lo, hi, bias = p
    w = ctx.const(op.inputs[1])
    x = ctx.buf[op.inputs[0]]
    ctx.loops.fc(
        x,
        w,
        bias,
        ctx.buf[op.outputs[0]],
        n_in,
        n_out,
        batches,
        in_off,
        out_off,
        mult,
        shift,
        lo,
        hi,
    )
