"""Inner loops of the int8 kernels as MicroPython viper code: machine-word arithmetic.

Device code for MicroPython with the native emitter (compile with ``mpy-cross -march=...``).
Same functions and arguments as loops_plain.py, which is the reference; importing this module
anywhere else (CPython, a port without viper) raises, and interp.select_loops falls back to
the plain loops.

Requantization multiplies an int32 accumulator by a 31-bit multiplier, which needs a 64-bit
product: this module therefore requires a 64-bit machine word (unix and 64-bit ports).  A
32-bit port runs loops_viper32.py, which splits that product into 16-bit halves;
interp.select_loops checks the word size before importing either, so a board never loads the
native code of the one it cannot run (the check below only guards a direct import).

A deliberate twin of loops_plain.py: tests/test_int8_ops.py keeps them identical, checking both
against TFLM's bytes (``test_matches_tflite_micro`` on CPython, plain loops;
``test_micropython_matches_tflite_micro`` on the micropython binary, these loops).
"""

import sys

import micropython

from kpdev.accelerators.int8.pool_viper import pool  # noqa: F401  (part of this module's API)

if sys.maxsize < (1 << 62):
    raise ImportError("viper loops need a 64-bit machine word")

NAME = "viper"


@micropython.viper
def _requant(acc: int, m: int, s: int, out_off: int, lo: int, hi: int) -> int:
    # MultiplyByQuantizedMultiplier (double rounding), + zero point, clamp.
    # Not `1 << 30`: the compiler folds that into a literal, and literals above 2**30 are
    # objects to mpy-cross (portable small ints), which viper cannot mix with machine ints.
    b30 = 1
    b30 = b30 << 30
    b31 = b30 << 1
    rs = 0
    if s > 0:
        # acc * (1 << s) in int32, wrapping as C leaves it (the plain loops' wrap32)
        acc = (((acc << s) & ((b31 << 1) - 1)) ^ b31) - b31
    else:
        rs = 0 - s
    ab = acc * m
    if ab >= 0:
        v = (ab + b30) >> 31
    else:
        v = 0 - ((0 - (ab + 1 - b30)) >> 31)
    if rs > 0:
        mask = (1 << rs) - 1
        rem = v & mask
        th = mask >> 1
        if v < 0:
            th += 1
        v = v >> rs
        if rem > th:
            v += 1
    v += out_off
    if v < lo:
        v = lo
    if v > hi:
        v = hi
    return v


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
    b31 = 1  # sign bit of a ptr32 load (not a literal: see _requant)
    b31 = b31 << 31
    for b in range(batches):
        xb = b * n_in
        for o in range(n_out):
            acc = 0
            wb = o * n_in
            for i in range(n_in):
                acc += (((x[xb + i] ^ 0x80) - 0x80) + in_off) * ((w[wb + i] ^ 0x80) - 0x80)
            acc += (int(bias[o]) ^ b31) - b31
            s = (int(shift[o]) ^ b31) - b31
            v = int(_requant(acc, int(mult[o]), s, out_off, act_min, act_max))
            out[b * n_out + o] = v


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
    b31 = 1  # sign bit of a ptr32 load (not a literal: see _requant)
    b31 = b31 << 31
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
                    acc += (int(bias[oc]) ^ b31) - b31
                    s = (int(shift[oc]) ^ b31) - b31
                    out[o] = int(_requant(acc, int(mult[oc]), s, out_off, act_min, act_max))
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
    b31 = 1  # sign bit of a ptr32 load (not a literal: see _requant)
    b31 = b31 << 31
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
                    for m in range(dm):
                        oc = m + ic * dm
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
                        acc += (int(bias[oc]) ^ b31) - b31
                        s = (int(shift[oc]) ^ b31) - b31
                        out[o] = int(_requant(acc, int(mult[oc]), s, out_off, act_min, act_max))
                        o += 1
