"""The pure-Python int8 interpreter against tflite-micro's reference kernels, bit for bit.

Every model of ``support.opmodels.CASES`` (one operator each, seeded weights and
quantization), the models in tests/data and the two converter-made Keras models run on seeded
inputs in both the ``tflite_int8`` backend and tflite-micro, in the same test, and the output
bytes must be identical.  The same comparison runs under the real ``micropython`` binary, every
case in one process (tests/support/drivers/mp_int8_runner.py), against tflite-micro in this
process.
"""

import functools
import os
import subprocess
import zlib

import numpy as np
import pytest
from support import opmodels
from support.interpreters import driver_path
from support.paths import DATA, read_data

from kpdev.protocol.errors import DeviceError
from kpdev.protocol.ops import E_MODEL_LOAD
from kpdev.protocol.tensors import Tensor

pytest.importorskip("tflite_micro")

from kpdev.accelerators.tflite_micro import TFLiteMicroBackend  # noqa: E402

# Seeded random inputs per catalogue case: one of only -128 and 127, then random ones.
RUNS = 4
DATA_MODELS = ["dense_int8.tflite", "dense_float_io.tflite", "conv_int8.tflite"]
KERAS_MODELS = ["keras_cnn_int8.tflite", "keras_mix_float.tflite"]
MP_TIMEOUT = 600


def _seed(case_id):
    return zlib.crc32(case_id.encode())


def _float_input_quant(model, index):
    """(scale, zero point) of the QUANTIZE that reads float input ``index``, else None."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    sg = model_editor.read(model).subgraphs[0]
    tensor = sg.inputs[index]
    for op in sg.operators:
        if any(t is tensor for t in op.inputs) and op.outputs[0].quantization is not None:
            q = op.outputs[0].quantization
            return float(np.atleast_1d(q.scales)[0]), int(np.atleast_1d(q.zero_points)[0])
    return None


def _int8_run(rng, shape, extremes):
    """Random int8 over the full range with some -128 and 127 forced in, or only those two."""
    if extremes:
        return np.where(rng.random(shape) < 0.5, -128, 127).astype(np.int8)
    a = rng.integers(-128, 128, shape).astype(np.int8)
    flat = a.reshape(-1)
    n = max(1, flat.size // 8)
    flat[rng.integers(0, flat.size, n)] = -128
    flat[rng.integers(0, flat.size, n)] = 127
    return a


def _float_run(rng, shape, quant, extremes):
    """float32 across the quantized range and beyond it, with ties between two int8 codes."""
    scale, zero_point = quant or (0.05, 0)
    lo, hi = scale * (-128 - zero_point), scale * (127 - zero_point)
    if extremes:
        big = np.array([lo - 1e3, hi + 1e3, lo, hi, 0.0, -0.0], np.float32)
        return rng.choice(big, shape).astype(np.float32)
    span = hi - lo
    a = rng.uniform(lo - 0.3 * span, hi + 0.3 * span, shape).astype(np.float32)
    flat = a.reshape(-1)
    ties = (rng.integers(-128, 127, flat.size) + 0.5 - zero_point) * scale
    half = rng.random(flat.size) < 0.25
    flat[half] = ties[half]
    return a


def _random_runs(case_id, model, runs=RUNS):
    """``runs`` lists of numpy inputs for ``model``, seeded by ``case_id``."""
    rng = np.random.default_rng(_seed(case_id))
    spec = _reference(model).io_spec()["inputs"]
    out = []
    for k in range(runs):
        run = []
        for i, s in enumerate(spec):
            if s["dtype"] == "float32":
                run.append(_float_run(rng, s["shape"], _float_input_quant(model, i), k == 0))
            else:
                run.append(_int8_run(rng, s["shape"], k == 0))
        out.append(run)
    return out


def _digit_runs(model):
    """The digits of tests/data/digits_sample.npz, quantized when the model takes int8."""
    sample = np.load(DATA / "digits_sample.npz")
    spec = _reference(model).io_spec()["inputs"][0]
    x = sample["x"].astype(np.float32)
    if spec["dtype"] == "int8":
        x = np.clip(np.round(x / spec["scale"]) + spec["zero_point"], -128, 127).astype(np.int8)
    return [[image[None]] for image in x]


@functools.cache
def case(case_id):
    """(model bytes, runs) of one case: a catalogue id, a tests/data model or a Keras model."""
    if case_id in opmodels.CASES:
        model = opmodels.CASES[case_id]()
        return model, _random_runs(case_id, model)
    model = read_data(case_id)
    if case_id in KERAS_MODELS:
        return model, _digit_runs(model)
    return model, _random_runs(case_id, model)


@functools.cache
def _reference(model):
    return TFLiteMicroBackend().load(model, {"arena_size": 256 * 1024})


@functools.cache
def expected(case_id):
    """tflite-micro's outputs for every run of a case, as numpy arrays."""
    model, runs = case(case_id)
    ref = _reference(model)
    return [[_array(t) for t in ref.run([_tensor(x) for x in run])] for run in runs]


