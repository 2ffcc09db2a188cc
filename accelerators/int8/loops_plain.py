"""Inner loops of the int8 kernels in plain Python: the reference the viper loops must match.

Device code.  Runs wherever Python does (CPython, and MicroPython ports without the native
emitter).  loops_viper.py has the same functions with the same arguments; interp.select_loops
picks one at import.  Buffers are bytes-like (int8 data as raw bytes); ``mult``, ``shift`` and
``bias`` are ``array('i')``.  The arithmetic is TFLM's, element for element: int32 accumulate,
MultiplyByQuantizedMultiplier with double rounding, add the output zero point, clamp.

A deliberate twin of loops_viper.py (the same loops, fast): both must give TFLM's bytes, and
tests/test_int8_ops.py checks it, ``test_matches_tflite_micro`` running these loops on CPython
and ``test_micropython_matches_tflite_micro`` the viper loops on the micropython binary.
"""

from array import array

from kpdev.accelerators.int8.fxp import mbqm

NAME = "plain"


def s8(buf):
    """int8 values of a bytes-like object, as an array('b')."""
    return array("b", bytes(buf))


def fc(x, w, bias, out, n_in, n_out, batches, in_off, out_off, mult, shift, act_min, act_max):
    """out[b, o] = requant(sum_i (x[b, i] + in_off) * w[o, i] + bias[o])."""
    # The weights are read a row at a time and each output is stored as it is made: the
    # weights may be a view of flash (a model area) and must not be copied into the heap whole.
    xs = s8(x)
    for b in range(batches):
        xb = [v + in_off for v in xs[b * n_in : (b + 1) * n_in]]
        for o in range(n_out):
            acc = 0
            ws = s8(w[o * n_in : (o + 1) * n_in])
            for i in range(n_in):
                acc += xb[i] * ws[i]
            if bias is not None:
                acc += bias[o]
            v = mbqm(acc, mult[o], shift[o]) + out_off
            v = act_min if v < act_min else act_max if v > act_max else v
            out[b * n_out + o] = v & 0xFF


def conv(x, w, bias, out, dims, geo, in_off, out_off, mult, shift, act_min, act_max):
    """ConvPerChannel.  dims = [batches, in_h, in_w, in_c, out_h, out_w, out_c, f_h, f_w,
    filter_in_c]; geo = [stride_h, stride_w, dil_h, dil_w, pad_h, pad_w]."""
    batches, in_h, in_w, in_c, out_h, out_w, out_c, f_h, f_w, f_c = dims
    sh, sw, dh, dw, ph, pw = geo
    # Nothing of the size of a tensor is copied into the heap (a model's weights may be a view
    # of flash): one output channel's filter at a time, the input read in place (for a byte u,
    # (u ^ 0x80) - 0x80 is its int8 value, so x + in_off is (u ^ 0x80) + off), and each output
    # stored as it is made.
    off = in_off - 0x80
    groups = in_c // f_c
    per_group = out_c // groups
    per_oc = f_h * f_w * f_c
    for oc in range(out_c):
        ws = s8(w[oc * per_oc : (oc + 1) * per_oc])
        gc_ = (oc // per_group) * f_c
        b_oc = bias[oc] if bias is not None else 0
        m = mult[oc]
        sft = shift[oc]
        for b in range(batches):
            for oy in range(out_h):
                y0 = oy * sh - ph
                for ox in range(out_w):
                    x0 = ox * sw - pw
                    acc = 0
                    for fy in range(f_h):
                        iy = y0 + dh * fy
                        if iy < 0 or iy >= in_h:
                            continue
                        for fx in range(f_w):
                            ix = x0 + dw * fx
                            if ix < 0 or ix >= in_w:
                                continue
                            ib = ((b * in_h + iy) * in_w + ix) * in_c + gc_
                            wb = (fy * f_w + fx) * f_c
                            for ic in range(f_c):
                                acc += ws[wb + ic] * ((x[ib + ic] ^ 0x80) + off)
                    v = mbqm(acc + b_oc, m, sft) + out_off
                    v = act_min if v < act_min else act_max if v > act_max else v
                    out[((b * out_h + oy) * out_w + ox) * out_c + oc] = v & 0xFF


def dwconv(x, w, bias, out, dims, geo, in_off, out_off, mult, shift, act_min, act_max):
    """DepthwiseConvPerChannel.  dims = [batches, in_h, in_w, in_c, out_h, out_w, out_c, f_h,
    f_w, depth_multiplier]; geo as for conv."""
    batches, in_h, in_w, in_c, out_h, out_w, out_c, f_h, f_w, dm = dims
    sh, sw, dh, dw, ph, pw = geo
    # The filter (f_h * f_w * out_c bytes: small) is copied; the input is read in place and
    # outputs are stored as made, as in conv.
    off = in_off - 0x80
    ws = s8(w)
    k = 0
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
                                xv = x[((b * in_h + iy) * in_w + ix) * in_c + ic] ^ 0x80
                                acc += ws[(fy * f_w + fx) * out_c + oc] * (xv + off)
                        if bias is not None:
                            acc += bias[oc]
                        v = mbqm(acc, mult[oc], shift[oc]) + out_off
                        v = act_min if v < act_min else act_max if v > act_max else v
                        out[k] = v & 0xFF
                        k += 1


def pool(x, out, dims, geo, is_max, act_min, act_max):
    """int8 MaxPool / AveragePool.  dims = [batches, in_h, in_w, c, out_h, out_w, f_h, f_w];
    geo = [stride_h, stride_w, pad_h, pad_w].  Returns False when a window holds no input."""
    batches, in_h, in_w, c, out_h, out_w, f_h, f_w = dims
    sh, sw, ph, pw = geo
    # The input read in place ((u ^ 0x80) - 0x80: a byte's int8 value), outputs stored as made.
    k = 0
    for b in range(batches):
        for oy in range(out_h):
            y0 = oy * sh - ph
            fy0 = max(0, -y0)
            fy1 = min(f_h, in_h - y0)
            for ox in range(out_w):
                x0 = ox * sw - pw
                fx0 = max(0, -x0)
                fx1 = min(f_w, in_w - x0)
                for ch in range(c):
                    acc = -128 if is_max else 0
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
                            return False
                        if acc > 0:
                            acc = (acc + count // 2) // count
                        else:
                            acc = -((-acc + count // 2) // count)
                    acc = act_min if acc < act_min else act_max if acc > act_max else acc
                    out[k] = acc & 0xFF
                    k += 1
    return True
