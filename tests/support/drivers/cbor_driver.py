"""The device CBOR codec, one "<mode> <hex>" request a line in, one answer a line out.

Runs unchanged under CPython and MicroPython (tests/protocol/test_cbor.py).
"""

import struct
import sys

from kpdev.protocol.cbor import Tag, dumps, loads
from kpdev.protocol.errors import DecodeError, EncodeError


def describe(v):
    """Interpreter-independent text for a value; maps sorted (MicroPython's are unordered)."""
    if v is None:
        return "N"
    if v is True:
        return "T"
    if v is False:
        return "F"
    t = type(v)
    if t is int:
        return "i" + str(v)
    if t is float:
        if v != v:
            return "fnan"
        return "f" + struct.pack(">d", v).hex()
    if t is str:
        return "s" + v.encode("utf-8").hex()
    if t is bytes:
        return "b" + v.hex()
    if t is list:
        return "[" + ",".join([describe(x) for x in v]) + "]"
    if t is dict:
        pairs = [describe(k) + ":" + describe(v[k]) for k in v]
        pairs.sort()
        return "{" + ",".join(pairs) + "}"
    if t is Tag:
        return "t" + str(v.tag) + "(" + describe(v.value) + ")"
    return "?" + t.__name__


def _deep(n):
    v = 0
    for _ in range(n):
        v = [v]
    return v


BAD = (2**64, -(2**64) - 1, {1: {2}}, [object()], Tag(-1, 0), Tag("x", 0), _deep(33))


def handle(line):
    parts = line.split(" ")
    mode = parts[0]
    arg = parts[1] if len(parts) > 1 else ""
    try:
        if mode == "rt":
            return dumps(loads(bytes.fromhex(arg))).hex()
        if mode == "desc":
            return describe(loads(bytes.fromhex(arg)))
        if mode == "fuzz":
            v = loads(bytes.fromhex(arg))
            if describe(loads(dumps(v))) != describe(v):
                return "MISMATCH"
            return "OK"
        if mode == "encode":
            return dumps(BAD[int(arg)]).hex()
        return "BUG unknown mode " + mode
    except (DecodeError, EncodeError) as e:
        return "ERR " + type(e).__name__ + " " + str(e).replace("\n", " ")
    except Exception as e:
        return "BUG " + type(e).__name__ + " " + str(e).replace("\n", " ")


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        line = line.strip()
        if line:
            print(handle(line))


if __name__ == "__main__":
    main()
