"""Inner loops of the int8 kernels as MicroPython viper code for a 32-bit machine word.

Device code for 32-bit MicroPython ports with the native emitter (Cortex-M, Xtensa, RISC-V;
compile with ``mpy-cross -march=...``).  Same functions and arguments as loops_plain.py, which
is the reference, and as loops_viper.py, the 64-bit variant; interp.select_loops imports this
one only where ``sys.maxsize`` says the machine word is 32 bits, so a 64-bit port never loads
it, nor a 32-bit port the other.

The int32 accumulation is the machine word's own arithmetic (it wraps as TFLM's int32 does).
Requantization needs the high half of a 62-bit product (SaturatingRoundingDoublingHighMul of
the int32 accumulator and a 31-bit multiplier), which no 32-bit viper operation gives, and
MicroPython's Thumb assembler has no ``smull`` (nor has an ARMv6-M core): the product is
therefore assembled from four 16 x 16-bit partial products, every intermediate kept within a
signed 32-bit word, then rounded as gemmlowp does.  That requantization is written out inside
each kernel rather than called: a viper call passes its arguments as objects, and an int32
accumulator above 2**30 would be a heap-allocated long int on every output.

A deliberate twin of loops_plain.py and loops_viper.py: tests/accelerators/test_int8_viper32.py
checks these loops against the plain ones and the CPython reference on an emulated Cortex-M3
(QEMU mps2-an385), over random kernels and the requantization's extreme values.
"""

import micropython

from kpdev.accelerators.int8.pool_viper import pool  # noqa: F401  (part of this module's API)

NAME = "viper"

# The requantization below, in each kernel (`acc` an int32, `m` the multiplier, 0 <= m < 2**31,
# `s` its shift):
#   if s > 0: acc <<= s (wraps in 32 bits, as C leaves it); else rs = -s
#   neg = acc < 0; |acc| = ah * 2**16 + al (|INT32_MIN| = 2**31 reads right through the masks)
#   |acc| * m = h * 2**32 + bit31 * 2**31 + r, built from al*ml, ah*ml, al*mh, ah*mh
#   v = (|acc| * m + 2**30 - neg) >> 31 = 2 * h + bit31 + floor((r + 2**30 - neg) / 2**31),
#       that last sum halved first so that it stays below 2**31; v = -v when neg
#   (the same value as gemmlowp's (ab + nudge) / 2**31 with its division truncating toward 0)
# then RoundingDivideByPOT(v, rs); clamp to the activation range less the output zero point,
# add the zero point (clamping first: v + zero point can pass an int32 limit, where C's int32
# is undefined and the plain loops, in unbounded ints, clamp).


