"""Random calls of the int8 inner loops (loops_*.py, arith_*.py), with the requantization's
extremes, encoded for tests/support/drivers/int8_kernels_driver.py.

A case is ``(name, args)``: ``name`` a loop function (fc, conv, dwconv, pool, add, mul, mean),
``args`` its arguments, where ``int`` is an int32 scalar, ``bytes`` an int8 buffer,
``array('i')`` an int32 array, ``Out(n)`` the n-byte output buffer and ``Scratch(n)`` MEAN's
int32 scratch.  ``reference(case)`` runs it with the plain loops in this process (CPython).
"""

from __future__ import annotations

import random
import struct
from array import array

from kpdev.accelerators.int8 import arith_plain, loops_plain

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


class Out(int):
    """The kernel's output buffer, of this many bytes."""


class Scratch(int):
    """An int32 scratch array of this many elements."""


# -- the requantization's parameters --------------------------------------------------------------


def _mult(rng):
    """A quantized multiplier: usually in [2**30, 2**31), sometimes an extreme or a small one."""
    r = rng.random()
    if r < 0.15:
        return rng.choice(
            (INT32_MAX, INT32_MAX - 1, 1 << 30, (1 << 30) + 1, 0, 1, 0xFFFF, 1 << 16)
        )
    if r < 0.25:
        return rng.randint(0, (1 << 30) - 1)
    return rng.randint(1 << 30, INT32_MAX)


def _shift(rng, positive=True):
    """A shift in -31..30 (TFLM's range), extremes often."""
    r = rng.random()
    lo = -31
    hi = 30 if positive else 0
    if r < 0.3:
        return rng.choice([lo, lo + 1, -1, 0, hi] + ([1, hi - 1] if positive else []))
    if r < 0.6:
        return rng.randint(-12, min(hi, 3))
    return rng.randint(lo, hi)


def _act(rng):
    if rng.random() < 0.7:
        return -128, 127
    a, b = sorted((rng.randint(-128, 127), rng.randint(-128, 127)))
    return a, b


def _i8(rng, n, extremes):
    if extremes:
        return bytes(rng.choice((0x80, 0x7F)) for _ in range(n))
    return bytes(rng.randrange(256) for _ in range(n))


def _bias(rng, n, bound):
    """int32 biases such that |acc + bias| stays an int32 (``bound`` = largest |acc|); near
    the int32 extremes for a third of the channels."""
    room = INT32_MAX - bound
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.33:
            out.append(rng.choice((room, -room, room - rng.randrange(1 << 16), -room)))
        else:
            out.append(rng.randint(-min(room, 1 << 20), min(room, 1 << 20)))
    return array("i", out)


def _requant_args(rng, n):
    mult = array("i", [_mult(rng) for _ in range(n)])
    shift = array("i", [_shift(rng) for _ in range(n)])
    return mult, shift


def fc_case(rng):
    n_in = rng.randint(1, 24)
    n_out = rng.randint(1, 6)
    batches = rng.randint(1, 2)
    extremes = rng.random() < 0.25
    in_off = rng.choice((128, -127, rng.randint(-127, 128)))
    x = _i8(rng, n_in * batches, extremes)
    w = _i8(rng, n_in * n_out, extremes)
    bias = _bias(rng, n_out, n_in * 255 * 128)
    mult, shift = _requant_args(rng, n_out)
    lo, hi = _act(rng)
    out_off = rng.randint(-128, 127)
    args = [x, w, bias, Out(batches * n_out), n_in, n_out, batches, in_off, out_off, mult, shift]
    return "fc", args + [lo, hi]


def _geometry(rng, f_h, f_w):
    """(in_h, in_w, stride h, w, dilation h, w, pad h, w, out_h, out_w) with outputs >= 1."""
    while True:
        in_h, in_w = rng.randint(1, 6), rng.randint(1, 6)
        sh, sw = rng.randint(1, 2), rng.randint(1, 2)
        dh, dw = rng.randint(1, 2), rng.randint(1, 2)
        ph, pw = rng.randint(0, 2), rng.randint(0, 2)
        eff_h, eff_w = (f_h - 1) * dh + 1, (f_w - 1) * dw + 1
        out_h = (in_h + 2 * ph - eff_h) // sh + 1
        out_w = (in_w + 2 * pw - eff_w) // sw + 1
        if out_h >= 1 and out_w >= 1:
            return in_h, in_w, sh, sw, dh, dw, ph, pw, out_h, out_w


