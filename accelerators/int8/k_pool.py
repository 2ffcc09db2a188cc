"""MAX_POOL_2D and AVERAGE_POOL_2D, int8 (TFLM reference_integer_ops::MaxPool/AveragePool).
Device code."""

from kpdev.protocol.errors import DeviceError


def prepare(ctx, op):
    # Imported here: prepare-time code a small board drops once the model is loaded.
    from kpdev.accelerators.int8.kcommon import act_range, ints, need, need_dtype, out_size_and_pad

    need(len(op.inputs) == 1 and len(op.outputs) == 1, "pooling takes one input")
    inp = ctx.t(op.inputs[0])
    out = ctx.t(op.outputs[0])
    need_dtype(inp, "int8", "input")
    need_dtype(out, "int8", "output")
    need(len(inp.shape) == 4 and len(out.shape) == 4, "tensors must be 4-D")
    o = op.options
    need(o is not None, "options missing")
    padding = o.i8(0)
    sw = o.i32(1)
    sh = o.i32(2)
    f_w = o.i32(3)
    f_h = o.i32(4)
    act = o.i8(5)
    batches, in_h, in_w, c = inp.shape
    out_h, ph = out_size_and_pad(padding, sh, 1, in_h, f_h)
    out_w, pw = out_size_and_pad(padding, sw, 1, in_w, f_w)
    need(
        out.shape == [batches, out_h, out_w, c],
        "output shape %s, expected %s" % (out.shape, [batches, out_h, out_w, c]),
    )
    lo, hi = act_range(act, out)
    dims = ints([batches, in_h, in_w, c, out_h, out_w, f_h, f_w])
    geo = ints([sh, sw, ph, pw])
    return (op.code == 17, dims, geo, lo, hi)


def run(ctx, op, p):
    is_max, dims, geo, lo, hi = p
    if not ctx.loops.pool(
        ctx.buf[op.inputs[0]], ctx.buf[op.outputs[0]], dims, geo, is_max, lo, hi
    ):
        raise DeviceError("AVERAGE_POOL_2D: a window covers no input", 24)
