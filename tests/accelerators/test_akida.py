"""The akida backend against akida itself: io spec, outputs equal to akida called in this
process, refusals before the engine sees a bad input, layer and mapping reports, and the whole
path through the agent and the CLI on sim-linux."""

import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from support.agents import assert_serving
from support.cli import cli_json, kpdev, serve_sim
from support.paths import DATA

akida = pytest.importorskip("akida")

from kpdev import accelerators  # noqa: E402
from kpdev.protocol.errors import DeviceError  # noqa: E402
from kpdev.protocol.ops import (  # noqa: E402
    E_BAD_DTYPE,
    E_BAD_SHAPE,
    E_BAD_VALUE,
    E_MODEL_LOAD,
    E_NO_MODEL,
)
from kpdev.protocol.tensors import Tensor  # noqa: E402

FC = DATA / "akida_digits_fc.fbz"  # IP v1, 4-bit inputs, predict -> float32
CNN = DATA / "akida_digits_cnn.fbz"  # IP v1, 8-bit images, predict -> float32
LARGE = DATA / "akida_large.fbz"  # IP v2, 4-bit 32x32x3, Dequantizer: predict -> float32
# One byte of akida_digits_fc.fbz changed (offset 91 xor 0xff): akida 2.19's parser segfaults.
CRASH_OFFSET = 91


def digits():
    """The 40 held-out digits of digits_sample.npz: (pixels in [0, 1], labels)."""
    sample = np.load(DATA / "digits_sample.npz")
    return sample["x"], sample["y"]


def model_input(path, n=5, seed=0):
    """n inputs for the model at ``path``: held-out digits at its bit width, or random."""
    if path == LARGE:
        rng = np.random.default_rng(seed)
        return rng.integers(0, 16, (n, 32, 32, 3), dtype=np.uint8)
    x, _ = digits()
    top = 15 if path == FC else 255
    return np.round(x[:n] * top).astype(np.uint8)


def tensor(x):
    x = np.asarray(x)
    return Tensor(x.dtype.name, x.shape, x.astype(x.dtype.newbyteorder("<")).tobytes())


def array(t):
    return np.frombuffer(t.data, dtype=np.dtype(t.dtype).newbyteorder("<")).reshape(t.shape)


_reference_models = {}


def reference(path, x, call):
    """akida's own ``predict`` or ``forward`` of the model file at ``path``, in this process."""
    key = str(path)
    if key not in _reference_models:
        _reference_models[key] = akida.Model(key)
    return getattr(_reference_models[key], call)(x)


@pytest.fixture(scope="module")
def backend():
    return accelerators.get("akida")


@pytest.fixture(scope="module")
def fc(backend):
    return backend.load(str(FC))


def refusal(model, x):
    """(code, message) of the DeviceError ``model.run`` raises for the input ``x``."""
    with pytest.raises(DeviceError) as e:
        model.run([x if isinstance(x, Tensor) else tensor(x)])
    return e.value.code, e.value.message


# --- registry, io spec, outputs ---------------------------------------------------------------


def test_registry_offers_akida_for_fbz_with_its_version(backend):
    assert accelerators.available()["akida"] == akida.__version__ == backend.version()
    assert accelerators.for_format("fbz") is backend
    assert backend.name == "akida" and accelerators.FORMATS["fbz"] == ("akida",)


@pytest.mark.parametrize("path", [FC, CNN, LARGE], ids=lambda p: p.stem)
def test_io_spec_follows_the_model(backend, path):
    model = akida.Model(str(path))
    spec = backend.load(str(path)).io_spec()
    (inp,) = spec["inputs"]
    (out,) = spec["outputs"]
    bits = model.layers[0].input_bits
    assert inp["shape"] == [-1, *model.input_shape] and inp["dtype"] == "uint8"
    assert inp["bits"] == bits == (8 if path == CNN else 4)
    assert inp["range"] == [0, 2**bits - 1]
    assert inp["name"] == model.layers[0].name and out["name"] == model.layers[-1].name
    assert out["shape"] == [-1, *model.output_shape]
    assert out["dtype"] == reference(path, model_input(path, 1), "predict").dtype.name
    assert out["dtype"] == "float32"


@pytest.mark.parametrize("path", [FC, CNN, LARGE], ids=lambda p: p.stem)
def test_outputs_equal_akida_in_process(backend, path):
    loaded = backend.load(str(path))
    for n in (1, 3):
        x = model_input(path, n, seed=n)
        (y,) = loaded.run([tensor(x)])
        want = reference(path, x, "predict")
        assert y.dtype == want.dtype.name and list(y.shape) == list(want.shape)
        assert array(y).tobytes() == want.tobytes()