def conv_case(rng):
    f_h, f_w = rng.randint(1, 3), rng.randint(1, 3)
    in_h, in_w, sh, sw, dh, dw, ph, pw, out_h, out_w = _geometry(rng, f_h, f_w)
    groups = rng.choice((1, 1, 2))
    f_c = rng.randint(1, 4)
    in_c = f_c * groups
    out_c = groups * rng.randint(1, 3)
    batches = rng.randint(1, 2)
    extremes = rng.random() < 0.25
    x = _i8(rng, batches * in_h * in_w * in_c, extremes)
    w = _i8(rng, out_c * f_h * f_w * f_c, extremes)
    bias = _bias(rng, out_c, f_h * f_w * f_c * 255 * 128)
    mult, shift = _requant_args(rng, out_c)
    lo, hi = _act(rng)
    dims = array("i", [batches, in_h, in_w, in_c, out_h, out_w, out_c, f_h, f_w, f_c])
    geo = array("i", [sh, sw, dh, dw, ph, pw])
    in_off = rng.choice((128, -127, rng.randint(-127, 128)))
    out = Out(batches * out_h * out_w * out_c)
    args = [x, w, bias, out, dims, geo, in_off, rng.randint(-128, 127), mult, shift, lo, hi]
    return "conv", args


def dwconv_case(rng):
    f_h, f_w = rng.randint(1, 3), rng.randint(1, 3)
    in_h, in_w, sh, sw, dh, dw, ph, pw, out_h, out_w = _geometry(rng, f_h, f_w)
    in_c = rng.randint(1, 5)
    dm = rng.randint(1, 2)
    out_c = in_c * dm
    batches = rng.randint(1, 2)
    extremes = rng.random() < 0.25
    x = _i8(rng, batches * in_h * in_w * in_c, extremes)
    w = _i8(rng, f_h * f_w * out_c, extremes)
    bias = _bias(rng, out_c, f_h * f_w * 255 * 128)
    mult, shift = _requant_args(rng, out_c)
    lo, hi = _act(rng)
    dims = array("i", [batches, in_h, in_w, in_c, out_h, out_w, out_c, f_h, f_w, dm])
    geo = array("i", [sh, sw, dh, dw, ph, pw])
    in_off = rng.choice((128, -127, rng.randint(-127, 128)))
    out = Out(batches * out_h * out_w * out_c)
    args = [x, w, bias, out, dims, geo, in_off, rng.randint(-128, 127), mult, shift, lo, hi]
    return "dwconv", args


