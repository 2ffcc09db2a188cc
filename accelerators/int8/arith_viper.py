"""Inner loops of ADD, MUL and MEAN as MicroPython viper code: machine-word arithmetic.

Device code for MicroPython with the native emitter (compile with ``mpy-cross -march=...``).
Same functions and arguments as arith_plain.py, which is the reference and documents them;
importing this module anywhere else (CPython, a port without viper) raises, and k_arith falls
back to the plain loops.  The rescaling products need 64 bits, hence a 64-bit machine word; a
32-bit port runs arith_viper32.py instead (k_arith checks the word size before importing).

Constants of 2**30 and above are computed at run time, never written as literals: mpy-cross
makes such literals objects (portable small ints), which viper cannot mix with machine ints.

A deliberate twin of arith_plain.py: tests/test_int8_arith.py keeps them identical, checking
both against TFLM's bytes (``test_matches_tflite_micro`` for the plain loops,
``test_micropython_viper_matches_tflite_micro`` for these, which it checks did run).
"""

import sys

import micropython

if sys.maxsize < (1 << 62):
    raise ImportError("viper loops need a 64-bit machine word")

NAME = "viper"


@micropython.viper
def add(a: ptr8, b: ptr8, out: ptr8, plan: ptr32, t1: ptr32, t2: ptr32, q: ptr32):
    b30 = 1  # 2**30 and 2**31: computed, see the module docstring
    b30 = b30 << 30
    b31 = b30 << 1
    m = int(q[0])
    rs = 0 - ((int(q[1]) ^ b31) - b31)
    zp = (int(q[2]) ^ b31) - b31
    lo = (int(q[3]) ^ b31) - b31
    hi = (int(q[4]) ^ b31) - b31
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
            raw = (int(t1[int(a[ia])]) ^ b31) - b31
            raw += (int(t2[int(b[ib])]) ^ b31) - b31
            ab = raw * m
            if ab >= 0:
                v = (ab + b30) >> 31
            else:
                v = 0 - ((b30 - 1 - ab) >> 31)
            if rs > 0:
                th = half
                if v < 0:
                    th += 1
                low = v & mask
                v = v >> rs
                if low > th:
                    v += 1
            v += zp
            if v < lo:
                v = lo
            if v > hi:
                v = hi
            out[o] = v
            o += 1
            ia += sa
            ib += sb


@micropython.viper
def mul(a: ptr8, b: ptr8, out: ptr8, plan: ptr32, q: ptr32):
    b30 = 1  # 2**30, 2**31, 2**32 - 1: computed, see the module docstring
    b30 = b30 << 30
    b31 = b30 << 1
    m32 = (b31 << 1) - 1
    off1 = (int(q[0]) ^ b31) - b31
    off2 = (int(q[1]) ^ b31) - b31
    m = int(q[2])
    s = (int(q[3]) ^ b31) - b31
    zp = (int(q[4]) ^ b31) - b31
    lo = (int(q[5]) ^ b31) - b31
    hi = (int(q[6]) ^ b31) - b31
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
                # x * (1 << shift) in int32, wrapping as C leaves it
                x = (((x << ls) & m32) ^ b31) - b31
            ab = x * m
            if ab >= 0:
                v = (ab + b30) >> 31
            else:
                v = 0 - ((b30 - 1 - ab) >> 31)
            if rs > 0:
                th = half
                if v < 0:
                    th += 1
                low = v & mask
                v = v >> rs
                if low > th:
                    v += 1
            v += zp
            if v < lo:
                v = lo
            if v > hi:
                v = hi
            out[o] = v
            o += 1
            ia += sa
            ib += sb


@micropython.viper
def mean(x: ptr8, out: ptr8, acc: ptr32, plan: ptr32, q: ptr32):
    b30 = 1  # 2**30, 2**31, 2**32 - 1: computed, see the module docstring
    b30 = b30 << 30
    b31 = b30 << 1
    m32 = (b31 << 1) - 1
    nout = int(q[0])
    in_zp = (int(q[1]) ^ b31) - b31
    count = int(q[2])
    m = int(q[3])
    s = (int(q[4]) ^ b31) - b31
    zp = (int(q[5]) ^ b31) - b31
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
        v = ((int(acc[j]) ^ b31) - b31) - in_zp * count
        v = ((v & m32) ^ b31) - b31
        if ls > 0:
            v = (((v << ls) & m32) ^ b31) - b31
        ab = v * m
        if ab >= 0:
            v = (ab + b30) >> 31
        else:
            v = 0 - ((b30 - 1 - ab) >> 31)
        if rs > 0:
            th = half
            if v < 0:
                th += 1
            low = v & mask
            v = v >> rs
            if low > th:
                v += 1
        v += zp
        if v < -128:
            v = -128
        if v > 127:
            v = 127
        out[j] = v