def activated_model(path):
    """A model whose last layer has an activation (so no predict), saved at ``path``."""
    model = akida.Model()
    model.add(akida.InputData((4, 4, 2), input_bits=4, name="events"))
    fc = akida.FullyConnected(6, name="spikes", weights_bits=2, activation=True, act_bits=4)
    model.add(fc)
    rng = np.random.default_rng(3)
    fc.set_variable("weights", rng.integers(-1, 2, (1, 1, 32, 6)).astype(np.int8))
    fc.set_variable("threshold", np.full(6, 4, np.int32))
    fc.set_variable("act_step", np.full(6, 3.0, np.float32))
    model.save(str(path))
    return path


def test_meta_output_forward_gives_akidas_integer_potentials(backend):
    loaded = backend.load(str(FC), {"output": "forward"})
    assert loaded.io_spec()["outputs"][0]["dtype"] == "int32"
    assert loaded.info()["output"] == "forward"
    x = model_input(FC, 4)
    (y,) = loaded.run([tensor(x)])
    assert np.array_equal(array(y), reference(FC, x, "forward"))


def test_a_model_without_predict_gives_forwards_activations(backend, tmp_path):
    path = activated_model(tmp_path / "activated.fbz")
    loaded = backend.load(str(path))
    assert loaded.info()["output"] == "forward"
    assert loaded.io_spec()["outputs"][0] == {
        "name": "spikes",
        "dtype": "uint8",
        "shape": [-1, 1, 1, 6],
        "scale": None,
        "zero_point": None,
    }
    x = np.random.default_rng(4).integers(0, 16, (8, 4, 4, 2), dtype=np.uint8)
    (y,) = loaded.run([tensor(x)])
    want = akida.Model(str(path)).forward(x)
    assert array(y).tobytes() == want.tobytes() and 0 < want.max() <= 15
    # Asking for predict where akida has none is refused at load, with akida's reason.
    with pytest.raises(DeviceError) as e:
        backend.load(str(path), {"output": "predict"})
    assert e.value.code == E_MODEL_LOAD and "cannot run the model with predict" in e.value.message


@pytest.mark.parametrize("path, floor", [(FC, 0.9), (CNN, 0.9)], ids=["fc", "cnn"])
def test_the_digit_models_classify_held_out_digits(backend, path, floor):
    x, labels = digits()
    loaded = backend.load(str(path))
    (y,) = loaded.run([tensor(model_input(path, len(x)))])
    accuracy = np.mean(np.argmax(array(y).reshape(len(x), -1), axis=1) == labels)
    assert accuracy >= floor, accuracy


# --- loading from bytes, bad models ---------------------------------------------------------


