"""int8 ADD, MUL and MEAN of the pure-Python interpreter against tflite-micro, bit for bit.

Single-operator models (same shapes, numpy broadcasting, a constant operand; seeded scales and
zero points over the whole int8 range; fused NONE, RELU and RELU6; MEAN over several axis
lists with the same and a different output quantization) run on seeded int8 inputs with -128
and 127 forced in.  The same cases run under the real ``micropython`` binary in one process,
where the viper loops must be the ones used.  Models TFLM refuses, or aborts on, are refused.
"""

import os
import subprocess
import zlib

import numpy as np
import pytest

from kpdev.accelerators.tflite_int8 import TFLiteInt8Backend
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.ops import E_MODEL_LOAD
from kpdev.protocol.tensors import Tensor

pytest.importorskip("tflite_micro")

from kpdev.host.runtime.modelgen import Graph  # noqa: E402

RUNS = 10
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
    words = line.split()
    key, weights, runs = words[0], words[1], int(words[2])
    shapes = [[int(d) for d in w.split(",") if d] for w in words[3:]]
    model = backend.load(base + key + ".tflite", {"kernels": "viper", "weights": weights})
    # the loops k_arith picked for this operator (its params: kind, loops module, ...)
    arith = model._interp.steps[0][2][1].NAME
    with open(base + key + ".out", "wb") as f:
        for k in range(runs):
            xs = []
            for i in range(len(shapes)):
                data = read("%s%s.%d.%d.in" % (base, key, k, i))
                xs.append(Tensor("int8", shapes[i], data))
            f.write(model.run(xs)[0].data)
    print("ok %s %s %s" % (key, model.info()["kernels"], arith))
    model.close()
