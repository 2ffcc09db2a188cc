"""ADD, MUL and MEAN, int8 (TFLM's reference_integer_ops::Add / Mul with numpy broadcasting,
and reference_ops::QuantizedMeanOrSum).  Device code.

The multipliers are computed as TFLM's prepare steps compute them in double (CalculateOpDataAdd,
CalculateOpDataMul, PrepareMeanOrSumHelper), exactly (fixedpoint.py).  ADD rescales each input
byte the same way every time, so prepare tabulates the 256 scaled values of each input.  The
loops are in arith_viper.py (arith_viper32.py on a 32-bit port) where the interpreter runs
viper loops, else arith_plain.py.
"""

from array import array

from kpdev.protocol.compat import const

_ADD = const(0)
_MUL = const(18)
_MEAN = const(40)
# AddFunc shifts offset int8 inputs left by this before rescaling them (int8; int16 uses 15).
_ADD_LEFT_SHIFT = const(20)
# TFLM's BroadcastBinaryOpSimple walks at most this many dimensions.
_MAX_BROADCAST_RANK = const(8)


def _loops(ctx):
    """arith_viper (arith_viper32 on a 32-bit port) when the interpreter runs viper loops and
    it imports here, else arith_plain."""
    if ctx.loops.NAME == "viper":
        try:
            from kpdev.accelerators.int8.interp import word_bits

            if word_bits() == 32:
                from kpdev.accelerators.int8 import arith_viper32 as loops
            else:
                from kpdev.accelerators.int8 import arith_viper as loops
            return loops
        except (ImportError, SyntaxError, ValueError, AttributeError, NotImplementedError):
            pass
    from kpdev.accelerators.int8 import arith_plain

    return arith_plain


def prepare(ctx, op):
    """Check an ADD, MUL or MEAN and compute its multipliers, tables and walk plan."""
    if op.code == _MEAN:
        return _prepare_mean(ctx, op)
    return _prepare_binary(ctx, op)


def run(ctx, op, p):
    """Run a prepared ADD, MUL or MEAN on the arena."""
    kind = p[0]
    loops = p[1]
    out = ctx.buf[op.outputs[0]]
    if kind == _MEAN:
        plan, q, acc = p[2], p[3], p[4]
        if plan is None:  # empty input or no element per output: TFLM leaves zeros
            out[:] = bytes(len(out))
            return
        loops.mean(ctx.buf[op.inputs[0]], out, acc, plan, q)
        return
    a = _operand(ctx, op.inputs[0])
    if ctx.is_const(op.inputs[0]) and ctx.is_const(op.inputs[1]):
        a = bytes(a)  # a streamed constant lives in the scratch buffer the other one reuses
    b = _operand(ctx, op.inputs[1])
    if kind == _ADD:
        loops.add(a, b, out, p[2], p[3], p[4], p[5])
    else:
        loops.mul(a, b, out, p[2], p[3])


def _operand(ctx, i):
    return ctx.const(i) if ctx.is_const(i) else ctx.buf[i]


# -- ADD and MUL ----------------------------------------------------------------------------


