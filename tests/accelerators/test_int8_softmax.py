"""int8 SOFTMAX and LOGISTIC of the pure-Python interpreter against tflite-micro, bit for bit.

Single-operator models over a grid of betas, input scales, zero points and shapes (plus seeded
random betas and scales, which reach every rounding of the prepare-time multipliers) run on
seeded int8 inputs: constant vectors, the full range with -128 and 127 forced in, and narrow
ranges where the softmax is far from one-hot.  The same cases run under the real ``micropython``
binary in one process.  Models TFLM refuses, or on which it aborts, are refused here.
"""

import os
import subprocess

import numpy as np
import pytest

from kpdev.accelerators.tflite_int8 import TFLiteInt8Backend
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.ops import E_INFER, E_MODEL_LOAD
from kpdev.protocol.tensors import Tensor

pytest.importorskip("tflite_micro")

from kpdev.host.runtime.modelgen import Graph  # noqa: E402

SOFTMAX_OUT = (1.0 / 256.0, -128)
BETAS = [1.0, 0.5, 2.0, 1e4]
SOFTMAX_QUANT = [(1.0 / 256.0, 0), (0.02, -37), (0.1, 5), (0.5, 127)]
SOFTMAX_SHAPES = [(1, 4), (1, 10), (2, 3, 7)]
LOGISTIC_SCALES = [1.0 / 256.0, 0.01, 0.05, 0.2, 0.5, 3.0]
LOGISTIC_ZERO_POINTS = [-128, -9, 0, 57, 127]
RANDOM_SOFTMAX_MODELS = 16
RUNS = 12
MP_SCRIPT = """\
import sys
from kpdev.accelerators.tflite_int8 import TFLiteInt8Backend
from kpdev.protocol.tensors import Tensor

def read(path):
    with open(path, "rb") as f:
        return f.read()

base = sys.argv[1] + "/"
backend = TFLiteInt8Backend()
for line in read(base + "cases.txt").decode().split("\\n"):
    if not line:
        continue
    key, dims = line.split()
    shape = [int(d) for d in dims.split(",")]
    size = 1
    for d in shape:
        size *= d
    model = backend.load(read(base + key + ".tflite"))
    data = read(base + key + ".in")
    with open(base + key + ".out", "wb") as f:
        for k in range(len(data) // size):
            x = Tensor("int8", shape, data[k * size : (k + 1) * size])
            f.write(model.run([x])[0].data)
    model.close()
    print("ok " + key)
"""


def _model(opcode, shape, in_quant, out_quant, beta=None, out_dtype="int8"):
    """One SOFTMAX (with ``beta``) or LOGISTIC of int8 ``shape``."""
    g = Graph()
    tfl = g.tfl
    x = g.tensor("x", shape, "int8", in_quant)
    y = g.tensor("y", shape, out_dtype, out_quant)
    if beta is None:
        g.op(getattr(tfl.BuiltinOperator, opcode), [x], [y])
    else:
        options = tfl.SoftmaxOptionsT(beta=beta)
        g.op(tfl.BuiltinOperator.SOFTMAX, [x], [y], tfl.BuiltinOptions.SoftmaxOptions, options)
    return g.build([x], [y], opcode.lower())


def softmax_model(shape, scale, zero_point, beta, out_quant=SOFTMAX_OUT):
    return _model("SOFTMAX", shape, (scale, zero_point), out_quant, beta)


def logistic_model(shape, scale, zero_point, out_quant=SOFTMAX_OUT):
    return _model("LOGISTIC", shape, (scale, zero_point), out_quant)


def _inputs(rng, shape, runs=RUNS):
    """Constant vectors (-128, 0, 127, random), the full range with both ends, narrow ranges."""
    size = int(np.prod(shape))
    out = [np.full(shape, v, np.int8) for v in (-128, 0, 127, int(rng.integers(-128, 128)))]
    while len(out) < runs:
        if len(out) % 2:
            a = rng.integers(-128, 128, size)
            a[rng.choice(size, min(size, 2), replace=False)] = [-128, 127][: min(size, 2)]
        else:
            width = int(rng.choice([1, 3, 10, 40]))
            lo = int(rng.integers(-128, 128 - width))
            a = rng.integers(lo, lo + width + 1, size)
        out.append(a.astype(np.int8).reshape(shape))
    return out