"""


def _f32(x):
    return float(np.float32(x))


def _quant(rng, lo=0.005, hi=0.2):
    """A seeded scale (log-uniform) and a zero point anywhere in int8."""
    return _f32(np.exp(rng.uniform(np.log(lo), np.log(hi)))), int(rng.integers(-128, 128))


def _out_quant(rng, std, act):
    """An output quantization that spreads a result of deviation ``std`` over the codes; after
    a RELU the zero point sits at the bottom, and RELU6 reaches its top clamp."""
    if act == "RELU":
        return _f32(3.0 * std / 255.0 * rng.uniform(0.5, 2.0)), int(rng.integers(-128, -100))
    if act == "RELU6":
        return _f32(min(6.0 * rng.uniform(0.5, 1.5), 3.0 * std) / 255.0), -128
    return _f32(6.0 * std / 255.0 * rng.uniform(0.5, 2.0)), int(rng.integers(-128, 128))


def binary_model(kind, shape_a, shape_b, qa, qb, qo, act="NONE", const_b=None, out_shape=None):
    """ADD or MUL of int8 a and b (b a constant when ``const_b`` holds its values)."""
    g = Graph()
    tfl = g.tfl
    a = g.tensor("a", shape_a, "int8", qa)
    b = g.tensor("b", shape_b, "int8", qb, const_b)
    if out_shape is None:
        out_shape = np.broadcast_shapes(tuple(shape_a), tuple(shape_b))
    y = g.tensor("y", out_shape, "int8", qo)
    name = "AddOptions" if kind == "ADD" else "MulOptions"
    options = getattr(tfl, name + "T")(
        fusedActivationFunction=getattr(tfl.ActivationFunctionType, act)
    )
    g.op(
        getattr(tfl.BuiltinOperator, kind), [a, b], [y], getattr(tfl.BuiltinOptions, name), options
    )
    return g.build([a] if const_b is not None else [a, b], [y], kind.lower())


def mean_model(shape, axis, keep_dims, qx, qo, axis_input=False):
    """MEAN of int8 ``shape`` over the int32 ``axis`` list (a constant unless ``axis_input``)."""
    g = Graph()
    tfl = g.tfl
    x = g.tensor("x", shape, "int8", qx)
    rank = len(shape)
    axes = {a % rank for a in axis}
    if keep_dims:
        out_shape = [1 if k in axes else d for k, d in enumerate(shape)]
    else:
        out_shape = [d for k, d in enumerate(shape) if k not in axes]
    y = g.tensor("y", out_shape, "int8", qo)
    values = None if axis_input else np.array(axis, "<i4")
    ax = g.tensor("axis", (len(axis),), "int32", None, values)
    options = tfl.ReducerOptionsT(keepDims=keep_dims)
    g.op(tfl.BuiltinOperator.MEAN, [x, ax], [y], tfl.BuiltinOptions.ReducerOptions, options)
    return g.build([x, ax] if axis_input else [x], [y], "mean")


BINARY_SHAPES = [
    ("same", (1, 4, 4, 3), (1, 4, 4, 3)),
    ("b1113", (1, 4, 4, 3), (1, 1, 1, 3)),
    ("b3", (1, 4, 4, 3), (3,)),
    ("b213x141", (2, 1, 3), (1, 4, 1)),
    ("b1441", (1, 4, 4, 3), (1, 4, 4, 1)),
    ("scalar", (), (2, 3)),
    ("rank6", (2, 1, 3, 1, 2, 2), (1, 2, 3, 2, 1, 2)),
    ("ranks", (4, 3), (1, 4, 3)),
]


def _binary_cases():
    cases = []
    for kind in ("ADD", "MUL"):
        for name, sa, sb in BINARY_SHAPES:
            for act in ("NONE", "RELU", "RELU6"):
                cid = "%s-%s-%s" % (kind.lower(), name, act.lower())
                rng = np.random.default_rng(zlib.crc32(cid.encode()))
                qa, qb = _quant(rng), _quant(rng)
                if kind == "ADD":
                    std = float(np.hypot(qa[0], qb[0])) * 74.0
                else:
                    std = qa[0] * qb[0] * 74.0 * 74.0
                qo = _out_quant(rng, std, act)
                model = binary_model(kind, sa, sb, qa, qb, qo, act)
                cases.append((cid, model, [sa, sb], "ram"))
        # input scales 100x apart, equal to the output's, or identical to each other
        for name, qa, qb, qo in [
            ("ratio", (0.002, -3), (0.2, 100), (0.3, 7)),
            ("equal", (0.05, 0), (0.05, 0), (0.05, 0)),
            ("zp-edges", (0.03, -128), (0.07, 127), (0.09, -128)),
        ]:
            cid = "%s-%s" % (kind.lower(), name)
            model = binary_model(kind, (1, 3, 5), (1, 3, 5), qa, qb, qo)
            cases.append((cid, model, [(1, 3, 5), (1, 3, 5)], "ram"))
        rng = np.random.default_rng(zlib.crc32(kind.encode()))
        for name, sb, weights in [
            ("const-b1113", (1, 1, 1, 16), "ram"),
            ("const-same-streamed", (1, 8, 8, 16), "file"),
        ]:
            cid = "%s-%s" % (kind.lower(), name)
            values = rng.integers(-128, 128, sb).astype(np.int8)
            qo = (0.08, 3) if kind == "ADD" else (0.05, -9)
            model = binary_model(
                kind, (1, 8, 8, 16), sb, (0.03, 5), (0.02, -11), qo, "NONE", values
            )
            cases.append((cid, model, [(1, 8, 8, 16)], weights))
    return cases


def _mean_cases():
    cases = []
    for name, shape, axis, keep in [
        ("hw-keep", (1, 5, 7, 3), [1, 2], True),
        ("hw", (1, 5, 7, 3), [1, 2], False),
        ("wh-keep", (1, 5, 7, 3), [2, 1], True),
        ("last-keep", (1, 5, 7, 3), [-1], True),
        ("h", (1, 5, 7, 3), [1], False),
        ("all", (2, 3, 4, 2), [0, 1, 2, 3], True),
        ("dups", (2, 3, 4, 2), [1, 1, -1], False),
        ("3d", (3, 6, 4), [0, 2], False),
        ("big", (1, 16, 16, 8), [1, 2], False),
    ]:
        for same in (True, False):
            cid = "mean-%s-%s" % (name, "same" if same else "requant")
            rng = np.random.default_rng(zlib.crc32(cid.encode()))
            qx = _quant(rng)
            count = int(np.prod([shape[a] for a in {a % len(shape) for a in axis}]))
            qo = qx if same else _out_quant(rng, qx[0] * 74.0 / np.sqrt(count), "NONE")
            cases.append((cid, mean_model(shape, axis, keep, qx, qo), [shape], "ram"))
    return cases


def _inputs(cid, shapes):
    """RUNS lists of int8 inputs: only -128 and 127 first, then random with both forced in."""
    rng = np.random.default_rng(zlib.crc32(cid.encode()) + 1)
    runs = []
    for k in range(RUNS):
        run = []
        for shape in shapes:
            if k == 0:
                x = np.where(rng.random(shape) < 0.5, -128, 127).astype(np.int8)
            else:
                x = rng.integers(-128, 128, shape).astype(np.int8)
                flat = x.reshape(-1)
                flat[rng.integers(0, flat.size, max(1, flat.size // 8))] = -128
                flat[rng.integers(0, flat.size, max(1, flat.size // 8))] = 127
            run.append(x)
        runs.append(run)
    return runs


CASES = [
    (cid, model, shapes, weights, _inputs(cid, shapes))
    for cid, model, shapes, weights in _binary_cases() + _mean_cases()
]
IDS = [c[0] for c in CASES]


def _reference(model, runs):
    from tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(model, arena_size=256 * 1024)
    outs = []
    for run in runs:
        for i, x in enumerate(run):
            interp.set_input(x, i)
        interp.invoke()
        outs.append(interp.get_output(0).tobytes())
    return outs


@pytest.fixture(scope="module")
def references():
    """TFLM's output bytes for every run of every case."""
    return {cid: _reference(model, runs) for cid, model, _, _, runs in CASES}