def pool_case(rng):
    f_h, f_w = rng.randint(1, 3), rng.randint(1, 3)
    in_h, in_w = rng.randint(1, 6), rng.randint(1, 6)
    sh, sw = rng.randint(1, 2), rng.randint(1, 2)
    ph, pw = rng.randint(0, f_h - 1), rng.randint(0, f_w - 1)
    out_h = max(1, (in_h + 2 * ph - f_h) // sh + 1)
    out_w = max(1, (in_w + 2 * pw - f_w) // sw + 1)
    c = rng.randint(1, 4)
    batches = rng.randint(1, 2)
    x = _i8(rng, batches * in_h * in_w * c, rng.random() < 0.25)
    dims = array("i", [batches, in_h, in_w, c, out_h, out_w, f_h, f_w])
    geo = array("i", [sh, sw, ph, pw])
    lo, hi = _act(rng)
    out = Out(batches * out_h * out_w * c)
    return "pool", [x, out, dims, geo, rng.random() < 0.5, lo, hi]


def _plan(rng):
    """A broadcast walk of two operands: (plan, size of a, size of b, size of the output)."""
    rows, n = rng.randint(1, 4), rng.randint(1, 6)
    a_shape = (rng.choice((1, rows)), rng.choice((1, n)))
    b_shape = (rng.choice((1, rows)), rng.choice((1, n)))

    def strides(shape):
        return [shape[1] if shape[0] > 1 else 0, 1 if shape[1] > 1 else 0]

    plan = array("i", [2, rows, n] + strides(a_shape) + strides(b_shape))
    return plan, a_shape[0] * a_shape[1], b_shape[0] * b_shape[1], rows * n


def _table(rng, extremes):
    """256 rescaled inputs of ADD; near +-2**30 when ``extremes`` (the sum stays an int32)."""
    if extremes:
        lo, hi = -(1 << 30), (1 << 30) - 1
        return array("i", [rng.choice((lo, hi, rng.randint(lo, hi))) for _ in range(256)])
    return array("i", [rng.randint(-(1 << 27), 1 << 27) for _ in range(256)])


def add_case(rng):
    plan, na, nb, n = _plan(rng)
    extremes = rng.random() < 0.4
    lo, hi = _act(rng)
    q = array("i", [_mult(rng), -rng.randint(0, 31), rng.randint(-128, 127), lo, hi])
    args = [_i8(rng, na, False), _i8(rng, nb, False), Out(n), plan]
    return "add", args + [_table(rng, extremes), _table(rng, extremes), q]


def mul_case(rng):
    plan, na, nb, n = _plan(rng)
    lo, hi = _act(rng)
    q = array("i", [rng.randint(-127, 128), rng.randint(-127, 128), _mult(rng), _shift(rng)])
    q.extend([rng.randint(-128, 127), lo, hi])
    return "mul", [_i8(rng, na, rng.random() < 0.3), _i8(rng, nb, False), Out(n), plan, q]


def mean_case(rng):
    rows, n = rng.randint(1, 5), rng.randint(1, 6)
    if rng.random() < 0.5:  # reduce the last axis: one sum per row
        plan, nout, count = array("i", [2, rows, n, 1, 0]), rows, n
    else:  # reduce the first axis: one sum per column
        plan, nout, count = array("i", [2, rows, n, 0, 1]), n, rows
    in_zp = rng.choice((-128, 127, rng.randint(-128, 127)))
    q = array("i", [nout, in_zp, count, _mult(rng), _shift(rng), rng.randint(-128, 127)])
    x = _i8(rng, rows * n, rng.random() < 0.3)
    return "mean", [x, Out(nout), Scratch(nout), plan, q]


MAKERS = [fc_case, conv_case, dwconv_case, pool_case, add_case, mul_case, mean_case]


def cases(seed: int, per_kernel: int) -> list:
    """``per_kernel`` random calls of every loop function, from ``seed``."""
    rng = random.Random(seed)
    return [make(rng) for make in MAKERS for _ in range(per_kernel)]


def reference(case) -> tuple[bool, bytes]:
    """(returned True, output bytes) of the plain loops on this interpreter."""
    name, args = case
    real = []
    out = None
    for a in args:
        if isinstance(a, Out):
            out = bytearray(int(a))
            real.append(out)
        elif isinstance(a, Scratch):
            real.append(array("i", [0] * int(a)))
        elif isinstance(a, array):
            real.append(array("i", a))
        else:
            real.append(a)
    mod = arith_plain if name in ("add", "mul", "mean") else loops_plain
    ret = getattr(mod, name)(*real)
    return (ret is None or bool(ret)), bytes(out)


def encode(case_list) -> bytes:
    """The cases as int8_kernels_driver.kernels reads them."""
    parts = [struct.pack("<I", len(case_list))]
    for name, args in case_list:
        parts.append(bytes([len(name)]) + name.encode() + bytes([len(args)]))
        for a in args:
            if isinstance(a, Out):
                parts.append(b"o" + struct.pack("<I", int(a)))
            elif isinstance(a, Scratch):
                parts.append(b"s" + struct.pack("<I", int(a)))
            elif isinstance(a, array):
                parts.append(b"w" + struct.pack("<I", len(a)) + struct.pack("<%di" % len(a), *a))
            elif isinstance(a, bytes):
                parts.append(b"b" + struct.pack("<I", len(a)) + a)
            else:
                parts.append(b"i" + struct.pack("<i", int(a)))
    return b"".join(parts)