def _cases():
    """(id, model bytes, shape, list of inputs) of every case, seeded."""
    rng = np.random.default_rng(20260)
    cases = []
    for beta in BETAS:
        for scale, zp in SOFTMAX_QUANT:
            for shape in SOFTMAX_SHAPES:
                cid = "softmax-b%g-s%g-z%d-%s" % (beta, scale, zp, "x".join(map(str, shape)))
                model = softmax_model(shape, scale, zp, beta)
                cases.append((cid, model, shape, _inputs(rng, shape)))
    for n in range(RANDOM_SOFTMAX_MODELS):
        while True:
            beta = float(np.float32(np.exp(rng.uniform(np.log(1e-3), np.log(1e4)))))
            scale = float(np.float32(np.exp(rng.uniform(np.log(1e-3), np.log(2.0)))))
            if beta * scale * 2**26 > 2.0:
                break
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 40)))
        model = softmax_model(shape, scale, int(rng.integers(-128, 128)), beta)
        cases.append(("softmax-random%d" % n, model, shape, _inputs(rng, shape)))
    # 511 equal values: the largest sum of exponentials TFLM's int8 softmax takes.
    cases.append(("softmax-deep", softmax_model((1, 511), 0.1, 0, 1.0), (1, 511), []))
    cases[-1][3].append(np.zeros((1, 511), np.int8))
    full = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    for scale in LOGISTIC_SCALES:
        for zp in LOGISTIC_ZERO_POINTS:
            cid = "logistic-s%g-z%d" % (scale, zp)
            cases.append((cid, logistic_model((1, 256), scale, zp), (1, 256), [full]))
    for k in range(4):
        scale = float(np.float32(np.exp(rng.uniform(np.log(1e-4), np.log(30.0)))))
        model = logistic_model((2, 3, 7), scale, int(rng.integers(-128, 128)))
        cases.append(("logistic-random%d" % k, model, (2, 3, 7), _inputs(rng, (2, 3, 7), 6)))
    # TFLM checks only the output zero point of LOGISTIC, not its scale.
    model = logistic_model((1, 256), 0.05, 3, (1.0 / 128.0, -128))
    cases.append(("logistic-out-scale", model, (1, 256), [full]))
    return cases


CASES = _cases()
IDS = [c[0] for c in CASES]


def _reference(model, inputs):
    from tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model, arena_size=256 * 1024)
    outs = []
    for x in inputs:
        interp.set_input(x, 0)
        interp.invoke()
        outs.append(interp.get_output(0).tobytes())
    return outs


@pytest.fixture(scope="module")
def references():
    """TFLM's output bytes for every case."""
    return {cid: _reference(model, inputs) for cid, model, _, inputs in CASES}


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_matches_tflite_micro(references, index):
    cid, model, shape, inputs = CASES[index]
    loaded = TFLiteInt8Backend().load(model)
    for x, want in zip(inputs, references[cid], strict=True):
        got = loaded.run([Tensor("int8", list(shape), x.tobytes())])[0].data
        assert bytes(got) == want, "input %s" % x.tolist()


def test_micropython_matches_tflite_micro(references, micropython, mp_lib, tmp_path):
    lines = []
    for n, (_, model, shape, inputs) in enumerate(CASES):
        key = "c%03d" % n
        (tmp_path / (key + ".tflite")).write_bytes(model)
        (tmp_path / (key + ".in")).write_bytes(b"".join(x.tobytes() for x in inputs))
        lines.append("%s %s" % (key, ",".join(map(str, shape))))
    (tmp_path / "cases.txt").write_text("\n".join(lines) + "\n")
    script = tmp_path / "run_softmax.py"
    script.write_text(MP_SCRIPT)
    proc = subprocess.run(
        [micropython, "-X", "heapsize=8M", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, MICROPYPATH=mp_lib + ":.frozen"),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.split() == [w for n in range(len(CASES)) for w in ("ok", "c%03d" % n)]
    for n, (cid, _, _, _) in enumerate(CASES):
        got = (tmp_path / ("c%03d.out" % n)).read_bytes()
        assert got == b"".join(references[cid]), cid


@pytest.mark.parametrize(
    "model, words",
    [
        (softmax_model((1, 4), 0.1, 0, 1.0, (1.0 / 255.0, -128)), "scale 1/256"),
        (softmax_model((1, 4), 0.1, 0, 1.0, (1.0 / 256.0, 0)), "zero point -128"),
        # beta * input scale * 2**26 must exceed 1 (TFLM aborts otherwise)
        (softmax_model((1, 4), 1.0 / 256.0, 0, 1e-6), "must exceed 1"),
        (softmax_model((1, 4), 0.1, 0, -1.0), "must exceed 1"),
        (softmax_model((1, 4), 0.1, 0, 0.0), "must exceed 1"),
        (logistic_model((1, 4), 0.05, 0, (1.0 / 256.0, 0)), "zero point must be -128"),
        (_model("SOFTMAX", (1, 4), (0.1, 0), None, 1.0, "float32"), "must be int8"),
    ],
    ids=[
        "softmax-scale",
        "softmax-zp",
        "tiny-beta",
        "negative-beta",
        "zero-beta",
        "logistic-zp",
        "float-output",
    ],
)
def test_refuses_what_tflite_micro_refuses(model, words):
    with pytest.raises(DeviceError) as e:
        TFLiteInt8Backend().load(model)
    assert e.value.code == E_MODEL_LOAD
    assert words in str(e.value)


def test_row_sum_past_tflite_micro_range_is_an_error():
    # 512 equal values: the sum of exponentials reaches 2**28 in Q12.19, where TFLM aborts.
    loaded = TFLiteInt8Backend().load(softmax_model((1, 512), 0.1, 0, 1.0))
    with pytest.raises(DeviceError) as e:
        loaded.run([Tensor("int8", [1, 512], bytes(512))])
    assert e.value.code == E_INFER
