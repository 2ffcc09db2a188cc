"""Inner loops of ADD, MUL and MEAN in plain Python: the reference arith_viper.py must match.

Device code (MicroPython and CPython).  k_arith.py prepares everything these loops need; they
only walk the tensors.  A ``plan`` (array('i')) describes how the output is walked, as TFLM's
BroadcastBinaryOpSimple does after fusing dimensions: ``[nd, extents..., strides...]`` with
``nd`` extents listed outermost first and, after them, ``nd`` strides for each operand.  The
output (for MEAN: the input) is walked contiguously; the innermost extent is one run, and the
outer extents give where each run starts.  Element arithmetic is TFLM's, element for element.

A deliberate twin of arith_viper.py (the same loops, fast): tests/test_int8_arith.py checks both
against TFLM's bytes, ``test_matches_tflite_micro`` and ``test_plain_kernels_chosen_on_request``
these loops, ``test_micropython_viper_matches_tflite_micro`` the viper ones.
"""

from kpdev.accelerators.int8.fxp import mbqm, rdbpot, srdhm, wrap32

NAME = "plain"


def _start(plan, nd, r, k):
    """Offset in operand ``k`` where run ``r`` starts (outer extents decompose ``r``)."""
    off = 0
    j = nd - 2
    base = 1 + nd * (k + 1)
    while j >= 0:
        e = plan[1 + j]
        off += (r % e) * plan[base + j]
        r //= e
        j -= 1
    return off


def _rows(plan, nd):
    rows = 1
    for j in range(nd - 1):
        rows *= plan[1 + j]
    return rows


def add(a, b, out, plan, t1, t2, q):
    """int8 ADD.  ``t1[u]``/``t2[u]``: each input byte ``u`` offset, shifted left by 20 and
    rescaled (AddFunc's scaled_input_val); q = [output multiplier, output shift (<= 0),
    output zero point, act_min, act_max]."""
    ua = bytes(a)
    ub = bytes(b)
    m = q[0]
    rs = -q[1]
    zp = q[2]
    lo = q[3]
    hi = q[4]
    nd = plan[0]
    n = plan[nd]
    sa = plan[2 * nd]
    sb = plan[3 * nd]
    res = bytearray(len(out))
    o = 0
    for r in range(_rows(plan, nd)):
        ia = _start(plan, nd, r, 0)
        ib = _start(plan, nd, r, 1)
        for _ in range(n):
            v = rdbpot(srdhm(t1[ua[ia]] + t2[ub[ib]], m), rs) + zp
            if v < lo:
                v = lo
            elif v > hi:
                v = hi
            res[o] = v & 0xFF
            o += 1
            ia += sa
            ib += sb
    out[:] = res


def mul(a, b, out, plan, q):
    """int8 MUL.  q = [input 1 offset, input 2 offset, multiplier, shift, output zero point,
    act_min, act_max]."""
    ua = bytes(a)
    ub = bytes(b)
    off1 = q[0]
    off2 = q[1]
    ta = [(u - 256 if u > 127 else u) + off1 for u in range(256)]
    tb = [(u - 256 if u > 127 else u) + off2 for u in range(256)]
    m = q[2]
    s = q[3]
    zp = q[4]
    lo = q[5]
    hi = q[6]
    nd = plan[0]
    n = plan[nd]
    sa = plan[2 * nd]
    sb = plan[3 * nd]
    res = bytearray(len(out))
    o = 0
    for r in range(_rows(plan, nd)):
        ia = _start(plan, nd, r, 0)
        ib = _start(plan, nd, r, 1)
        for _ in range(n):
            v = mbqm(ta[ua[ia]] * tb[ub[ib]], m, s) + zp
            if v < lo:
                v = lo
            elif v > hi:
                v = hi
            res[o] = v & 0xFF
            o += 1
            ia += sa
            ib += sb
    out[:] = res


def mean(x, out, acc, plan, q):
    """int8 MEAN (TFLM's QuantizedMeanOrSum).  The plan walks the input; its one stride list
    maps an input position to its output element (0 along reduced axes).  q = [outputs,
    input zero point, elements per output, multiplier, shift (both with 1/count folded in),
    output zero point].  ``acc`` is the viper loop's scratch, unused here."""
    nout = q[0]
    shifted = q[1] * q[2]
    m = q[3]
    s = q[4]
    zp = q[5]
    ux = bytes(x)
    sums = [0] * nout
    nd = plan[0]
    n = plan[nd]
    so = plan[2 * nd]
    i = 0
    for r in range(_rows(plan, nd)):
        io = _start(plan, nd, r, 0)
        for _ in range(n):
            v = ux[i]
            sums[io] += v - 256 if v > 127 else v
            i += 1
            io += so
    res = bytearray(nout)
    for j in range(nout):
        v = mbqm(wrap32(sums[j] - shifted), m, s) + zp
        if v < -128:
            v = -128
        elif v > 127:
            v = 127
        res[j] = v & 0xFF
    out[:] = res
