"""Inner loops of ADD, MUL and MEAN as MicroPython viper code for a 32-bit machine word.

Device code for 32-bit MicroPython ports with the native emitter (compile with
``mpy-cross -march=...``).  Same functions and arguments as arith_plain.py, which is the
reference and documents them, and as arith_viper.py, the 64-bit variant; k_arith imports this
one only where the interpreter runs viper loops and ``sys.maxsize`` says 32 bits.  The rescaling
products (int32 by a 31-bit multiplier) are built from 16-bit halves, as in loops_viper32.py,
whose notes give the arithmetic; int32 sums and shifts wrap in the machine word as C's do.

A deliberate twin of arith_plain.py and arith_viper.py: tests/accelerators/test_int8_viper32.py
checks it against the plain loops on an emulated Cortex-M3.
"""

import micropython

NAME = "viper"


@micropython.viper
def add(a: ptr8, b: ptr8, out: ptr8, plan: ptr32, t1: ptr32, t2: ptr32, q: ptr32):
    b30 = 1  # 2**30: computed, not a literal (see arith_viper.py)
    b30 = b30 << 30
    m = int(q[0])
    ml = m & 0xFFFF
    mh = m >> 16
    rs = 0 - int(q[1])
    zp = int(q[2])
    lo = int(q[3]) - zp  # clamp before the zero point is added (loops_viper32.py)
    hi = int(q[4]) - zp
    mask = (1 << rs) - 1
    half = mask >> 1
    nd = int(plan[0])
    n = int(plan[nd])
    sa = int(plan[nd + nd])
    sb = int(plan[nd + nd + nd])
    rows = 1
    j = 0
    while j < nd - 1:
        rows *= int(plan[1 + j])
        j += 1
    o = 0
    for r in range(rows):
        ia = 0
        ib = 0
        rem = r
        j = nd - 2
        while j >= 0:
            e = int(plan[1 + j])
            k = rem % e
            rem = rem // e
            ia += k * int(plan[1 + nd + j])
            ib += k * int(plan[1 + nd + nd + j])
            j -= 1
        for _i in range(n):
            x = int(t1[int(a[ia])]) + int(t2[int(b[ib])])
            # SaturatingRoundingDoublingHighMul(x, m) from 16-bit halves (loops_viper32.py)
            neg = 0
            if x < 0:
                neg = 1
                x = 0 - x
            al = x & 0xFFFF
            ah = (x >> 16) & 0xFFFF
            t0 = al * ml
            m1 = ah * ml
            m2 = al * mh
            c1 = ((t0 >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
            lw = ((c1 & 0x7FFF) << 16) | (t0 & 0xFFFF)
            c = b30 - neg
            v = ah * mh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)
            v = v + v + ((c1 >> 15) & 1) + (((lw >> 1) + (c >> 1) + (lw & c & 1)) >> 30)
            if neg:
                v = 0 - v
            if rs > 0:
                th = half
                if v < 0:
                    th += 1
                low = v & mask
                v = v >> rs
                if low > th:
                    v += 1
            if v < lo:
                v = lo
            if v > hi:
                v = hi
            out[o] = v + zp
            o += 1
            ia += sa
            ib += sb


@micropython.viper
def mul(a: ptr8, b: ptr8, out: ptr8, plan: ptr32, q: ptr32):
    b30 = 1  # 2**30: computed, not a literal (see arith_viper.py)
    b30 = b30 << 30
    off1 = int(q[0])
    off2 = int(q[1])
    m = int(q[2])
    ml = m & 0xFFFF
    mh = m >> 16
    s = int(q[3])
    zp = int(q[4])
    lo = int(q[5]) - zp  # clamp before the zero point is added (loops_viper32.py)
    hi = int(q[6]) - zp
    ls = 0
    rs = 0
    if s > 0:
        ls = s
    else:
        rs = 0 - s
    mask = (1 << rs) - 1
    half = mask >> 1
    nd = int(plan[0])
    n = int(plan[nd])
    sa = int(plan[nd + nd])
    sb = int(plan[nd + nd + nd])
    rows = 1
    j = 0
    while j < nd - 1:
        rows *= int(plan[1 + j])
        j += 1
    o = 0
    for r in range(rows):
        ia = 0
        ib = 0
        rem = r
        j = nd - 2
        while j >= 0:
            e = int(plan[1 + j])
            k = rem % e
            rem = rem // e
            ia += k * int(plan[1 + nd + j])
            ib += k * int(plan[1 + nd + nd + j])
            j -= 1
        for _i in range(n):
            x = (((int(a[ia]) ^ 0x80) - 0x80) + off1) * (((int(b[ib]) ^ 0x80) - 0x80) + off2)
            if ls > 0:
                x = x << ls  # x * (1 << shift), wrapping in the int32 word as C leaves it
            # SaturatingRoundingDoublingHighMul(x, m) from 16-bit halves (loops_viper32.py)
            neg = 0
            if x < 0:
                neg = 1
                x = 0 - x
            al = x & 0xFFFF
            ah = (x >> 16) & 0xFFFF
            t0 = al * ml
            m1 = ah * ml
            m2 = al * mh
            c1 = ((t0 >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
            lw = ((c1 & 0x7FFF) << 16) | (t0 & 0xFFFF)
            c = b30 - neg
            v = ah * mh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)
            v = v + v + ((c1 >> 15) & 1) + (((lw >> 1) + (c >> 1) + (lw & c & 1)) >> 30)
            if neg:
                v = 0 - v
            if rs > 0:
                th = half
                if v < 0:
                    th += 1
                low = v & mask
                v = v >> rs
                if low > th:
                    v += 1
            if v < lo:
                v = lo
            if v > hi:
                v = hi
            out[o] = v + zp
            o += 1
            ia += sa
            ib += sb


@micropython.viper
def mean(x: ptr8, out: ptr8, acc: ptr32, plan: ptr32, q: ptr32):
    b30 = 1  # 2**30: computed, not a literal (see arith_viper.py)
    b30 = b30 << 30
    nout = int(q[0])
    in_zp = int(q[1])
    count = int(q[2])
    m = int(q[3])
    ml = m & 0xFFFF
    mh = m >> 16
    s = int(q[4])
    zp = int(q[5])
    lo = -128 - zp  # clamp before the zero point is added (loops_viper32.py)
    hi = 127 - zp
    for j in range(nout):
        acc[j] = 0
    nd = int(plan[0])
    n = int(plan[nd])
    so = int(plan[nd + nd])
    rows = 1
    j = 0
    while j < nd - 1:
        rows *= int(plan[1 + j])
        j += 1
    i = 0
    for r in range(rows):
        io = 0
        rem = r
        j = nd - 2
        while j >= 0:
            e = int(plan[1 + j])
            io += (rem % e) * int(plan[1 + nd + j])
            rem = rem // e
            j -= 1
        if so == 0:
            total = 0
            for _k in range(n):
                total += (int(x[i]) ^ 0x80) - 0x80
                i += 1
            acc[io] = int(acc[io]) + total  # int32 sums wrap as TFLM's do
        else:
            for _k in range(n):
                acc[io] = int(acc[io]) + ((int(x[i]) ^ 0x80) - 0x80)
                i += 1
                io += so
    ls = 0
    rs = 0
    if s > 0:
        ls = s
    else:
        rs = 0 - s
    mask = (1 << rs) - 1
    half = mask >> 1
    for j in range(nout):
        v = int(acc[j]) - in_zp * count  # wraps in the int32 word, as arith_plain's wrap32
        if ls > 0:
            v = v << ls
        # SaturatingRoundingDoublingHighMul(v, m) from 16-bit halves (loops_viper32.py)
        neg = 0
        if v < 0:
            neg = 1
            v = 0 - v
        al = v & 0xFFFF
        ah = (v >> 16) & 0xFFFF
        t0 = al * ml
        m1 = ah * ml
        m2 = al * mh
        c1 = ((t0 >> 16) & 0xFFFF) + (m1 & 0xFFFF) + (m2 & 0xFFFF)
        lw = ((c1 & 0x7FFF) << 16) | (t0 & 0xFFFF)
        c = b30 - neg
        v = ah * mh + (m1 >> 16) + (m2 >> 16) + (c1 >> 16)
        v = v + v + ((c1 >> 15) & 1) + (((lw >> 1) + (c >> 1) + (lw & c & 1)) >> 30)
        if neg:
            v = 0 - v
        if rs > 0:
            th = half
            if v < 0:
                th += 1
            low = v & mask
            v = v >> rs
            if low > th:
                v += 1
        if v < lo:
            v = lo
        if v > hi:
            v = hi
        out[j] = v + zp
