"""The backend registry and the tflite_micro backend, against the real tflite-micro interpreter."""

import importlib.metadata
import os
import subprocess

import numpy as np
import pytest
from support.interpreters import driver_path
from support.paths import DATA

from kpdev import accelerators
from kpdev.protocol.errors import DeviceError, KpdevError
from kpdev.protocol.ops import (
    E_BAD_DTYPE,
    E_BAD_REQUEST,
    E_BAD_SHAPE,
    E_MODEL_LOAD,
    E_NO_BACKEND,
    E_NO_MODEL,
)
from kpdev.protocol.tensors import Tensor

tflite_micro = pytest.importorskip("tflite_micro")
from tflite_micro import runtime  # noqa: E402

from kpdev.accelerators import tflite_micro as tflm_backend  # noqa: E402
from kpdev.host.runtime import modelgen  # noqa: E402

DENSE = os.path.join(DATA, "dense_int8.tflite")
MODELS = ["dense_int8.tflite", "dense_float_io.tflite", "conv_int8.tflite"]


def read(name):
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def backend():
    return accelerators.get("tflite_micro")


@pytest.fixture(scope="module")
def dense(backend):
    return backend.load(DENSE)


def random_inputs(spec, rng):
    """One input Tensor per spec: uniform floats in [-1, 1) or uniform ints over the dtype."""
    tensors = []
    for s in spec["inputs"]:
        dtype = np.dtype(s["dtype"])
        if dtype.kind == "f":
            a = rng.uniform(-1.0, 1.0, s["shape"]).astype(dtype)
        else:
            info = np.iinfo(dtype)
            a = rng.integers(info.min, info.max + 1, s["shape"]).astype(dtype)
        tensors.append(Tensor(s["dtype"], s["shape"], a.astype(dtype.newbyteorder("<")).tobytes()))
    return tensors


# --- registry -------------------------------------------------------------------------------


def test_available_lists_tflite_micro_with_its_version():
    found = accelerators.available()
    # The installed distribution's version, found without importing the runtime.
    assert found["tflite_micro"] == importlib.metadata.version("tflite-micro")
    assert tflite_micro.__version__.startswith(found["tflite_micro"])


def test_for_format_tflite_gives_tflite_micro():
    b = accelerators.for_format("tflite")
    assert b.name == "tflite_micro" and accelerators.FORMATS["tflite"][0] == "tflite_micro"
    assert accelerators.for_format("tflite", prefer="tflite_micro") is b
    # A preference this agent cannot honour falls back to the table's order.
    # A preference that cannot load the format falls back to the table's order.
    assert accelerators.for_format("tflite", prefer="iree") is b
    assert accelerators.for_format("tflite", prefer="no_such_backend") is b


def test_for_format_without_backend_names_runtime_and_offer():
    with pytest.raises(KpdevError) as e:
        accelerators.for_format("onnx")
    assert e.value.code == E_NO_BACKEND
    assert str(e.value).startswith(
        "no backend for onnx on cpython (unknown model format; this agent offers: "
    )
    assert "tflite_int8 (tflite), tflite_micro (tflite)" in str(e.value)


def test_get_unknown_backend():
    with pytest.raises(KpdevError) as e:
        accelerators.get("tensorrt")
    assert e.value.code == E_NO_BACKEND
    assert str(e.value).startswith("no backend 'tensorrt' on cpython (unknown backend; ")
    assert "tflite_micro" in str(e.value)


@pytest.mark.parametrize(
    "filename, fmt",
    [("m.tflite", "tflite"), ("dir.v2/M.TFLITE", "tflite"), ("a.vmfb", "vmfb"), ("b.fbz", "fbz")],
)
def test_format_of(filename, fmt):
    assert accelerators.format_of(filename) == fmt


@pytest.mark.parametrize("filename", ["model.onnx", "model", "dir.v2/model"])
def test_format_of_unknown_extension(filename):
    with pytest.raises(KpdevError) as e:
        accelerators.format_of(filename)
    assert e.value.code == E_BAD_REQUEST


