# Runs the tflite_int8 backend under MicroPython on every case that
# tests/accelerators/test_int8_ops.py wrote.
#
# micropython mp_int8_runner.py DIR
#
# DIR/cases.txt has one line per case: "<key> <runs>".  The model is DIR/<key>.tflite and the
# input i of run k is DIR/<key>.<k>.<i>.in (raw little-endian bytes; dtype and shape come from
# the model's io_spec).  For each output j of run k the runner writes DIR/<key>.<k>.<j>.out and
# prints "out <key> <k> <j> <dtype> <d0,d1,...>"; each case ends with "ok <key>", or with
# "error <key> <code> <message>" when the backend raised.  One process runs every case: the
# interpreter's startup is the slow part.  Device-code rules apply (no f-strings).
import gc
import sys

from kpdev.accelerators.tflite_int8 import TFLiteInt8Backend
from kpdev.protocol.tensors import Tensor


def read(path):
    with open(path, "rb") as f:
        return f.read()


def run_case(backend, base, key, runs):
    model = backend.load(base + key + ".tflite")
    spec = model.io_spec()
    for k in range(runs):
        inputs = []
        for i in range(len(spec["inputs"])):
            s = spec["inputs"][i]
            data = read("%s%s.%d.%d.in" % (base, key, k, i))
            inputs.append(Tensor(s["dtype"], s["shape"], data))
        outputs = model.run(inputs)
        for j in range(len(outputs)):
            t = outputs[j]
            with open("%s%s.%d.%d.out" % (base, key, k, j), "wb") as f:
                f.write(t.data)
            dims = ",".join([str(d) for d in t.shape])
            print("out %s %d %d %s %s" % (key, k, j, t.dtype, dims))


def main():
    base = sys.argv[1] + "/"
    backend = TFLiteInt8Backend()
    with open(base + "cases.txt") as f:
        lines = f.read().split("\n")
    for line in lines:
        if not line:
            continue
        key, runs = line.split()
        try:
            run_case(backend, base, key, int(runs))
            print("ok " + key)
        except Exception as e:
            code = getattr(e, "code", -1)
            msg = str(e).replace("\n", " ")
            print("error %s %d %s: %s" % (key, code, type(e).__name__, msg))
        gc.collect()


main()