def _tensor(x):
    return Tensor(x.dtype.name, list(x.shape), x.astype(x.dtype.newbyteorder("<")).tobytes())


def _array(t):
    dtype = np.dtype(t.dtype).newbyteorder("<")
    return np.frombuffer(bytes(t.data), dtype=dtype).reshape(t.shape).astype(dtype.name)


def assert_same(case_id, k, j, got, want):
    """Output ``j`` of run ``k`` is ``want`` bit for bit; the message names the first miss."""
    where = "%s, input %d, output %d" % (case_id, k, j)
    assert got.dtype == want.dtype, "%s: dtype %s, tflite_micro %s" % (
        where,
        got.dtype,
        want.dtype,
    )
    assert got.shape == want.shape, "%s: shape %s, tflite_micro %s" % (
        where,
        got.shape,
        want.shape,
    )
    # Compare bit patterns, so that -0.0 and 0.0 (or two NaNs) count as different floats.
    bits = "u%d" % want.dtype.itemsize
    g, w = got.view(bits), want.view(bits)
    message = where
    diff = np.argwhere(g != w)
    if len(diff):
        first = tuple(int(i) for i in diff[0])
        message = "%s: %d of %d elements differ, first at %s: ours %s, tflite_micro %s" % (
            where,
            len(diff),
            want.size,
            first,
            got[first],
            want[first],
        )
    np.testing.assert_array_equal(g, w, err_msg=message)


ALL_CASES = list(opmodels.CASES) + DATA_MODELS + KERAS_MODELS


@pytest.fixture(scope="module")
def backend():
    from kpdev.accelerators.tflite_int8 import TFLiteInt8Backend

    return TFLiteInt8Backend()


@pytest.mark.parametrize("case_id", ALL_CASES)
def test_matches_tflite_micro(backend, case_id):
    model, runs = case(case_id)
    want = expected(case_id)
    loaded = backend.load(model)
    for k, run in enumerate(runs):
        outputs = loaded.run([_tensor(x) for x in run])
        assert len(outputs) == len(want[k]), case_id
        for j, t in enumerate(outputs):
            assert_same(case_id, k, j, _array(t), want[k][j])


def test_io_spec_matches_tflite_micro(backend):
    """Names aside, both backends describe the inputs and outputs alike; info() has the arena."""
    for case_id in ["fc_pc_7x5", "quantize_float", "dequantize"] + KERAS_MODELS:
        model, _ = case(case_id)
        loaded = backend.load(model)
        assert loaded.info()["arena_size_bytes"] > 0, case_id
        ours, ref = loaded.io_spec(), _reference(model).io_spec()
        for which in ("inputs", "outputs"):
            for a, b in zip(ours[which], ref[which], strict=True):
                assert (a["dtype"], list(a["shape"])) == (b["dtype"], b["shape"]), case_id
                if b["scale"] is None:
                    assert a["scale"] is None, case_id
                else:
                    assert a["scale"] == pytest.approx(b["scale"]), case_id
                    assert a["zero_point"] == b["zero_point"], case_id


def test_keras_models_classify_the_digits():
    """The committed Keras models are trained: tflite-micro gets most of the sample right."""
    labels = np.load(DATA / "digits_sample.npz")["y"]
    for name in KERAS_MODELS:
        predicted = [int(np.argmax(out[0])) for out in expected(name)]
        accuracy = float(np.mean(np.array(predicted) == labels))
        assert accuracy >= 0.85, "%s: %.2f" % (name, accuracy)


