"""The int8 interpreter through the CLI: `kpdev deploy` and `kpdev infer` on the MicroPython
boards give tflite_micro's bytes, and a model it cannot run is refused at deploy."""

import json

import numpy as np
import pytest
from support.cli import kpdev
from support.opmodels import UNSUPPORTED
from support.paths import DATA

tflite_micro = pytest.importorskip("tflite_micro")
from tflite_micro import runtime  # noqa: E402


def reference(model, x):
    interp = runtime.Interpreter.from_bytes(model, arena_size=256 * 1024)
    interp.set_input(x, 0)
    interp.invoke()
    return interp.get_output(0)


def keras_input(x):
    return x[None].astype(np.float32)


@pytest.mark.parametrize(
    "model, make_input",
    [
        ("dense_int8.tflite", lambda rng: rng.integers(-128, 128, (1, 16), dtype=np.int8)),
        ("dense_float_io.tflite", lambda rng: rng.uniform(-1.2, 1.2, (1, 16)).astype(np.float32)),
        ("conv_int8.tflite", lambda rng: rng.integers(-128, 128, (1, 16, 16, 1), dtype=np.int8)),
        ("keras_cnn_int8.tflite", None),
    ],
)
def test_deploy_and_infer_on_sim_mcu_give_tflite_micros_bytes(tmp_path, model, make_input):
    data = (DATA / model).read_bytes()
    rng = np.random.default_rng(7)
    if make_input is None:
        digits = np.load(DATA / "digits_sample.npz")["x"][:3]
        if model == "keras_cnn_int8.tflite":
            details = runtime.Interpreter.from_bytes(data).get_input_details(0)
            scale, zp = (
                details["quantization_parameters"]["scales"][0],
                int(details["quantization_parameters"]["zero_points"][0]),
            )
            xs = [
                np.clip(np.round(d / scale) + zp, -128, 127).astype(np.int8)[None] for d in digits
            ]
        else:
            xs = [keras_input(d) for d in digits]
    else:
        xs = [make_input(rng) for _ in range(3)]
    up = kpdev("deploy", DATA / model, "--name", "m", "--board", "sim-mcu", "--json")
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["backend"] == "tflite_int8"
    for k, x in enumerate(xs):
        np.save(tmp_path / f"x{k}.npy", x)
        r = kpdev("infer", "--board", "sim-mcu", "-m", "m", "-i", tmp_path / f"x{k}.npy", "--json")
        assert r.returncode == 0, r.stderr
        got = np.array(json.loads(r.stdout)["outputs"][0], dtype=reference(data, x).dtype)
        want = reference(data, x)
        assert got.tobytes() == want.tobytes(), (model, k, got, want)


def test_a_model_with_an_unsupported_operator_is_refused_at_deploy(tmp_path):
    builder, op = UNSUPPORTED["tanh"]
    path = tmp_path / "tanh.tflite"
    path.write_bytes(builder())
    ok = kpdev("deploy", DATA / "dense_int8.tflite", "--name", "good", "--board", "sim-mcu")
    assert ok.returncode == 0, ok.stderr
    r = kpdev("deploy", path, "--name", "bad", "--board", "sim-mcu")
    assert r.returncode == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "operator TANH is not supported by tflite_int8" in lines[0]
    assert "the active model is unchanged" in lines[0]
    listed = json.loads(kpdev("models", "--board", "sim-mcu", "--json").stdout)
    assert listed["active"] == "good"