def test_registry_under_micropython_offers_the_int8_interpreter(tmp_path):
    from kpdev.host.agent.micropython import MicroPythonNotFound, micropython_binary, stage_lib

    try:
        binary = micropython_binary()
    except MicroPythonNotFound as e:
        pytest.skip(str(e))
    lib = stage_lib(str(tmp_path / "lib"))
    env = dict(os.environ, MICROPYPATH=lib + ":.frozen")
    out = subprocess.run(
        [binary, str(driver_path("registry_probe.py"))],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    lines = out.stdout.splitlines()
    assert lines[0] == "{'tflite_int8': '1.0'}"
    assert lines[1] == "tflite_int8"
    assert int(lines[2]) == E_NO_BACKEND
    offers = "(this agent offers: tflite_int8 (tflite))"
    assert lines[3] == "no backend for vmfb on micropython " + offers


# --- tflite_micro backend -------------------------------------------------------------------


def test_load_from_path_and_bytes_agree(backend):
    from_path = backend.load(DENSE)
    from_bytes = backend.load(read("dense_int8.tflite"))
    assert from_path.io_spec() == from_bytes.io_spec()
    inputs = random_inputs(from_path.io_spec(), np.random.default_rng(3))
    assert from_path.run(inputs)[0].data == from_bytes.run(inputs)[0].data


def test_io_spec_matches_model(dense):
    assert dense.io_spec() == {
        "inputs": [
            {
                "name": "input",
                "dtype": "int8",
                "shape": [1, 16],
                "scale": modelgen.INPUT_SCALE,
                "zero_point": modelgen.INPUT_ZERO_POINT,
            }
        ],
        "outputs": [
            {
                "name": "probabilities",
                "dtype": "int8",
                "shape": [1, 4],
                "scale": modelgen.SOFTMAX_SCALE,
                "zero_point": modelgen.SOFTMAX_ZERO_POINT,
            }
        ],
    }


def test_io_spec_of_float_model_has_no_quantization(backend):
    spec = backend.load(read("dense_float_io.tflite")).io_spec()
    for s in spec["inputs"] + spec["outputs"]:
        assert s["dtype"] == "float32"
        assert s["scale"] is None and s["zero_point"] is None


@pytest.mark.parametrize("name", MODELS)
def test_run_gives_the_interpreters_bytes(backend, name):
    data = read(name)
    model = backend.load(data)
    direct = runtime.Interpreter.from_bytes(data, arena_size=64 * 1024)
    rng = np.random.default_rng(7)
    outputs = set()
    for _ in range(8):
        inputs = random_inputs(model.io_spec(), rng)
        got = model.run(inputs)
        spec = model.io_spec()["inputs"][0]
        x = np.frombuffer(inputs[0].data, np.dtype(spec["dtype"])).reshape(spec["shape"])
        direct.set_input(x, 0)
        direct.invoke()
        want = direct.get_output(0)
        assert len(got) == 1
        assert got[0].dtype == want.dtype.name
        assert got[0].shape == want.shape
        assert got[0].data == want.tobytes()
        outputs.add(got[0].data)
    # Outputs depend on the input: the model is not a constant.
    assert len(outputs) > 1


def test_run_is_repeatable_and_survives_reset(dense):
    inputs = random_inputs(dense.io_spec(), np.random.default_rng(11))
    first = dense.run(inputs)[0].data
    dense.run(random_inputs(dense.io_spec(), np.random.default_rng(12)))
    dense.reset()
    assert dense.run(inputs)[0].data == first


def test_output_bytes_are_copies(dense):
    a = dense.run([Tensor("int8", (1, 16), bytes([100] * 16))])[0]
    before = bytes(a.data)
    dense.run([Tensor("int8", (1, 16), bytes([156] * 16))])
    assert a.data == before


def test_wrong_dtype(dense):
    with pytest.raises(DeviceError) as e:
        dense.run([Tensor("float32", (1, 16), bytes(64))])
    assert e.value.code == E_BAD_DTYPE == 19
    assert "expected dtype int8, got float32" in str(e.value)


def test_wrong_shape(dense):
    with pytest.raises(DeviceError) as e:
        dense.run([Tensor("int8", (1, 17), bytes(17))])
    assert e.value.code == E_BAD_SHAPE == 18
    assert "expected shape [1, 16], got [1, 17]" in str(e.value)


@pytest.mark.parametrize("count", [0, 2])
def test_wrong_number_of_inputs_is_a_shape_error(dense, count):
    with pytest.raises(DeviceError) as e:
        dense.run([Tensor("int8", (1, 16), bytes(16))] * count)
    assert e.value.code == E_BAD_SHAPE
    assert str(e.value) == "model takes 1 input, got %d" % count


def test_data_shorter_than_shape(dense):
    with pytest.raises(DeviceError) as e:
        dense.run([Tensor("int8", (1, 16), bytes(15))])
    assert e.value.code == E_BAD_SHAPE
    assert "needs 16 bytes, got 15" in str(e.value)


@pytest.mark.parametrize(
    "source",
    [
        b"this is not a model" * 10,
        b"",
        read("dense_int8.tflite")[:1000],  # TFL3 header intact, tables cut off
        os.path.join(DATA, "no_such_model.tflite"),
    ],
    ids=["garbage", "empty", "truncated", "missing-file"],
)
def test_bad_model_is_a_load_error(backend, source):
    with pytest.raises(DeviceError) as e:
        backend.load(source)
    assert e.value.code == E_MODEL_LOAD == 23


def test_arena_grows_to_fit_unless_given(backend):
    # 128x128x16 int8 activations need more than the default 256 KiB arena.
    data = modelgen.conv_int8(height=128, width=128, filters=16)
    model = backend.load(data)
    info = model.info()
    assert info["arena_size_bytes"] > tflm_backend.DEFAULT_ARENA
    assert 128 * 128 * 16 < info["arena_used_bytes"] <= info["arena_size_bytes"]
    with pytest.raises(DeviceError) as e:
        backend.load(data, {"arena_size": tflm_backend.DEFAULT_ARENA})
    assert e.value.code == E_MODEL_LOAD
    assert "arena 262144 bytes" in str(e.value)


def test_info_reports_arena_use(dense):
    info = dense.info()
    assert 0 < info["arena_used_bytes"] < info["arena_size_bytes"]


def test_closed_model_refuses_to_run(backend):
    model = backend.load(DENSE)
    model.close()
    with pytest.raises(DeviceError) as e:
        model.run([Tensor("int8", (1, 16), bytes(16))])
    assert e.value.code == E_NO_MODEL


# --- modelgen -------------------------------------------------------------------------------


def test_committed_models_are_what_make_models_writes():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_models", os.path.join(DATA, "make_models.py")
    )
    make_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_models)
    for name, build in make_models.MODELS.items():
        assert build() == read(name), name


def test_modelgen_seed_changes_weights():
    assert modelgen.dense_int8(seed=0) == modelgen.dense_int8(seed=0)
    assert modelgen.dense_int8(seed=0) != modelgen.dense_int8(seed=1)


def test_logits_model_ends_at_fully_connected(backend):
    model = backend.load(modelgen.dense_int8(inputs=8, hidden=(12, 10), outputs=3, softmax=False))
    out = model.io_spec()["outputs"][0]
    assert out["name"] == "logits" and out["shape"] == [1, 3]
    assert out["scale"] != modelgen.SOFTMAX_SCALE
