"""The litert backend against ai_edge_litert's interpreter called in this process, and a
``.tflite`` deployed with ``--backend litert`` through the CLI on the simulated Linux board."""

import numpy as np
import pytest
from support.cli import cli_json
from support.paths import DATA

from kpdev import accelerators
from kpdev.accelerators.ndarray import tflite_spec
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.ops import E_BAD_DTYPE, E_BAD_SHAPE, E_MODEL_LOAD, E_NO_MODEL
from kpdev.protocol.tensors import Tensor

ai_edge_litert = pytest.importorskip("ai_edge_litert")
from ai_edge_litert import interpreter as litert_interpreter  # noqa: E402

from kpdev.host.runtime import modelgen  # noqa: E402

MODELS = [
    "dense_int8.tflite",
    "dense_float_io.tflite",
    "conv_int8.tflite",
    "keras_cnn_int8.tflite",
    "keras_mix_float.tflite",
]
DENSE = str(DATA / "dense_int8.tflite")


def read(name):
    return (DATA / name).read_bytes()


class Direct:
    """A .tflite in ai_edge_litert's own interpreter, with the backend's default settings."""

    def __init__(self, data, resolver=litert_interpreter.OpResolverType.AUTO):
        self.interp = litert_interpreter.Interpreter(
            model_content=data, experimental_op_resolver_type=resolver
        )
        self.interp.allocate_tensors()

    def __call__(self, *arrays):
        for d, a in zip(self.interp.get_input_details(), arrays, strict=True):
            self.interp.set_tensor(d["index"], a)
        self.interp.invoke()
        return [self.interp.get_tensor(d["index"]) for d in self.interp.get_output_details()]


def random_input(spec, rng):
    """A numpy input for one spec: uniform floats in [0, 1) or uniform ints over the dtype."""
    dtype = np.dtype(spec["dtype"])
    if dtype.kind == "f":
        return rng.uniform(0.0, 1.0, spec["shape"]).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, spec["shape"]).astype(dtype)


def tensor(a):
    return Tensor(a.dtype.name, a.shape, a.astype(a.dtype.newbyteorder("<")).tobytes())


@pytest.fixture(scope="module")
def backend():
    return accelerators.get("litert")


@pytest.fixture(scope="module")
def dense(backend):
    return backend.load(DENSE)


# --- registry -------------------------------------------------------------------------------


def test_available_lists_litert_with_the_package_version(backend):
    assert accelerators.available()["litert"] == ai_edge_litert.__version__ == backend.version()
    assert backend.name == "litert" and "litert" in accelerators.FORMATS["tflite"]
    assert accelerators.for_format("tflite", prefer="litert") is backend
    # Asked for nothing, .tflite still goes to the first backend of the table.
    assert accelerators.for_format("tflite").name != "litert"


# --- io spec --------------------------------------------------------------------------------


def test_io_spec_of_the_int8_model(dense):
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


@pytest.mark.parametrize("name", MODELS)
def test_io_spec_agrees_with_tflite_micro(backend, name):
    # Two interpreters reading the same flatbuffer on their own must describe it alike.
    pytest.importorskip("tflite_micro")
    tflm = accelerators.get("tflite_micro").load(read(name))
    assert backend.load(read(name)).io_spec() == tflm.io_spec()


def test_io_spec_of_float_model_has_no_quantization(backend):
    spec = backend.load(read("keras_mix_float.tflite")).io_spec()
    assert spec["inputs"][0]["shape"] == [1, 8, 8, 1]
    for s in spec["inputs"] + spec["outputs"]:
        assert s["dtype"] == "float32"
        assert s["scale"] is None and s["zero_point"] is None


def test_per_channel_quantization_gives_lists_and_axis():
    details = {
        "name": "w",
        "dtype": np.int8,
        "shape": np.array([3, 2], np.int32),
        "quantization_parameters": {
            "scales": np.array([0.5, 0.25, 0.125], np.float32),
            "zero_points": np.array([0, 1, -1], np.int32),
            "quantized_dimension": 0,
        },
    }
    assert tflite_spec(details) == {
        "name": "w",
        "dtype": "int8",
        "shape": [3, 2],
        "scale": [0.5, 0.25, 0.125],
        "zero_point": [0, 1, -1],
        "axis": 0,
    }


# --- inference ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_run_gives_the_interpreters_bytes(backend, name):
    data = read(name)
    model = backend.load(data)
    direct = Direct(data)
    rng = np.random.default_rng(7)
    seen = set()
    for _ in range(6):
        x = random_input(model.io_spec()["inputs"][0], rng)
        got = model.run([tensor(x)])
        (want,) = direct(x)
        assert len(got) == 1
        assert (got[0].dtype, got[0].shape) == (want.dtype.name, want.shape)
        assert got[0].data == want.tobytes()
        seen.add(got[0].data)
    assert len(seen) > 1  # the output follows the input