def _prepare_binary(ctx, op):
    # Imported here: prepare-time code a small board drops once the model is loaded.
    from kpdev.accelerators.int8 import fixedpoint as fp
    from kpdev.accelerators.int8.kcommon import act_range, need, need_dtype, need_quant

    name = "ADD" if op.code == _ADD else "MUL"
    need(len(op.inputs) == 2 and len(op.outputs) == 1, "%s takes 2 inputs and 1 output" % name)
    a = ctx.t(op.inputs[0])
    b = ctx.t(op.inputs[1])
    out = ctx.t(op.outputs[0])
    need_dtype(a, "int8", "input")
    need_dtype(b, "int8", "input")
    need_dtype(out, "int8", "output")
    need_quant(a, "input")
    need_quant(b, "input")
    need_quant(out, "output")
    opts = op.options
    act = opts.i8(0) if opts else 0
    lo, hi = act_range(act, out)
    plan = _broadcast_plan(a, b, out)
    loops = _loops(ctx)
    s1 = fp.from_f32(a.scale_bits())
    s2 = fp.from_f32(b.scale_bits())
    so = fp.from_f32(out.scale_bits())
    off1 = -a.zero_point()
    off2 = -b.zero_point()
    if op.code == _MUL:
        m, s = fp.quantize_multiplier(fp.ddiv(fp.dmul(s1, s2), so))
        need(s <= 31, "MUL rescales by more than 2**31")
        q = array("i", [off1, off2, m, s, out.zero_point(), lo, hi])
        return (_MUL, loops, plan, q)
    twice_max = fp.dmul(fp.from_int(2), s1 if fp.dcmp(s1, s2) >= 0 else s2)
    m1, sh1 = _smaller_than_one(fp.ddiv(s1, twice_max), "input 1")
    m2, sh2 = _smaller_than_one(fp.ddiv(s2, twice_max), "input 2")
    real_out = fp.ddiv(twice_max, fp.dmul(fp.from_int(1 << _ADD_LEFT_SHIFT), so))
    mo, sho = _smaller_than_one(real_out, "output")
    t1 = _scaled_inputs(off1, m1, sh1)
    t2 = _scaled_inputs(off2, m2, sh2)
    q = array("i", [mo, sho, out.zero_point(), lo, hi])
    return (_ADD, loops, plan, t1, t2, q)


def _smaller_than_one(real, what):
    """QuantizeMultiplierSmallerThanOneExp, whose checks abort TFLM; here they refuse the model."""
    from kpdev.accelerators.int8 import fixedpoint as fp
    from kpdev.accelerators.int8.kcommon import need

    need(
        real[0] > 0 and fp.dcmp(real, fp.from_int(1)) < 0,
        "ADD's %s rescale factor must lie in (0, 1) (scales too far apart)" % what,
    )
    m, s = fp.quantize_multiplier(real)
    need(s <= 0, "ADD's %s rescale factor rounds up to 1" % what)
    return m, s


def _scaled_inputs(offset, m, shift):
    """AddFunc's scaled_input_val for every input byte (indexed by the unsigned byte)."""
    from kpdev.accelerators.int8.fxp import rdbpot, srdhm, wrap32

    t = array("i", [0] * 256)
    for u in range(256):
        v = (u - 256 if u > 127 else u) + offset
        t[u] = rdbpot(srdhm(wrap32(v << _ADD_LEFT_SHIFT), m), -shift)
    return t


def _broadcast_plan(a, b, out):
    """The walk of the output (see arith_plain.py): one run when the shapes match (TFLM's
    ProcessBroadcastShapes finds no broadcast), else numpy broadcasting as TFLM does it."""
    from kpdev.accelerators.int8.kcommon import need

    rank = max(len(a.shape), len(b.shape), len(out.shape))
    sa = _extend(a.shape, rank)
    sb = _extend(b.shape, rank)
    so = _extend(out.shape, rank)
    n_in = max(len(a.shape), len(b.shape))
    if _extend(a.shape, n_in) == _extend(b.shape, n_in):
        need(
            out.size() == a.size(),
            "output shape %s does not hold the %d elements of the inputs" % (out.shape, a.size()),
        )
        return _plan([[a.size(), 1, 1]])
    need(
        rank <= _MAX_BROADCAST_RANK,
        "a %d-D broadcast; broadcasting is limited to %d dimensions" % (rank, _MAX_BROADCAST_RANK),
    )
    want = []
    for k in range(rank):
        da, db = sa[k], sb[k]
        need(
            da == db or da == 1 or db == 1,
            "input shapes %s and %s do not broadcast" % (a.shape, b.shape),
        )
        want.append(db if da == 1 else da)
    need(so == want, "output shape %s, expected %s (the broadcast inputs)" % (out.shape, want))
    ca = _broadcast_strides(sa, want)
    cb = _broadcast_strides(sb, want)
    return _plan(_fuse(want, [ca, cb]))


def _extend(shape, rank):
    return [1] * (rank - len(shape)) + list(shape)


def _broadcast_strides(shape, out_shape):
    """Element strides of a contiguous tensor of ``shape``, 0 where it broadcasts."""
    strides = [0] * len(shape)
    acc = 1
    for k in range(len(shape) - 1, -1, -1):
        strides[k] = 0 if shape[k] == 1 and out_shape[k] != 1 else acc
        acc *= shape[k]
    return strides


