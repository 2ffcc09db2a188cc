"""The few-shot memory learner on scenarios: a list of steps in (CBOR in hex, one a line), a
list of results out.  Device-code rules (tests/accelerators/test_learner.py).
"""

import struct
import sys

from kpdev.accelerators.learner import MemoryLearner
from kpdev.protocol import cbor
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.tensors import Tensor, decode_tensor


def pred(p):
    if p[1] is None:
        return [p[0], None]
    return [p[0], struct.pack("<d", p[1])]


def step(box, s):
    op = s[0]
    lr = box[0]
    if op == "new":
        box[0] = MemoryLearner(*s[1], **s[2])
        return "ok"
    if op == "learn":
        return [lr.learn(Tensor(s[1], s[2], d), c) for d, c in zip(s[3], s[4])]  # noqa: B905  (MicroPython's zip takes no strict)
    if op == "predict":
        return [pred(lr.predict(Tensor(s[1], s[2], d))) for d in s[3]]
    if op == "learn1":
        return lr.learn(decode_tensor(s[1]), s[2])
    if op == "add":
        return lr.add_class(s[1])
    if op == "reset":
        lr.reset(s[1])
        return "ok"
    if op == "bytes":
        return lr.to_bytes()
    if op == "load":
        box[0] = MemoryLearner.from_bytes(s[1])
        return "ok"
    if op == "roundtrip":
        box[0] = MemoryLearner.from_bytes(lr.to_bytes())
        return "ok"
    if op == "state":
        return [lr.labels, lr.counts(), lr.samples(), lr.memory_bytes()]
    if op == "info":
        return lr.info()
    return {"bug": "unknown step " + op}


def run(steps):
    box = [None]
    out = []
    for s in steps:
        try:
            out.append(step(box, s))
        except DeviceError as e:
            out.append({"err": e.code, "msg": str(e)})
        except Exception as e:
            out.append({"bug": type(e).__name__ + " " + str(e)})
    return out


def handle(line):
    return cbor.dumps(run(cbor.loads(bytes.fromhex(line)))).hex()


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