def test_load_from_path_and_bytes_agree(backend):
    from_path, from_bytes = backend.load(DENSE), backend.load(read("dense_int8.tflite"))
    assert from_path.io_spec() == from_bytes.io_spec()
    x = tensor(random_input(from_path.io_spec()["inputs"][0], np.random.default_rng(1)))
    assert from_path.run([x])[0].data == from_bytes.run([x])[0].data


def test_threads_and_op_resolver_meta(backend):
    data = read("keras_cnn_int8.tflite")
    resolver = "builtin_without_default_delegates"
    model = backend.load(data, {"threads": 2, "op_resolver": resolver})
    info = model.info()
    assert info["threads"] == 2 and info["op_resolver"] == resolver
    assert info["delegate_kernels"] == 0  # no XNNPACK
    assert backend.load(data, {"op_resolver": "builtin"}).info()["delegate_kernels"] == 2
    direct = Direct(data, litert_interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    x = random_input(model.io_spec()["inputs"][0], np.random.default_rng(2))
    assert model.run([tensor(x)])[0].data == direct(x)[0].tobytes()


def test_info_counts_tensors_and_operators(backend, dense):
    assert dense.info() == {
        "threads": None,
        "op_resolver": "auto",
        "subgraphs": 1,
        "tensors": 8,
        "operators": 3,
        "op_counts": {"FULLY_CONNECTED": 2, "SOFTMAX": 1},
        "delegate_kernels": 1,  # XNNPACK took the FULLY_CONNECTED/SOFTMAX chain
    }
    mix = backend.load(read("keras_mix_float.tflite"), {"op_resolver": "builtin_ref"}).info()
    assert mix["operators"] == 18 and mix["op_counts"]["CONV_2D"] == 4
    assert mix["delegate_kernels"] == 0


def test_run_is_repeatable_and_survives_reset(dense):
    x = tensor(random_input(dense.io_spec()["inputs"][0], np.random.default_rng(11)))
    first = dense.run([x])[0].data
    dense.run([tensor(random_input(dense.io_spec()["inputs"][0], np.random.default_rng(12)))])
    dense.reset()
    assert dense.run([x])[0].data == first


def test_closed_model_refuses_to_run(backend):
    model = backend.load(DENSE)
    model.close()
    with pytest.raises(DeviceError) as e:
        model.run([Tensor("int8", (1, 16), bytes(16))])
    assert e.value.code == E_NO_MODEL


# --- refusals -------------------------------------------------------------------------------


def test_wrong_dtype(dense):
    with pytest.raises(DeviceError) as e:
        dense.run([Tensor("float32", (1, 16), bytes(64))])
    assert e.value.code == E_BAD_DTYPE
    assert "input 0 (input): expected dtype int8, got float32" in str(e.value)


@pytest.mark.parametrize(
    "inputs, words",
    [
        ([Tensor("int8", (1, 17), bytes(17))], "expected shape [1, 16], got [1, 17]"),
        ([Tensor("int8", (1, 16), bytes(15))], "needs 16 bytes, got 15"),
        ([Tensor("int8", (1, 16), bytes(16))] * 2, "model takes 1 input, got 2"),
    ],
)
def test_wrong_shape(dense, inputs, words):
    with pytest.raises(DeviceError) as e:
        dense.run(inputs)
    assert e.value.code == E_BAD_SHAPE
    assert words in str(e.value)


@pytest.mark.parametrize(
    "source, meta, words",
    [
        (b"this is not a model" * 10, None, "not a TFLite model"),
        (b"", None, "not a TFLite model"),
        (read("dense_int8.tflite")[:1000], None, "not a valid Flatbuffer"),  # cut short
        (str(DATA / "mlp_f32.vmfb"), None, "not a TFLite model"),
        (str(DATA / "no_such_model.tflite"), None, "cannot read model file"),
        (DENSE, {"threads": 0}, "threads must be an int of at least 1"),
        (DENSE, {"threads": "4"}, "threads must be an int of at least 1"),
        (DENSE, {"op_resolver": "xnnpack"}, "unknown op_resolver 'xnnpack' (known: auto,"),
    ],
    ids=["garbage", "empty", "truncated", "vmfb", "missing-file", "threads", "threads-str", "ops"],
)
def test_bad_model_or_meta_is_a_load_error(backend, source, meta, words):
    with pytest.raises(DeviceError) as e:
        backend.load(source, meta)
    assert e.value.code == E_MODEL_LOAD
    assert words in str(e.value)


def one_op_model(opcode, input_shapes, dtype="FLOAT32", custom_code=None):
    """A one-operator .tflite written with tflite-micro's model_editor."""
    pytest.importorskip("tflite_micro")
    from tflite_micro.tensorflow.lite.micro.compression import model_editor as me
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as tfl

    kind = getattr(tfl.TensorType, dtype)
    ins = [me.Tensor(shape=s, dtype=kind, name="in%d" % i) for i, s in enumerate(input_shapes)]
    out = me.Tensor(shape=input_shapes[0], dtype=kind, name="out")
    op = me.Operator(
        opcode=getattr(tfl.BuiltinOperator, opcode),
        inputs=ins,
        outputs=[out],
        custom_code=custom_code,
    )
    model = me.Model(subgraphs=[me.Subgraph(operators=[op], inputs=ins, outputs=[out])])
    return bytes(model.build())  # a bytearray, which LiteRT's own Interpreter refuses


def test_two_inputs_are_set_in_order(backend):
    data = one_op_model("SUB", [(2, 3), (2, 3)])
    model = backend.load(bytearray(data))  # any bytes-like source
    assert [s["name"] for s in model.io_spec()["inputs"]] == ["in0", "in1"]
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 0.5, np.float32)
    (got,) = model.run([tensor(a), tensor(b)])
    assert got.data == Direct(data)(a, b)[0].tobytes() == (a - b).tobytes()