def _fuse(extents, stride_lists):
    """Rows [extent, stride, ...] outermost first: extent-1 dimensions dropped, and a dimension
    merged into the one inside it when every operand steps over it contiguously (as TFLM's
    CanFuseLoops does)."""
    dims = []
    for k in range(len(extents)):
        e = extents[k]
        if e == 1:
            continue
        row = [e] + [s[k] for s in stride_lists]
        if dims:
            prev = dims[-1]
            fuse = True
            for j in range(1, len(row)):
                if prev[j] != row[j] * e:
                    fuse = False
                    break
            if fuse:
                prev[0] *= e
                for j in range(1, len(row)):
                    prev[j] = row[j]
                continue
        dims.append(row)
    if not dims:
        dims.append([1] + [0] * len(stride_lists))
    return dims


def _plan(dims):
    """array('i') [nd, extents..., then each operand's strides] of fused rows."""
    nd = len(dims)
    flat = [nd] + [d[0] for d in dims]
    for j in range(1, len(dims[0])):
        flat += [d[j] for d in dims]
    return array("i", flat)


# -- MEAN -----------------------------------------------------------------------------------


def _prepare_mean(ctx, op):
    import struct

    from kpdev.accelerators.int8 import fixedpoint as fp
    from kpdev.accelerators.int8.kcommon import need, need_dtype, need_quant

    need(len(op.inputs) == 2 and len(op.outputs) == 1, "MEAN takes 2 inputs and 1 output")
    x = ctx.t(op.inputs[0])
    axis_t = ctx.t(op.inputs[1])
    out = ctx.t(op.outputs[0])
    need_dtype(x, "int8", "input")
    need_dtype(out, "int8", "output")
    need_dtype(axis_t, "int32", "axis")
    need_quant(x, "input")
    need_quant(out, "output")
    n_axis = axis_t.size()
    axes = ()
    if n_axis:  # an empty axis list has no data to hold
        need(ctx.is_const(op.inputs[1]), "the axis tensor %r must be constant" % axis_t.name)
        raw = bytes(ctx.const(op.inputs[1]))
        need(len(raw) >= 4 * n_axis, "axis tensor %r is truncated" % axis_t.name)
        axes = struct.unpack("<%di" % n_axis, raw[: 4 * n_axis])
    shape = list(x.shape)
    rank = len(shape)
    reduced = []
    if rank:  # TFLM's ResolveAxis ignores the axes of a scalar
        for ax in axes:
            c = ax + rank if ax < 0 else ax
            need(0 <= c < rank, "axis %d is out of range for a %d-D input" % (ax, rank))
            if c not in reduced:
                reduced.append(c)
    count = 1
    n_out = 1
    for k in range(rank):
        if k in reduced:
            count *= shape[k]
        else:
            n_out *= shape[k]
    need(
        out.size() == n_out,
        "output shape %s does not hold the %d means of input %s over axes %s"
        % (out.shape, n_out, shape, list(axes)),
    )
    loops = _loops(ctx)
    if x.size() == 0 or count == 0:
        return (_MEAN, loops, None, None, None)
    # PrepareMeanOrSumHelper's multiplier, then QuantizedMeanOrSum folds in 1 / count.
    m, s = fp.quantize_multiplier(
        fp.ddiv(fp.from_f32(x.scale_bits()), fp.from_f32(out.scale_bits()))
    )
    shift = _floor_log2(count)
    if shift > 32:
        shift = 32
    if shift > 31 + s:
        shift = 31 + s
    m = (m << shift) // count
    s -= shift
    # Walk the input contiguously; each position adds into its output element.
    ostrides = [0] * rank
    acc = 1
    for k in range(rank - 1, -1, -1):
        if k not in reduced:
            ostrides[k] = acc
            acc *= shape[k]
    plan = _plan(_fuse(shape, [ostrides]))
    q = array("i", [n_out, x.zero_point(), count, m, s, out.zero_point()])
    return (_MEAN, loops, plan, q, array("i", [0] * n_out))


def _floor_log2(n):
    """63 - CountLeadingZeros(n) for n > 0."""
    k = -1
    while n:
        n >>= 1
        k += 1
    return k