@pytest.mark.parametrize("case_id", list(opmodels.UNSUPPORTED))
def test_unsupported_operator_refused_at_load(backend, case_id):
    build, op_name = opmodels.UNSUPPORTED[case_id]
    model = build()
    _reference(model)  # tflite-micro runs it: the refusal is the interpreter's own
    with pytest.raises(DeviceError) as e:
        backend.load(model)
    assert e.value.code == E_MODEL_LOAD
    assert op_name in str(e.value)


# -- the same under MicroPython -----------------------------------------------------------------


@pytest.fixture(scope="module")
def mp_results(micropython, mp_lib, tmp_path_factory):
    """Run every case in one micropython process; {case id: result dict} plus the run's log."""
    work = tmp_path_factory.mktemp("int8-cases")
    keys = {}
    lines = []
    ids = ALL_CASES + list(opmodels.UNSUPPORTED)
    for n, case_id in enumerate(ids):
        key = "c%03d" % n
        keys[key] = case_id
        if case_id in opmodels.UNSUPPORTED:
            model, runs = opmodels.UNSUPPORTED[case_id][0](), []
        else:
            model, runs = case(case_id)
        (work / (key + ".tflite")).write_bytes(model)
        for k, run in enumerate(runs):
            for i, x in enumerate(run):
                (work / ("%s.%d.%d.in" % (key, k, i))).write_bytes(_tensor(x).data)
        lines.append("%s %d" % (key, len(runs)))
    (work / "cases.txt").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, MICROPYPATH=mp_lib + ":.frozen")
    proc = subprocess.run(
        [micropython, "-X", "heapsize=4M", str(driver_path("mp_int8_runner.py")), str(work)],
        capture_output=True,
        text=True,
        env=env,
        timeout=MP_TIMEOUT,
    )
    results = {}
    for line in proc.stdout.splitlines():
        parts = line.split(" ", 3)
        if parts[0] == "out":
            _, key, k, rest = parts
            j, dtype, dims = rest.split(" ")
            shape = [int(d) for d in dims.split(",")] if dims else []
            data = (work / ("%s.%s.%s.out" % (key, k, j))).read_bytes()
            outputs = results.setdefault(keys[key], {}).setdefault("outputs", {})
            outputs[(int(k), int(j))] = Tensor(dtype, shape, data)
        elif parts[0] == "ok":
            results.setdefault(keys[parts[1]], {})["ok"] = True
        elif parts[0] == "error":
            code, message = line.split(" ", 3)[2:]
            results.setdefault(keys[parts[1]], {})["error"] = (int(code), message)
    log = "micropython exited %d; stderr: %s; stdout ends: %s" % (
        proc.returncode,
        proc.stderr[-1500:],
        proc.stdout[-500:],
    )
    return results, log


def _mp_result(mp_results, case_id):
    results, log = mp_results
    result = results.get(case_id)
    assert result is not None and ("ok" in result or "error" in result), (
        "%s: no result from micropython (%s)" % (case_id, log)
    )
    return result


@pytest.mark.parametrize("case_id", ALL_CASES)
def test_micropython_matches_tflite_micro(mp_results, case_id):
    result = _mp_result(mp_results, case_id)
    assert "error" not in result, "%s under micropython: %s" % (case_id, result["error"])
    want = expected(case_id)
    for k, outputs in enumerate(want):
        for j, w in enumerate(outputs):
            assert (k, j) in result["outputs"], "%s: no output %d of run %d" % (case_id, j, k)
            assert_same(case_id, k, j, _array(result["outputs"][(k, j)]), w)


@pytest.mark.parametrize("case_id", list(opmodels.UNSUPPORTED))
def test_micropython_refuses_unsupported_operator(mp_results, case_id):
    result = _mp_result(mp_results, case_id)
    assert "error" in result, "%s: micropython loaded it" % case_id
    code, message = result["error"]
    assert code == E_MODEL_LOAD, message
    assert opmodels.UNSUPPORTED[case_id][1] in message