@micropython.viper
def fc(
    x: ptr8,
    w: ptr8,
    bias: ptr32,
    out: ptr8,
    n_in: int,
    n_out: int,
    batches: int,
    in_off: int,
    out_off: int,
    mult: ptr32,
    shift: ptr32,
    act_min: int,
    act_max: int,
):
    b30 = 1  # 2**30: computed, not a literal (see loops_viper._requant)
    b30 = b30 << 30
    lo = act_min - out_off  # clamp before the zero point is added: no int32 overflow
    hi = act_max - out_off
    for b in range(batches):
        xb = b * n_in
        for o in range(n_out):
            acc = 0
            wb = o * n_in
            for i in range(n_in):
                acc += (((x[xb + i] ^ 0x80) - 0x80) + in_off) * ((w[wb + i] ^ 0x80) - 0x80)
            acc += int(bias[o])
            # requantize (see the notes above the kernels)
            m = int(mult[o])
            s = int(shift[o])
            rs = 0
            if s > 0:
                acc = acc << s
            else:
                rs = 0 - s
            neg = 0
            if acc < 0:
                neg = 1
                acc = 0 - acc
            al = acc & 0xFFFF
            ah = (acc >> 16) & 0xFFFF
            ml = m & 0xFFFF
            mh = m >> 16
            t0 = al * ml
            m1 = ah * ml
            m2 = al * mh
            c1 = ((t0 >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
            r = ((c1 & 0x7FFF) << 16) | (t0 & 0xFFFF)
            c = b30 - neg
            v = ah * mh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)
            v = v + v + ((c1 >> 15) & 1) + (((r >> 1) + (c >> 1) + (r & c & 1)) >> 30)
            if neg:
                v = 0 - v
            if rs > 0:
                mask = (1 << rs) - 1
                rem = v & mask
                th = mask >> 1
                if v < 0:
                    th += 1
                v = v >> rs
                if rem > th:
                    v += 1
            if v < lo:
                v = lo
            if v > hi:
                v = hi
            out[b * n_out + o] = v + out_off


@micropython.viper
def conv(
    x: ptr8,
    w: ptr8,
    bias: ptr32,
    out: ptr8,
    dims: ptr32,
    geo: ptr32,
    in_off: int,
    out_off: int,
    mult: ptr32,
    shift: ptr32,
    act_min: int,
    act_max: int,
):
    b30 = 1  # 2**30: computed, not a literal (see loops_viper._requant)
    b30 = b30 << 30
    lo = act_min - out_off  # clamp before the zero point is added: no int32 overflow
    hi = act_max - out_off
    batches = int(dims[0])
    in_h = int(dims[1])
    in_w = int(dims[2])
    in_c = int(dims[3])
    out_h = int(dims[4])
    out_w = int(dims[5])
    out_c = int(dims[6])
    f_h = int(dims[7])
    f_w = int(dims[8])
    f_c = int(dims[9])
    sh = int(geo[0])
    sw = int(geo[1])
    dh = int(geo[2])
    dw = int(geo[3])
    ph = int(geo[4])
    pw = int(geo[5])
    per_group = out_c // (in_c // f_c)
    o = 0
    for b in range(batches):
        for oy in range(out_h):
            y0 = oy * sh - ph
            for ox in range(out_w):
                x0 = ox * sw - pw
                for oc in range(out_c):
                    gc = (oc // per_group) * f_c
                    acc = 0
                    for fy in range(f_h):
                        iy = y0 + dh * fy
                        if iy < 0 or iy >= in_h:
                            continue
                        for fx in range(f_w):
                            ix = x0 + dw * fx
                            if ix < 0 or ix >= in_w:
                                continue
                            ib = ((b * in_h + iy) * in_w + ix) * in_c + gc
                            wb = ((oc * f_h + fy) * f_w + fx) * f_c
                            for ic in range(f_c):
                                xv = ((x[ib + ic] ^ 0x80) - 0x80) + in_off
                                acc += xv * ((w[wb + ic] ^ 0x80) - 0x80)
                    acc += int(bias[oc])
                    # requantize (see the notes above the kernels)
                    m = int(mult[oc])
                    s = int(shift[oc])
                    rs = 0
                    if s > 0:
                        acc = acc << s
                    else:
                        rs = 0 - s
                    neg = 0
                    if acc < 0:
                        neg = 1
                        acc = 0 - acc
                    al = acc & 0xFFFF
                    ah = (acc >> 16) & 0xFFFF
                    ml = m & 0xFFFF
                    mh = m >> 16
                    t0 = al * ml
                    m1 = ah * ml
                    m2 = al * mh
                    c1 = ((t0 >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                    r = ((c1 & 0x7FFF) << 16) | (t0 & 0xFFFF)
                    c = b30 - neg
                    v = ah * mh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)
                    v = v + v + ((c1 >> 15) & 1) + (((r >> 1) + (c >> 1) + (r & c & 1)) >> 30)
                    if neg:
                        v = 0 - v
                    if rs > 0:
                        mask = (1 << rs) - 1
                        rem = v & mask
                        th = mask >> 1
                        if v < 0:
                            th += 1
                        v = v >> rs
                        if rem > th:
                            v += 1
                    if v < lo:
                        v = lo
                    if v > hi:
                        v = hi
                    out[o] = v + out_off
                    o += 1


@micropython.viper
def dwconv(
    x: ptr8,
    w: ptr8,
    bias: ptr32,
    out: ptr8,
    dims: ptr32,
    geo: ptr32,
    in_off: int,
    out_off: int,
    mult: ptr32,
    shift: ptr32,
    act_min: int,
    act_max: int,
):
    b30 = 1  # 2**30: computed, not a literal (see loops_viper._requant)
    b30 = b30 << 30
    lo = act_min - out_off  # clamp before the zero point is added: no int32 overflow
    hi = act_max - out_off
    batches = int(dims[0])
    in_h = int(dims[1])
    in_w = int(dims[2])
    in_c = int(dims[3])
    out_h = int(dims[4])
    out_w = int(dims[5])
    out_c = int(dims[6])
    f_h = int(dims[7])
    f_w = int(dims[8])
    dm = int(dims[9])
    sh = int(geo[0])
    sw = int(geo[1])
    dh = int(geo[2])
    dw = int(geo[3])
    ph = int(geo[4])
    pw = int(geo[5])
    o = 0
    for b in range(batches):
        for oy in range(out_h):
            y0 = oy * sh - ph
            for ox in range(out_w):
                x0 = ox * sw - pw
                for ic in range(in_c):
                    for dmi in range(dm):
                        oc = dmi + ic * dm
                        acc = 0
                        for fy in range(f_h):
                            iy = y0 + dh * fy
                            if iy < 0 or iy >= in_h:
                                continue
                            for fx in range(f_w):
                                ix = x0 + dw * fx
                                if ix < 0 or ix >= in_w:
                                    continue
                                xv = x[((b * in_h + iy) * in_w + ix) * in_c + ic]
                                xv = ((xv ^ 0x80) - 0x80) + in_off
                                wv = w[(fy * f_w + fx) * out_c + oc]
                                acc += xv * ((wv ^ 0x80) - 0x80)
                        acc += int(bias[oc])
                        # requantize (see the notes above the kernels)
                        m = int(mult[oc])
                        s = int(shift[oc])
                        rs = 0
                        if s > 0:
                            acc = acc << s
                        else:
                            rs = 0 - s
                        neg = 0
                        if acc < 0:
                            neg = 1
                            acc = 0 - acc
                        al = acc & 0xFFFF
                        ah = (acc >> 16) & 0xFFFF
                        ml = m & 0xFFFF
                        mh = m >> 16
                        t0 = al * ml
                        m1 = ah * ml
                        m2 = al * mh
                        c1 = ((t0 >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
                        r = ((c1 & 0x7FFF) << 16) | (t0 & 0xFFFF)
                        c = b30 - neg
                        v = ah * mh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)
                        v = v + v + ((c1 >> 15) & 1) + (((r >> 1) + (c >> 1) + (r & c & 1)) >> 30)
                        if neg:
                            v = 0 - v
                        if rs > 0:
                            mask = (1 << rs) - 1
                            rem = v & mask
                            th = mask >> 1
                            if v < 0:
                                th += 1
                            v = v >> rs
                            if rem > th:
                                v += 1
                        if v < lo:
                            v = lo
                        if v > hi:
                            v = hi
                        out[o] = v + out_off
                        o += 1
