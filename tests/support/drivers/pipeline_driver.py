"""The device pipeline on requests (CBOR in hex), one answer line each.  Device-code rules
(tests/device/test_pipeline.py).
"""

import struct
import sys

from kpdev.device.pipeline import Pipeline, Segmenter
from kpdev.protocol import cbor
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.tensors import Tensor


def run_transform(req):
    p = Pipeline(req["spec"], req.get("loops", "auto"))
    out = []
    for data in req["windows"]:
        w = Tensor(req["dtype"], req["shape"], data)
        f = p.features(p.columns(w))
        fbytes = struct.pack("<%dd" % len(f), *f)
        o = p.output(f)
        t = p.transform(w)
        out.append([fbytes, o.dtype, list(o.shape), bytes(o.data), bytes(t.data)])
    return {"out": out, "stages": p.stage_names, "n": p.n_features, "loops": p.loops}


def run_segment(req):
    size, stride, n_axes, dtype = req["args"]
    s = Segmenter(size, stride, n_axes, dtype)
    windows = []
    buffered = []
    for chunk in req["chunks"]:
        n = len(chunk) // req["row"]
        for w in s.push(Tensor(dtype, (n, n_axes), chunk)):
            windows.append(bytes(w.data))
        buffered.append(s.buffered)
    return {"windows": windows, "buffered": buffered, "count": s.windows_out}


def handle(line):
    try:
        req = cbor.loads(bytes.fromhex(line))
        op = req["op"]
        if op == "transform":
            ans = run_transform(req)
        elif op == "segment":
            ans = run_segment(req)
        elif op == "spec":
            p = Pipeline(req["spec"])
            ans = {
                "n": p.n_features,
                "shape": list(p.out_shape),
                "stages": p.stage_names,
                "dtype": p.out_dtype,
                "encoding": p.encoding,
                "n_out": p.n_out,
            }
        elif op == "window":
            p = Pipeline(req["spec"], req.get("loops", "auto"))
            p.columns(Tensor(req["dtype"], req["shape"], req["data"]))
            ans = {"ok": True}
        else:
            ans = {"bug": "unknown op " + op}
    except DeviceError as e:
        ans = {"err": e.code, "msg": str(e)}
    except Exception as e:
        ans = {"bug": type(e).__name__ + " " + str(e)}
    return cbor.dumps(ans).hex()


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
