"""QUANTIZE (float32 -> int8, int8 -> int8) and DEQUANTIZE (int8 -> float32), as TFLM's
reference kernels compute them.  Device code."""

import struct
from array import array

from kpdev.accelerators.int8.fxp import mbqm
from kpdev.accelerators.int8.fxp import round_half_away_float as round_away


def prepare(ctx, op):
    # Imported here: prepare-time code a small board drops once the model is loaded.
    from kpdev.accelerators.int8 import fixedpoint as fp
    from kpdev.accelerators.int8.kcommon import need, need_quant

    need(len(op.inputs) == 1 and len(op.outputs) == 1, "takes one input and one output")
    inp = ctx.t(op.inputs[0])
    out = ctx.t(op.outputs[0])
    need(inp.size() == out.size(), "input and output sizes differ")
    if op.code == 6:  # DEQUANTIZE
        need(inp.dtype == "int8" and out.dtype == "float32", "DEQUANTIZE runs int8 -> float32")
        need_quant(inp, "input")
        need(len(inp.scales) == 1, "per-channel DEQUANTIZE is not supported")
        return ("deq", fp.f32_value(inp.scale_bits()), inp.zero_point(), inp.size())
    need(out.dtype == "int8", "QUANTIZE to %s is not supported (int8 only)" % out.dtype)
    need_quant(out, "output")
    need(len(out.scales) == 1, "per-channel QUANTIZE is not supported")
    if inp.dtype == "float32":
        return ("q", fp.f32_value(out.scale_bits()), out.zero_point(), inp.size())
    need(inp.dtype == "int8", "QUANTIZE from %s is not supported" % inp.dtype)
    need_quant(inp, "input")
    effective = fp.ddiv(fp.from_f32(inp.scale_bits()), fp.from_f32(out.scale_bits()))
    mult, shift = fp.quantize_multiplier(effective)
    return ("rq", mult, shift, inp.zero_point(), out.zero_point(), inp.size())


def _f32(x):
    # Round a double to float32 (exact where Python floats are float32 already).
    return struct.unpack("<f", struct.pack("<f", x))[0]


def run(ctx, op, p):
    src = ctx.buf[op.inputs[0]]
    dst = ctx.buf[op.outputs[0]]
    kind = p[0]
    if kind == "deq":
        _, scale, zp, n = p
        vals = array("b", bytes(src))
        out = array("f", [0.0] * n)
        for i in range(n):
            out[i] = scale * (vals[i] - zp)  # a double product, stored as float32
        dst[:] = bytes(out)
    elif kind == "q":
        _, scale, zp, n = p
        vals = array("f", bytes(src))
        res = array("b", bytes(n))
        for i in range(n):
            # AffineQuantize: TfLiteRound(val / (float)scale) + zero_point, clamped.
            q = _f32(vals[i] / scale)
            if q != q:
                raise ValueError("input %d is NaN" % i)
            v = round_away(max(-2147483648.0, min(2147483647.0, q))) + zp
            res[i] = -128 if v < -128 else 127 if v > 127 else v
        dst[:] = bytes(res)
    else:
        _, mult, shift, in_zp, out_zp, n = p
        vals = array("b", bytes(src))
        res = array("b", bytes(n))
        for i in range(n):
            v = mbqm(vals[i] - in_zp, mult, shift) + out_zp
            res[i] = -128 if v < -128 else 127 if v > 127 else v
        dst[:] = bytes(res)
