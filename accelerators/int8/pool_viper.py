"""The int8 pooling loop as MicroPython viper code, for machine words of 32 and 64 bits alike.

Device code for MicroPython with the native emitter.  Pooling sums at most a window of int8
values and divides by the count, so it never needs more than 32 bits: loops_viper.py (64-bit
ports) and loops_viper32.py (32-bit ports) both export this ``pool``.  The reference is
loops_plain.pool (a deliberate twin, kept identical by the tests of those modules).
"""

import micropython


@micropython.viper
def _pool(x: ptr8, out: ptr8, dims: ptr32, geo: ptr32, is_max: int, lo: int, hi: int) -> int:
    batches = int(dims[0])
    in_h = int(dims[1])
    in_w = int(dims[2])
    c = int(dims[3])
    out_h = int(dims[4])
    out_w = int(dims[5])
    f_h = int(dims[6])
    f_w = int(dims[7])
    sh = int(geo[0])
    sw = int(geo[1])
    ph = int(geo[2])
    pw = int(geo[3])
    o = 0
    for b in range(batches):
        for oy in range(out_h):
            y0 = oy * sh - ph
            fy0 = 0 - y0
            if fy0 < 0:
                fy0 = 0
            fy1 = in_h - y0
            if fy1 > f_h:
                fy1 = f_h
            for ox in range(out_w):
                x0 = ox * sw - pw
                fx0 = 0 - x0
                if fx0 < 0:
                    fx0 = 0
                fx1 = in_w - x0
                if fx1 > f_w:
                    fx1 = f_w
                for ch in range(c):
                    acc = 0
                    if is_max:
                        acc = -128
                    count = 0
                    for fy in range(fy0, fy1):
                        row = ((b * in_h + y0 + fy) * in_w + x0) * c + ch
                        for fx in range(fx0, fx1):
                            v = (x[row + fx * c] ^ 0x80) - 0x80
                            if is_max:
                                if v > acc:
                                    acc = v
                            else:
                                acc += v
                            count += 1
                    if not is_max:
                        if count == 0:
                            return 0
                        half = count >> 1
                        if acc > 0:
                            acc = (acc + half) // count
                        else:
                            acc = 0 - ((half - acc) // count)
                    if acc < lo:
                        acc = lo
                    if acc > hi:
                        acc = hi
                    out[o] = acc
                    o += 1
    return 1


def pool(x, out, dims, geo, is_max, act_min, act_max):
    """int8 MaxPool / AveragePool (see loops_plain.pool)."""
    return bool(_pool(x, out, dims, geo, 1 if is_max else 0, act_min, act_max))