def open_files():
    """What this process's file descriptors point to."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink("/proc/self/fd/" + fd))
        except OSError:  # the descriptor listdir itself had open
            pass
    return targets


def test_bytes_load_through_memfd_and_leave_no_descriptor(backend, monkeypatch):
    made = []
    real = os.memfd_create

    def memfd_create(name, *args):
        made.append(name)
        return real(name, *args)

    monkeypatch.setattr(os, "memfd_create", memfd_create)
    loaded = backend.load(FC.read_bytes())
    assert made == ["kpdev-akida.fbz"]
    assert not [t for t in open_files() if "kpdev-akida" in t]
    x = model_input(FC, 3)
    assert array(loaded.run([tensor(x)])[0]).tobytes() == reference(FC, x, "predict").tobytes()


def test_bytes_load_through_a_temporary_file_without_memfd(backend, monkeypatch):
    monkeypatch.delattr(os, "memfd_create")
    pattern = os.path.join(tempfile.gettempdir(), "kpdev-akida-*")
    before = set(glob.glob(pattern))
    loaded = backend.load(CNN.read_bytes())
    assert set(glob.glob(pattern)) == before  # the temporary file is gone again
    x = model_input(CNN, 2)
    assert array(loaded.run([tensor(x)])[0]).tobytes() == reference(CNN, x, "predict").tobytes()


@pytest.mark.parametrize(
    "source, words",
    [
        (b"not an akida model at all", "akida cannot load the model"),
        (b"", "empty"),
        (FC.read_bytes()[:40], "akida cannot load the model"),
        ("/nonexistent/model.fbz", "cannot read model file /nonexistent/model.fbz"),
        (12345, "must be a path or bytes"),
    ],
    ids=["garbage", "empty", "truncated", "missing-file", "wrong-type"],
)
def test_bad_models_are_refused_with_model_load(backend, source, words):
    with pytest.raises(DeviceError) as e:
        backend.load(source)
    assert e.value.code == E_MODEL_LOAD and words in e.value.message, e.value.message


def test_a_model_that_crashes_akida_is_refused_and_this_process_lives_on(backend, tmp_path):
    data = bytearray(FC.read_bytes())
    data[CRASH_OFFSET] ^= 0xFF
    path = tmp_path / "crash.fbz"
    path.write_bytes(bytes(data))
    # Precondition: loading it kills a plain Python process.
    r = subprocess.run(
        [sys.executable, "-c", "import akida, sys; akida.Model(sys.argv[1])", str(path)],
        capture_output=True,
        timeout=60,
    )
    if r.returncode >= 0:
        pytest.skip("this akida (%s) no longer crashes on the corrupt file" % akida.__version__)
    for source in (str(path), bytes(data)):
        with pytest.raises(DeviceError) as e:
            backend.load(source)
        assert e.value.code == E_MODEL_LOAD, e.value.message
        assert "akida crashed (SIGSEGV) loading the model" in e.value.message
    x = model_input(FC, 1)
    assert array(backend.load(str(FC)).run([tensor(x)])[0]).shape == (1, 1, 1, 10)


# --- refusals before the engine -------------------------------------------------------------


def test_wrong_dtype_is_refused_with_bad_dtype(fc):
    x = model_input(FC, 1)
    for wrong in (x.astype(np.int8), x.astype(np.float32), x.astype(np.uint16)):
        code, msg = refusal(fc, wrong)
        assert code == E_BAD_DTYPE and "expected dtype uint8, got %s" % wrong.dtype in msg


@pytest.mark.parametrize(
    "shape",
    [(8, 8, 1), (1, 1, 8, 8, 1), (1, 8, 7, 1), (1, 8, 8, 2), (0, 8, 8, 1), (64,)],
    ids=["3d", "5d", "width", "channels", "empty-batch", "flat"],
)
def test_wrong_shape_is_refused_with_bad_shape(fc, shape):
    code, msg = refusal(fc, np.zeros(shape, np.uint8))
    assert code == E_BAD_SHAPE, msg
    assert "input 0 (digits)" in msg


def test_a_short_buffer_is_refused_with_bad_shape(fc):
    code, msg = refusal(fc, Tensor("uint8", (1, 8, 8, 1), b"\x00" * 63))
    assert code == E_BAD_SHAPE and "needs 64 bytes, got 63" in msg


@pytest.mark.parametrize("path", [FC, LARGE], ids=lambda p: p.stem)
def test_values_above_the_input_bits_are_refused_with_bad_value(backend, path):
    loaded = backend.load(str(path))
    name = loaded.io_spec()["inputs"][0]["name"]
    x = model_input(path, 2)
    x[1, 2, 3, 0] = 16
    code, msg = refusal(loaded, x)
    assert code == E_BAD_VALUE
    assert msg.startswith("input 0 (%s): values must be in 0..15 " % name), msg
    assert "4-bit" in msg and "got 16 at [1, 2, 3, 0]" in msg
    code, msg = refusal(loaded, np.full(x.shape, 255, np.uint8))
    assert code == E_BAD_VALUE and "got 255 at [0, 0, 0, 0]" in msg
    # The model still runs, and 15 is allowed.
    x[1, 2, 3, 0] = 15
    assert array(loaded.run([tensor(x)])[0]).tobytes() == reference(path, x, "predict").tobytes()


def signed_model(path):
    """An IP v2 model whose InputData takes signed 6-bit values (-32..31), saved at ``path``."""
    model = akida.Model()
    model.add(akida.InputData((4, 4, 2), input_bits=6, name="signed"))
    dense = akida.Dense1D(units=3, output_bits=8, name="dense")
    model.add(dense)
    rng = np.random.default_rng(5)
    dense.set_variable("weights", rng.integers(-7, 8, (32, 3)).astype(np.int8))
    dense.set_variable("output_shift", np.full(3, -5, np.int8))
    model.save(str(path))
    return path


def test_signed_inputs_take_int8_within_their_bits(backend, tmp_path):
    path = signed_model(tmp_path / "signed.fbz")
    loaded = backend.load(str(path))
    (inp,) = loaded.io_spec()["inputs"]
    assert (inp["dtype"], inp["bits"], inp["range"]) == ("int8", 6, [-32, 31])
    x = np.random.default_rng(6).integers(-32, 32, (4, 4, 4, 2), dtype=np.int8)
    (y,) = loaded.run([tensor(x)])
    assert array(y).tobytes() == akida.Model(str(path)).forward(x).tobytes()
    for value in (32, -33, 127, -128):
        x[2, 1, 0, 1] = value
        code, msg = refusal(loaded, x)
        assert code == E_BAD_VALUE and "values must be in -32..31" in msg
        assert "got %d at [2, 1, 0, 1]" % value in msg
    code, msg = refusal(loaded, x.astype(np.uint8))
    assert code == E_BAD_DTYPE and "expected dtype int8, got uint8" in msg


def test_eight_bit_models_take_every_uint8_value(backend):
    loaded = backend.load(str(CNN))
    x = np.full((1, 8, 8, 1), 255, np.uint8)
    assert array(loaded.run([tensor(x)])[0]).tobytes() == reference(CNN, x, "predict").tobytes()


def test_a_closed_model_refuses_to_run(backend):
    loaded = backend.load(str(FC))
    loaded.close()
    code, msg = refusal(loaded, model_input(FC, 1))
    assert code == E_NO_MODEL and "closed" in msg
    assert loaded.info() == {}


# --- info: layers, statistics, virtual devices ----------------------------------------------


def test_info_has_the_layer_summary_and_says_software(backend):
    loaded = backend.load(str(CNN))
    info = loaded.info()
    model = akida.Model(str(CNN))
    assert info["device"] == "software" and info["engine"] == "akida " + akida.__version__
    assert info["ip_version"] == "v1" and info["output"] == "predict" and info["input_bits"] == 8
    assert [(la["name"], la["type"]) for la in info["layers"]] == [
        (la.name, la.parameters.layer_type.name) for la in model.layers
    ]
    for summary, layer in zip(info["layers"], model.layers, strict=True):
        assert summary["input_shape"] == list(layer.input_dims)
        assert summary["output_shape"] == list(layer.output_dims)
        assert summary["input_bits"] == layer.input_bits
        assert summary["weights_bits"] == layer.parameters.weights_bits
        assert summary["weights_shape"] == list(layer.get_variable("weights").shape)
    conv0, conv1, classes = info["layers"]
    assert conv0["input_bits"] == 8 and conv0["weights_bits"] == 4
    assert conv1["weights_bits"] == 2 and conv1["activation_bits"] == 4
    assert classes["activation"] is False and classes["activation_bits"] is None
    assert info["sequences"] == [
        {
            "name": "SW/conv0-classes",
            "backend": "Software",
            "passes": [["conv0", "conv1", "classes"]],
        }
    ]
    assert info["statistics"] == "no inference yet"
    t0 = time.perf_counter()
    loaded.run([tensor(model_input(CNN, 3))])
    wall_ms = (time.perf_counter() - t0) * 1e3
    stats = loaded.info()["statistics"]
    assert stats["last_batch_frames"] == 3 and 0 <= stats["last_batch_ms"] <= wall_ms
    assert stats["power"] == stats["energy"] == "not available in the software engine"
    assert "virtual" not in info


def test_info_of_an_ip_v2_model_names_its_activations_and_macs(backend):
    info = backend.load(str(LARGE)).info()
    assert info["ip_version"] == "v2" and info["output"] == "predict" and info["input_bits"] == 4
    assert info["macs"] == akida.Model(str(LARGE)).macs > 1_000_000
    layers = [(la["type"], la["activation"], la["activation_bits"]) for la in info["layers"]]
    assert layers == [("InputData", None, None)] + [("Conv2D", "ReLU", 4)] * 4 + [
        ("Dense1D", "NoActivation", 8),
        ("Dequantizer", None, None),
    ]


@pytest.mark.parametrize("path", [FC, CNN], ids=lambda p: p.stem)
def test_virtual_akd1000_report_matches_akidas_own_mapping(backend, path):
    loaded = backend.load(str(path), {"virtual": "AKD1000"})
    report = loaded.info()["virtual"]
    mapped = akida.Model(str(path))
    mapped.map(akida.AKD1000())
    assert report["device"] == "AKD1000" and report["fits"] is True
    assert report["software_layers"] == [] and report["nps_available"] == 78
    assert report["components"] == {t.name: n for t, n in mapped.component_count.items()}
    (seq,) = report["sequences"]
    assert seq["backend"] == "Hardware" and seq["program_bytes"] == len(
        mapped.sequences[0].program
    )
    assert seq["program_memory"]["program_memory_bytes"] > 0
    layers = {la["name"]: la for la in report["layers"]}
    for layer in mapped.layers:
        if layer.mapping is not None:
            assert len(layers[layer.name]["nps"]) == len(layer.mapping.nps)
    assert "no power" in report["power"]
    # Mapping a copy leaves the loaded model in the software engine.
    x = model_input(path, 2)
    assert array(loaded.run([tensor(x)])[0]).tobytes() == reference(path, x, "predict").tobytes()
    assert loaded.info()["device"] == "software"


def test_virtual_reports_of_a_model_that_does_not_fit(backend):
    report = backend.load(str(LARGE), {"virtual": "AKD1000"}).info()["virtual"]
    assert report["fits"] is False and "IP version" in report["error"]
    report = backend.load(str(LARGE), {"virtual": "TwoNodesIPv2"}).info()["virtual"]
    assert report["fits"] is False and report["software_layers"] == ["logits", "dequantize"]
    assert [s["backend"] for s in report["sequences"]] == ["Hardware", "Software"]
    assert report["components"]["CNP1"] == report["nps_used"] > 0


@pytest.mark.parametrize(
    "meta, words",
    [
        ({"virtual": "AKD9000"}, "unknown virtual device 'AKD9000'"),
        ({"output": "logits"}, "meta output must be one of auto, predict, forward"),
        ({"device": "AKD1000"}, 'meta device must be "software"'),
    ],
)
def test_bad_meta_is_refused_with_model_load(backend, meta, words):
    assert backend.load(str(FC), {"device": "software"}).info()["device"] == "software"
    with pytest.raises(DeviceError) as e:
        backend.load(str(FC), meta)
    assert e.value.code == E_MODEL_LOAD and words in e.value.message
    if "virtual" in meta:
        assert "AKD1000" in e.value.message


# --- through the agent and the CLI ----------------------------------------------------------


def test_agent_reports_mapping_and_refuses_a_crashing_model(agents):
    agent = agents.start("sim-linux")
    c = agent.client()
    c.upload("fc", FC.read_bytes(), "fbz", {"virtual": "AKD1000"})
    info = c.model_info("fc")
    assert info["backend"] == "akida" and info["details"]["device"] == "software"
    assert info["details"]["virtual"]["fits"] is True
    x = model_input(FC, 4)
    (y,), _ = c.infer(x, "fc")
    assert y.tobytes() == reference(FC, x, "predict").tobytes()
    bad = bytearray(FC.read_bytes())
    bad[CRASH_OFFSET] ^= 0xFF
    c.upload("bad", bytes(bad), "fbz", activate=False)
    error = c.model_info("bad")["load_error"]
    assert error["code"] == E_MODEL_LOAD and "akida" in error["msg"]
    assert agent.alive()
    assert_serving(c)


def test_cli_deploy_infer_stats_on_sim_linux(tmp_path):
    up = kpdev("deploy", FC, "--board", "sim-linux", "--json")
    assert up.returncode == 0, up.stderr
    deployed = json.loads(up.stdout)
    assert deployed["backend"] == "akida" and deployed["active"]
    assert deployed["io"]["inputs"][0]["shape"] == [-1, 8, 8, 1]
    assert deployed["io"]["inputs"][0]["bits"] == 4

    # The deployed model stays on the board's flash; one agent serves the rest of the test.
    proc, port = serve_sim("sim-linux", "--listen", "tcp://127.0.0.1:0")
    try:
        x = model_input(FC, 5)
        np.save(tmp_path / "x.npy", x)
        res = cli_json(
            "infer", "-m", "akida_digits_fc", "--input", tmp_path / "x.npy", "--port", port
        )
        got = np.array(res["outputs"][0], dtype=np.float32)
        assert res["backend"] == "akida"
        assert got.tobytes() == reference(FC, x, "predict").tobytes()

        bad = x.copy()
        bad[0, 4, 4, 0] = 200
        np.save(tmp_path / "bad.npy", bad)
        r = kpdev("infer", "-m", "akida_digits_fc", "-i", tmp_path / "bad.npy", "--port", port)
        assert r.returncode == 3, (r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kpdev: "), r.stderr
        assert "values must be in 0..15" in lines[0] and "got 200 at [0, 4, 4, 0]" in lines[0]

        # The agent goes on serving: the same model answers again, and counted the refusal.
        res = cli_json(
            "infer", "-m", "akida_digits_fc", "--input", tmp_path / "x.npy", "--port", port
        )
        assert np.array(res["outputs"][0], dtype=np.float32).tobytes() == got.tobytes()
        stats = cli_json("stats", "--port", port)
        assert stats["errors"] == {str(E_BAD_VALUE): 1}
        assert stats["models"]["akida_digits_fc"]["count"] == 2
        info = cli_json("model", "info", "akida_digits_fc", "--port", port)
        details = info["details"]
        assert details["device"] == "software" and details["statistics"]["last_batch_frames"] == 5
        assert [la["type"] for la in details["layers"]] == ["InputData", "FullyConnected"]
    finally:
        proc.terminate()
        proc.wait(10)
