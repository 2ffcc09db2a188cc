"""The memory learner's int8 / uint8 distance loops as MicroPython viper code.

Device code for MicroPython with the native emitter (compile with ``mpy-cross -march=...``).
The plain loops in learner.py are the reference: these give the same integers, ``knn`` for
``_knn_l1`` / ``_knn_l2`` and ``proto`` for ``_proto_l1`` / ``_proto_l2``, but take the query
as the tensor's bytes (the flip to offset form is free here).  Importing this module anywhere
else (CPython, a port without viper) raises, and learner.py falls back to its plain loops.

Sums are machine words, and each knn distance goes through an int32 array: ``fits`` says
whether a learner's largest possible sums stay within them; a learner for which they do not
runs the plain loops, even where this module imports.

A deliberate twin of learner.py's plain loops: tests/test_learner.py keeps them identical,
``test_same_on_cpython_and_micropython`` running the same scenarios on CPython (plain) and on
the micropython binary (these loops, checked to have run) and ``test_matches_reference``
comparing both with a reference learner.
"""

# Viper code annotates with MicroPython's built-in pointer types (ptr8, ptr32); pyproject.toml's
# per-file ignore covers accelerators/int8/*_viper.py only.
# ruff: noqa: F821

import sys

import micropython
from micropython import const

from kpdev.protocol.compat import MICROPYTHON

# A CPython with a ``micropython`` stand-in module installed gets this far.
if not MICROPYTHON:
    raise ImportError("viper loops run on MicroPython only")

NAME = "viper"

# Largest sum the knn loop hands back in an int32.
_I32_MAX = const(2147483647)


def fits(n, per_class, l2, prototype):
    """Whether the viper loops' results cannot overflow for a learner of these settings."""
    if prototype:
        # A machine-word sum: 32 bits on a 32-bit port.
        term = per_class * 255
        limit = sys.maxsize
    else:
        # Each slot's distance goes through an int32 array.
        term = 255
        limit = _I32_MAX
    if l2:
        term = term * term
    return n * term < limit  # strictly: the loops start from a bound one above


@micropython.viper
def knn(
    mem: ptr8,
    q: ptr8,
    n: int,
    count: int,
    sgn: int,
    l2: int,
    c: int,
    top: ptr32,
    k: int,
    m: int,
) -> int:
    """The ``count`` slots of class ``c`` merged into the k nearest so far; the new fill."""
    j = 0
    s = 0
    while s < count:
        lim = n * 255 + 1  # above any sum: fits, as fits() checked
        if l2:
            lim = n * 65025 + 1
        if m == k:
            lim = int(top[k - 1])
        acc = 0
        i = 0
        while i < n:
            d = (int(mem[j + i]) ^ sgn) - (int(q[i]) ^ sgn)
            if l2:
                acc += d * d
            elif d < 0:
                acc -= d
            else:
                acc += d
            if acc >= lim:
                break
            i += 1
        if acc < lim:
            if m == k:
                m -= 1
            p = m
            while p > 0:
                if int(top[p - 1]) <= acc:
                    break
                top[p] = top[p - 1]
                top[k + p] = top[k + p - 1]
                p -= 1
            top[p] = acc
            top[k + p] = c
            m += 1
        j += n
        s += 1
    return m


@micropython.viper
def proto(sums: ptr32, q: ptr8, n: int, cnt: int, sgn: int, l2: int) -> int:
    """``cnt`` times the L1 (``cnt ** 2`` times the squared L2) distance of q to sums / cnt."""
    acc = 0
    i = 0
    while i < n:
        d = cnt * (int(q[i]) ^ sgn) - int(sums[i])
        if l2:
            acc += d * d
        else:
            if d < 0:
                d = 0 - d
            acc += d
        i += 1
    return acc
