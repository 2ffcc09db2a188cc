"""Operators that move data without arithmetic: RESHAPE, SHAPE, STRIDED_SLICE, PACK,
CONCATENATION, PAD (as TFLM's reference kernels do them).  Device code.

Shapes are static: TFLM takes every tensor's shape from the flatbuffer, so the SHAPE ->
STRIDED_SLICE -> PACK -> RESHAPE chain the TensorFlow Lite converter emits for a Keras Flatten
computes values that RESHAPE does not need; they are still computed, as TFLM does.
"""

from array import array


def need(cond, message):
    # kcommon.need, defined here: this module's run code must not keep kcommon in RAM.
    if not cond:
        raise ValueError(message)


def _strides(shape):
    st = [1] * len(shape)
    for k in range(len(shape) - 2, -1, -1):
        st[k] = st[k + 1] * shape[k + 1]
    return st


def _ints_of(ctx, i):
    t = ctx.t(i)
    need(t.dtype == "int32", "tensor %r must be int32" % t.name)
    raw = bytes(ctx.const(i)) if ctx.is_const(i) else None
    if raw is None:
        return None
    return list(array("i", raw))


def prepare(ctx, op):
    code = op.code
    ins = [ctx.t(i) for i in op.inputs if i >= 0]
    out = ctx.t(op.outputs[0])
    if code == 22:  # RESHAPE
        need(ins[0].nbytes() == out.nbytes(), "RESHAPE changes the size")
        _same_quant(ins[0], out)
        return None
    if code == 77:  # SHAPE
        need(out.dtype == "int32", "SHAPE to %s is not supported (int32 only)" % out.dtype)
        need(out.size() == len(ins[0].shape), "SHAPE output size")
        return bytes(array("i", ins[0].shape))
    if code == 45:
        return _prepare_slice(ctx, op, ins, out)
    if code == 83:  # PACK
        o = op.options
        axis = o.i32(1) if o else 0
        rank = len(ins[0].shape)
        if axis < 0:
            axis += rank + 1
        need(0 <= axis <= rank, "PACK axis out of range")
        for t in ins:
            need(t.shape == ins[0].shape and t.dtype == out.dtype, "PACK inputs differ")
            _same_quant(t, out)
        return _concat_params(ins, out, axis, [t.shape[:axis] + [1] + t.shape[axis:] for t in ins])
    if code == 2:  # CONCATENATION
        o = op.options
        axis = o.i32(0) if o else 0
        need(not o or o.i8(1) == 0, "fused activation on CONCATENATION is not supported")
        rank = len(out.shape)
        if axis < 0:
            axis += rank
        need(0 <= axis < rank, "CONCATENATION axis out of range")
        for t in ins:
            need(t.dtype == out.dtype, "CONCATENATION inputs differ in dtype")
            need(len(t.shape) == rank, "CONCATENATION inputs differ in rank")
            _same_quant(t, out)
        return _concat_params(ins, out, axis, [t.shape for t in ins])
    if code == 34:  # PAD
        return _prepare_pad(ctx, op, ins, out)
    raise ValueError("not a data operator")


def _same_quant(a, b):
    if a.dtype == "int8":
        need(
            len(a.scales) == len(b.scales) == 0
            or a.scale_bits() == b.scale_bits()
            and a.zero_point() == b.zero_point(),
            "input %r and output %r must have the same quantization" % (a.name, b.name),
        )


def _concat_params(ins, out, axis, shapes):
    outer = 1
    for d in out.shape[:axis]:
        outer *= d
    item = out.itemsize
    chunks = []
    for s in shapes:
        n = item
        for d in s[axis:]:
            n *= d
        chunks.append(n)
    need(sum(chunks) * outer == out.nbytes(), "output size does not match the inputs")
    return (outer, chunks)