def _load(model, weights, tmp_path, kernels="auto"):
    if weights == "file":
        path = tmp_path / "model.tflite"
        path.write_bytes(model)
        return TFLiteInt8Backend().load(str(path), {"weights": "file", "kernels": kernels})
    return TFLiteInt8Backend().load(model, {"kernels": kernels})


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_matches_tflite_micro(references, index, tmp_path):
    cid, model, shapes, weights, runs = CASES[index]
    loaded = _load(model, weights, tmp_path)
    for k, (run, want) in enumerate(zip(runs, references[cid], strict=True)):
        got = loaded.run([Tensor("int8", list(x.shape), x.tobytes()) for x in run])[0].data
        if bytes(got) != want:
            g, w = np.frombuffer(bytes(got), np.int8), np.frombuffer(want, np.int8)
            first = int(np.argmax(g != w))
            pytest.fail(
                "%s run %d: %d of %d bytes differ, first at %d: ours %d, tflite_micro %d"
                % (cid, k, int((g != w).sum()), w.size, first, g[first], w[first])
            )


def test_micropython_viper_matches_tflite_micro(references, micropython, mp_lib, tmp_path):
    lines = []
    for n, (_, model, shapes, weights, runs) in enumerate(CASES):
        key = "c%03d" % n
        (tmp_path / (key + ".tflite")).write_bytes(model)
        for k, run in enumerate(runs):
            for i, x in enumerate(run):
                (tmp_path / ("%s.%d.%d.in" % (key, k, i))).write_bytes(x.tobytes())
        dims = [",".join(map(str, s)) or "," for s in shapes]
        lines.append(" ".join([key, weights, str(len(runs))] + dims))
    (tmp_path / "cases.txt").write_text("\n".join(lines) + "\n")
    script = tmp_path / "run_arith.py"
    script.write_text(MP_SCRIPT)
    proc = subprocess.run(
        [micropython, "-X", "heapsize=8M", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, MICROPYPATH=mp_lib + ":.frozen"),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    want_lines = ["ok c%03d viper viper" % n for n in range(len(CASES))]
    assert proc.stdout.splitlines() == want_lines
    for n, (cid, _, _, _, _) in enumerate(CASES):
        got = (tmp_path / ("c%03d.out" % n)).read_bytes()
        assert got == b"".join(references[cid]), cid


def test_plain_kernels_chosen_on_request(references):
    """Asked for plain kernels, ADD runs its plain loops (what a port without viper gets)."""
    cid, model, shapes, _, runs = CASES[IDS.index("add-same-none")]
    loaded = TFLiteInt8Backend().load(model, {"kernels": "plain"})
    assert loaded.info()["kernels"] == "plain"
    xs = [Tensor("int8", list(x.shape), x.tobytes()) for x in runs[1]]
    assert bytes(loaded.run(xs)[0].data) == references[cid][1]


@pytest.mark.parametrize(
    "model, words",
    [
        # twice the larger input scale / (2**20 * output scale) must stay below 1 (TFLM aborts)
        (binary_model("ADD", (1, 4), (1, 4), (1.0, 0), (0.5, 0), (1e-7, 0)), "(0, 1)"),
        (
            binary_model("ADD", (2, 3), (4, 3), (0.1, 0), (0.1, 0), (0.1, 0), out_shape=(4, 3)),
            "do not broadcast",
        ),
        (binary_model("MUL", (1, 4), (1, 4), (0.1, 0), (0.1, 0), (0.1, 0), "TANH"), "TANH"),
        (
            binary_model("MUL", (1, 1, 1, 1, 1, 1, 1, 1, 2), (2, 1), (0.1, 0), (0.1, 0), (0.1, 0)),
            "limited to 8",
        ),
        (mean_model((1, 4, 4, 2), [1, 2], True, (0.1, 0), (0.1, 0), True), "must be constant"),
        (mean_model((1, 4, 4, 2), [4], True, (0.1, 0), (0.1, 0)), "out of range"),
    ],
    ids=["add-scales", "no-broadcast", "tanh", "rank9", "axis-input", "axis-range"],
)
def test_refuses_what_tflite_micro_refuses(model, words):
    with pytest.raises(DeviceError) as e:
        TFLiteInt8Backend().load(model)
    assert e.value.code == E_MODEL_LOAD
    assert words in str(e.value)