@pytest.mark.parametrize(
    "build, words",
    [
        (lambda: one_op_model("ADD", [(1, 3), (1, 4)]), "failed to prepare"),
        (
            lambda: one_op_model("CUSTOM", [(1, 4)], custom_code="KpdevNoSuchOp"),
            "Encountered unresolved custom op: KpdevNoSuchOp.; See instructions",
        ),
        (
            lambda: one_op_model("LOGICAL_AND", [(1, 4), (1, 4)], dtype="BOOL"),
            "input 0 (in0) of the model is bool, which kpdev tensors do not carry",
        ),
    ],
    ids=["shapes-do-not-broadcast", "unknown-custom-op", "bool-input"],
)
def test_a_model_litert_cannot_prepare_or_kpdev_cannot_feed_is_a_load_error(backend, build, words):
    with pytest.raises(DeviceError) as e:
        backend.load(build())
    assert e.value.code == E_MODEL_LOAD
    assert words in str(e.value) and "\n" not in str(e.value)


def test_corrupted_models_load_or_fail_cleanly(backend):
    # LiteRT verifies the flatbuffer: a flipped byte gives a model or an E_MODEL_LOAD, never
    # another exception (or a crash).
    data = read("keras_cnn_int8.tflite")
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(40):
        bad = bytearray(data)
        for at in rng.integers(8, len(bad), 3):
            bad[at] = int(rng.integers(0, 256))
        try:
            backend.load(bytes(bad))
            outcomes.add("loaded")
        except DeviceError as e:
            assert e.code == E_MODEL_LOAD, e
            outcomes.add("refused")
    assert outcomes == {"loaded", "refused"}


# --- through the CLI on sim-linux -----------------------------------------------------------


def test_info_lists_litert_with_its_version():
    info = cli_json("info", "--board", "sim-linux")
    assert info["backends"]["litert"] == ai_edge_litert.__version__
    assert "litert" in info["formats"]["tflite"]


def test_deploy_with_backend_litert_and_infer_on_sim_linux(tmp_path, backend):
    name = "keras_cnn_int8.tflite"  # real TFLite converter output
    board = ["--board", "sim-linux"]
    # deploy reports what MODEL_INFO says about the stored model: the backend that loaded it.
    up = cli_json("deploy", DATA / name, "--name", "m", "--backend", "litert", *board)
    assert up["backend"] == "litert" and up["load_error"] is None
    assert up["meta"] == {"backend": "litert"}
    assert up["io"] == backend.load(read(name)).io_spec()
    direct = Direct(read(name))
    rng = np.random.default_rng(5)
    spec = up["io"]["inputs"][0]
    xs = np.stack([random_input(spec, rng) for _ in range(3)])  # a batch of 3 along axis 0
    np.save(tmp_path / "xs.npy", xs)
    res = cli_json("infer", "-m", "m", "-i", tmp_path / "xs.npy", *board)
    assert res["backend"] == "litert" and res["count"] == 3
    out_dtype = np.dtype(up["io"]["outputs"][0]["dtype"])
    got = np.array(res["outputs"][0], out_dtype)
    for k in range(3):
        assert got[k].tobytes() == direct(xs[k])[0].tobytes(), k