def _prepare_slice(ctx, op, ins, out):
    inp = ins[0]
    _same_quant(inp, out)
    begin = _ints_of(ctx, op.inputs[1])
    end = _ints_of(ctx, op.inputs[2])
    strides = _ints_of(ctx, op.inputs[3]) if len(op.inputs) > 3 else None
    need(begin is not None and end is not None, "STRIDED_SLICE needs constant begin and end")
    o = op.options
    bm = o.i32(0) if o else 0
    em = o.i32(1) if o else 0
    ellipsis = o.i32(2) if o else 0
    new_axis = o.i32(3) if o else 0
    shrink = o.i32(4) if o else 0
    offset = o.u8(5) if o else 0
    need(
        ellipsis == 0 and new_axis == 0, "STRIDED_SLICE ellipsis/new-axis masks are not supported"
    )
    shape = inp.shape
    rank = len(shape)
    need(len(begin) == len(end) <= rank, "STRIDED_SLICE begin/end length")
    if strides is None:
        strides = [1] * len(begin)
    starts = []
    counts = []
    steps = []
    for a in range(rank):
        d = shape[a]
        if a >= len(begin):
            starts.append(0)
            counts.append(d)
            steps.append(1)
            continue
        s = strides[a]
        need(s != 0, "STRIDED_SLICE stride 0")
        b = begin[a]
        e = end[a] + (b if offset else 0)
        if bm & (1 << a):
            start = 0 if s > 0 else d - 1
        else:
            start = b + d if b < 0 else b
            start = max(0, min(d, start)) if s > 0 else max(-1, min(d - 1, start))
        if shrink & (1 << a):
            stop = start + 1
        elif em & (1 << a):
            stop = d if s > 0 else -1
        else:
            stop = e + d if e < 0 else e
            stop = max(0, min(d, stop)) if s > 0 else max(-1, min(d - 1, stop))
        if s > 0:
            n = (stop - start + s - 1) // s if stop > start else 0
        else:
            n = (start - stop - s - 1) // (-s) if start > stop else 0
        starts.append(start)
        counts.append(n)
        steps.append(s)
    total = 1
    for n in counts:
        total *= n
    need(total == out.size(), "STRIDED_SLICE output size %d, expected %d" % (out.size(), total))
    return (starts, counts, steps, _strides(shape), inp.itemsize)


def _prepare_pad(ctx, op, ins, out):
    inp = ins[0]
    need(inp.dtype in ("int8", "int32") and out.dtype == inp.dtype, "PAD dtype")
    _same_quant(inp, out)
    pads = _ints_of(ctx, op.inputs[1])
    need(pads is not None, "PAD needs constant paddings")
    rank = len(inp.shape)
    need(len(pads) == 2 * rank, "PAD paddings shape")
    want = [inp.shape[k] + pads[2 * k] + pads[2 * k + 1] for k in range(rank)]
    need(want == out.shape, "PAD output shape %s, expected %s" % (out.shape, want))
    need(min(pads) >= 0, "negative padding")
    value = out.zero_point() if out.dtype == "int8" else 0
    if len(op.inputs) > 2 and op.inputs[2] >= 0:  # PADV2's constant value
        raw = bytes(ctx.const(op.inputs[2]))
        value = array("b" if out.dtype == "int8" else "i", raw)[0]
    fill = bytes(array("b" if out.dtype == "int8" else "i", [value]))
    return (inp.shape, [pads[2 * k] for k in range(rank)], out.shape, fill, inp.itemsize)


def run(ctx, op, p):
    code = op.code
    dst = ctx.buf[op.outputs[0]]
    if code == 22:
        dst[:] = (
            ctx.buf[op.inputs[0]] if not ctx.is_const(op.inputs[0]) else ctx.const(op.inputs[0])
        )
    elif code == 77:
        dst[:] = p
    elif code == 83 or code == 2:
        outer, chunks = p
        srcs = [_data(ctx, i) for i in op.inputs if i >= 0]
        pos = 0
        for k in range(outer):
            for j in range(len(srcs)):
                n = chunks[j]
                dst[pos : pos + n] = srcs[j][k * n : (k + 1) * n]
                pos += n
    elif code == 45:
        _run_slice(_data(ctx, op.inputs[0]), dst, p)
    elif code == 34:
        _run_pad(_data(ctx, op.inputs[0]), dst, p)


def _data(ctx, i):
    return ctx.const(i) if ctx.is_const(i) else ctx.buf[i]


def _run_slice(src, dst, p):
    starts, counts, steps, strides, item = p
    rank = len(counts)
    for n in counts:
        if n == 0:
            return
    idx = [0] * rank
    pos = 0
    while True:
        off = 0
        for a in range(rank):
            off += (starts[a] + idx[a] * steps[a]) * strides[a]
        off *= item
        dst[pos : pos + item] = src[off : off + item]
        pos += item
        a = rank - 1
        while a >= 0:
            idx[a] += 1
            if idx[a] < counts[a]:
                break
            idx[a] = 0
            a -= 1
        if a < 0:
            return


def _run_pad(src, dst, p):
    shape, before, out_shape, fill, item = p
    n = len(dst) // item
    dst[:] = fill * n
    rank = len(shape)
    if rank == 0:
        return
    ost = _strides(out_shape)
    row = shape[-1] * item
    rows = 1
    for d in shape[:-1]:
        rows *= d
    idx = [0] * (rank - 1)
    for r in range(rows):
        off = before[-1]
        for a in range(rank - 1):
            off += (idx[a] + before[a]) * ost[a]
        off *= item
        dst[off : off + row] = src[r * row : (r + 1) * row]
        a = rank - 2
        while a >= 0:
            idx[a] += 1
            if idx[a] < shape[a]:
                break
            idx[a] = 0
            a -= 1
