"""The iree backend against IREE's own runtime called in this process, and ``.vmfb`` models
through the CLI on the simulated embedded Linux board."""

import importlib.metadata
import importlib.util
import subprocess

import numpy as np
import pytest
from support.cli import cli_json, serve_sim
from support.paths import DATA

from kpdev import accelerators
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.ops import E_BAD_DTYPE, E_BAD_SHAPE, E_INFER, E_MODEL_LOAD, E_NO_MODEL
from kpdev.protocol.tensors import Tensor

ireert = pytest.importorskip("iree.runtime")

from kpdev.accelerators import iree as iree_backend  # noqa: E402

MLP = str(DATA / "mlp_f32.vmfb")
INT_ARITH = str(DATA / "int_arith.vmfb")
MATMUL = str(DATA / "matmul_chain.vmfb")
ACCUMULATOR = str(DATA / "accumulator.vmfb")
MLP_BYTES = (DATA / "mlp_f32.vmfb").read_bytes()


def _make_models():
    spec = importlib.util.spec_from_file_location(
        "make_iree_models", str(DATA / "make_iree_models.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_models = _make_models()


class Direct:
    """One function of a .vmfb run by iree.runtime itself, in a context of its own."""

    def __init__(self, path, function="main", driver="local-sync"):
        self.instance = ireert.VmInstance()
        self.device = ireert.get_device(driver)
        with open(path, "rb") as f:
            self.module = ireert.VmModule.copy_buffer(self.instance, f.read())
        hal = ireert.create_hal_module(self.instance, self.device)
        context = ireert.VmContext(self.instance, modules=[hal, self.module])
        self.invoker = ireert.FunctionInvoker(
            context, self.device, self.module.lookup_function(function)
        )

    def __call__(self, *arrays):
        results = self.invoker(*arrays)
        if not isinstance(results, tuple):
            results = (results,)
        return [np.asarray(r) for r in results]


def tensor(a):
    """A little-endian kpdev Tensor of a numpy array."""
    return Tensor(a.dtype.name, a.shape, a.astype(a.dtype.newbyteorder("<")).tobytes())


def array(t):
    """The numpy array of a kpdev Tensor."""
    return np.frombuffer(t.data, np.dtype(t.dtype).newbyteorder("<")).reshape(t.shape)


def float_input(rng, shape):
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def int_inputs(rng, n):
    x = rng.integers(-128, 128, (n, 8)).astype(np.int8)
    # The full int32 range: products overflow, and must wrap as numpy's int32 does.
    y = rng.integers(-(2**31), 2**31, (n, 8), dtype=np.int64).astype(np.int32)
    return x, y


@pytest.fixture(scope="module")
def backend():
    return accelerators.get("iree")


# --- registry -------------------------------------------------------------------------------


def test_available_lists_iree_with_the_runtime_version(backend):
    version = importlib.metadata.version("iree-base-runtime")
    assert accelerators.available()["iree"] == version == backend.version()
    assert accelerators.for_format("vmfb") is backend
    assert backend.name == "iree" and "iree" in accelerators.FORMATS["vmfb"]


# --- io spec --------------------------------------------------------------------------------


def _spec(name, dtype, shape):
    return {"name": name, "dtype": dtype, "shape": shape, "scale": None, "zero_point": None}


def test_io_spec_comes_from_the_abi_declaration(backend):
    assert backend.load(MLP).io_spec() == {
        "inputs": [_spec("input", "float32", [1, 16])],
        "outputs": [_spec("logits", "float32", [1, 4])],
    }
    # Dynamic dimensions are -1; names come from iree.abi.name.
    assert backend.load(INT_ARITH).io_spec() == {
        "inputs": [_spec("x", "int8", [-1, 8]), _spec("y", "int32", [-1, 8])],
        "outputs": [_spec("sum", "int32", [-1, 8]), _spec("halved", "int8", [-1, 8])],
    }
    # Without iree.abi.name the compiler names them input0..., output0...
    assert backend.load(INT_ARITH, {"function": "double"}).io_spec() == {
        "inputs": [_spec("input0", "int32", [4])],
        "outputs": [_spec("output0", "int32", [4])],
    }


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("tensor<1x16xf32>", ("float32", [1, 16], False)),
        ("tensor<?x?x3xui8>", ("uint8", [-1, -1, 3], False)),
        ("tensor<f16>", ("float16", [], False)),
        ("tensor<2xsi64> {iree.abi.foo = 1 : i32}", ("int64", [2], False)),
        ("i32", ("int32", [], True)),
        ("f64", ("float64", [], True)),
        ("tensor<4xi1>", None),  # bool: kpdev tensors have no bool dtype
        ("tensor<4xbf16>", None),
        ("tensor<4xcomplex<f32>>", None),
        ("tensor<4xf32, #iree_encoding.layout<[]>>", None),
        ("!hal.buffer_view", None),
        ("tuple<tensor<2xf32>, tensor<2xf32>>", None),
        ("index", None),
    ],
)
def test_parse_type(text, parsed):
    assert iree_backend._parse_type(text) == parsed


def test_parse_declaration_splits_nested_types_and_names():
    model, name, inputs, outputs = iree_backend._parse_declaration(
        "sync func @predict(%image: tensor<1x?xf32> {iree.abi.affinity = #hal.device.promise<@d, "
        "[0, 1]>}, %s: i32) -> (%out: tensor<?xf32>, %output1: tuple<i32, f32>)"
    )
    assert (model, name) == ("sync", "predict")
    assert inputs == [
        ("image", "tensor<1x?xf32> {iree.abi.affinity = #hal.device.promise<@d, [0, 1]>}"),
        ("s", "i32"),
    ]
    assert outputs == [("out", "tensor<?xf32>"), ("output1", "tuple<i32, f32>")]
    assert iree_backend._parse_declaration("sync func @f() -> ()")[2:] == ([], [])
    assert iree_backend._parse_declaration("async func @f(%a: i32) -> ()")[0] == "async"
    for bad in [
        "func @f(%a: i32) -> ()",
        "sync func @f(%a: tensor<2xf32> -> ()",
        "sync func @f()",
    ]:
        with pytest.raises(ValueError):
            iree_backend._parse_declaration(bad)


# --- inference ------------------------------------------------------------------------------


def test_mlp_gives_the_runtimes_bytes_and_the_networks_values(backend):
    model = backend.load(MLP)
    direct = Direct(MLP)
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(6):
        x = float_input(rng, (1, 16))
        (got,) = model.run([tensor(x)])
        (want,) = direct(x)
        assert got.dtype == "float32" and got.shape == (1, 4)
        assert got.data == want.tobytes()
        np.testing.assert_allclose(array(got), make_models.mlp_reference(x), rtol=1e-5, atol=1e-5)
        seen.add(got.data)
    assert len(seen) == 6  # the output follows the input


@pytest.mark.parametrize("n", [1, 3, 7])
def test_int_model_with_a_dynamic_batch_gives_exact_results(backend, n):
    model = backend.load(INT_ARITH)
    x, y = int_inputs(np.random.default_rng(n), n)
    got = model.run([tensor(x), tensor(y)])
    want = Direct(INT_ARITH)(x, y)
    assert [(t.dtype, t.shape) for t in got] == [("int32", (n, 8)), ("int8", (n, 8))]
    assert [t.data for t in got] == [w.tobytes() for w in want]
    product, halved = make_models.int_arith_reference(x, y)
    assert np.array_equal(array(got[0]), product) and np.array_equal(array(got[1]), halved)


def test_matmul_chain_gives_the_runtimes_bytes(backend):
    model = backend.load(MATMUL)
    direct = Direct(MATMUL)
    x = float_input(np.random.default_rng(2), (1, 256))
    (got,) = model.run([tensor(x)])
    (want,) = direct(x)
    assert got.shape == (1, 256) and got.data == want.tobytes()
    np.testing.assert_allclose(array(got), make_models.matmul_chain_reference(x), rtol=1e-4)


def test_load_from_path_and_bytes_agree(backend):
    from_path, from_bytes = backend.load(MLP), backend.load(MLP_BYTES)
    assert from_path.io_spec() == from_bytes.io_spec()
    x = tensor(float_input(np.random.default_rng(9), (1, 16)))
    assert from_path.run([x])[0].data == from_bytes.run([x])[0].data


def test_meta_function_picks_another_export(backend):
    model = backend.load(INT_ARITH, {"function": "double"})
    v = np.array([3, -7, 2**30, -(2**31)], np.int32)
    (got,) = model.run([tensor(v)])
    assert got.data == Direct(INT_ARITH, "double")(v)[0].tobytes()
    assert array(got).tolist() == [6, -14, -(2**31), 0]  # wraps as int32
    assert model.info()["function"] == "double"


def test_scalar_arguments_and_results_are_zero_dimensional_tensors(backend):
    model = backend.load(INT_ARITH, {"function": "scale"})
    assert model.io_spec() == {
        "inputs": [_spec("input0", "int32", [4]), _spec("input1", "int32", [])],
        "outputs": [_spec("output0", "int32", [4]), _spec("output1", "int32", [])],
    }
    v, k = np.array([1, -2, 3, 2**29], np.int32), np.array(5, np.int32)
    got = model.run([tensor(v), tensor(k)])
    assert [(t.dtype, t.shape) for t in got] == [("int32", (4,)), ("int32", ())]
    want_v, want_k = Direct(INT_ARITH, "scale")(v, int(k))
    assert got[0].data == want_v.tobytes()
    assert array(got[0]).tolist() == [5, -10, 15, 5 * 2**29 - 2**32]  # int32 wraps
    assert array(got[1]).tolist() == int(want_k) == 6


def test_missing_function_is_a_load_error_listing_the_exports(backend):
    for name in ["predict", "__init"]:  # IREE's own initializer is not offered either
        with pytest.raises(DeviceError) as e:
            backend.load(INT_ARITH, {"function": name})
        assert e.value.code == E_MODEL_LOAD
        assert str(e.value) == (
            "no function %r in the IREE module (it exports: main, double, scale)" % name
        )


def test_local_task_driver_runs_the_same_model(backend):
    model = backend.load(INT_ARITH, {"driver": "local-task"})
    assert model.info()["driver"] == "local-task"
    x, y = int_inputs(np.random.default_rng(4), 5)
    got = model.run([tensor(x), tensor(y)])
    want = Direct(INT_ARITH, driver="local-task")(x, y)
    assert [t.data for t in got] == [w.tobytes() for w in want]
    mlp = backend.load(MLP, {"driver": "local-task"})
    x = float_input(np.random.default_rng(4), (1, 16))
    assert mlp.run([tensor(x)])[0].data == Direct(MLP, driver="local-task")(x)[0].tobytes()


@pytest.mark.parametrize("driver", ["local", "LOCAL-SYNC", 3])
def test_unknown_driver_names_the_known_ones(backend, driver):
    with pytest.raises(DeviceError) as e:
        backend.load(MLP, {"driver": driver})
    assert e.value.code == E_MODEL_LOAD
    message = str(e.value)
    assert message.startswith("unknown IREE driver %r (known: " % (driver,))
    assert "local-sync" in message and "local-task" in message


def test_info_names_driver_function_and_exports(backend):
    assert backend.load(INT_ARITH).info() == {
        "driver": "local-sync",
        "module": "module",
        "function": "main",
        "functions": ["main", "double", "scale"],
    }


def test_reset_starts_a_stateful_model_afresh(backend):
    model = backend.load(ACCUMULATOR)
    direct = Direct(ACCUMULATOR)
    x = np.array([1.0, -2.0, 0.5, 4.0], np.float32)
    outs = [model.run([tensor(x)])[0].data for _ in range(3)]
    assert outs == [direct(x)[0].tobytes() for _ in range(3)]
    assert array(model.run([tensor(x)])[0]).tolist() == (4 * x).tolist()
    model.reset()
    assert model.run([tensor(x)])[0].data == x.tobytes()


def test_closed_model_refuses_to_run(backend):
    model = backend.load(MLP)
    model.close()
    with pytest.raises(DeviceError) as e:
        model.run([tensor(np.zeros((1, 16), np.float32))])
    assert e.value.code == E_NO_MODEL


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, words",
    [
        (b"this is not a model" * 10, "not a valid IREE module"),
        (b"", "not a valid IREE module"),
        (MLP_BYTES[:4000], "not a valid IREE module"),  # cut short
        (str(DATA / "dense_int8.tflite"), "not a valid IREE module"),  # another format
        (str(DATA / "no_such_model.vmfb"), "cannot read model file"),
    ],
    ids=["garbage", "empty", "truncated", "tflite", "missing-file"],
)
def test_bad_model_is_a_load_error(backend, source, words):
    with pytest.raises(DeviceError) as e:
        backend.load(source)
    assert e.value.code == E_MODEL_LOAD
    assert words in str(e.value)
    assert ".c:" not in str(e.value)  # IREE's source locations are trimmed


def test_wrong_dtype(backend):
    model = backend.load(MLP)
    with pytest.raises(DeviceError) as e:
        model.run([tensor(np.zeros((1, 16), np.float64))])
    assert e.value.code == E_BAD_DTYPE
    assert "input 0 (input): expected dtype float32, got float64" in str(e.value)


@pytest.mark.parametrize(
    "inputs, words",
    [
        ([np.zeros((1, 17), np.float32)], "expected shape [1, 16], got [1, 17]"),
        ([np.zeros((16,), np.float32)], "expected shape [1, 16], got [16]"),
        ([], "model takes 1 input, got 0"),
    ],
)
def test_wrong_shape(backend, inputs, words):
    model = backend.load(MLP)
    with pytest.raises(DeviceError) as e:
        model.run([tensor(a) for a in inputs])
    assert e.value.code == E_BAD_SHAPE
    assert words in str(e.value)


def test_dynamic_dimension_takes_any_size_but_fixed_ones_do_not(backend):
    model = backend.load(INT_ARITH)
    x, y = int_inputs(np.random.default_rng(0), 2)
    with pytest.raises(DeviceError) as e:
        model.run([tensor(x), tensor(y[:, :4])])
    assert e.value.code == E_BAD_SHAPE
    assert "input 1 (y): expected shape [-1, 8], got [2, 4]" in str(e.value)
    with pytest.raises(DeviceError) as e:
        model.run([Tensor("int8", (2, 8), x.tobytes()[:15]), tensor(y)])
    assert e.value.code == E_BAD_SHAPE and "needs 16 bytes, got 15" in str(e.value)


@pytest.mark.parametrize("rows", [(2, 3), (3, 2)])
def test_a_failing_model_assertion_is_an_inference_error(backend, rows):
    # Each input takes any batch, but this model asserts they are the same: only IREE can tell.
    model = backend.load(INT_ARITH)
    x, _ = int_inputs(np.random.default_rng(0), rows[0])
    _, y = int_inputs(np.random.default_rng(0), rows[1])
    with pytest.raises(DeviceError) as e:
        model.run([tensor(x), tensor(y)])
    assert e.value.code == E_INFER
    assert str(e.value) == (
        "iree inference failed: FAILED_PRECONDITION; x and y must have the same number of rows"
    )
    # The model stays usable.
    assert model.run([tensor(x), tensor(y[:1].repeat(rows[0], 0))])[0].shape == (rows[0], 8)


def test_committed_models_are_what_the_script_compiles():
    pytest.importorskip("iree.compiler")
    if importlib.metadata.version("iree-base-compiler") != "3.13.0":
        pytest.skip("the .vmfb files were compiled by iree-base-compiler 3.13.0")
    assert make_models.compile_mlir(make_models.mlp_mlir()) == MLP_BYTES


# --- through the CLI on sim-linux -----------------------------------------------------------


def test_deploy_and_infer_on_sim_linux_give_the_runtimes_bytes(tmp_path, backend):
    board = ["--board", "sim-linux"]
    up = cli_json("deploy", MLP, *board)
    assert up["name"] == "mlp_f32" and up["backend"] == "iree" and up["active"]
    assert up["io"] == backend.load(MLP).io_spec() and up["load_error"] is None
    x = float_input(np.random.default_rng(12), (1, 16))
    np.save(tmp_path / "x.npy", x)
    res = cli_json("infer", "-m", "mlp_f32", "-i", tmp_path / "x.npy", *board)
    assert res["backend"] == "iree"
    got = np.array(res["outputs"][0], np.float32)
    assert got.tobytes() == Direct(MLP)(x)[0].tobytes()


def test_info_model_details_and_stats_of_a_batch_on_one_agent(tmp_path):
    proc, port = serve_sim("sim-linux", "--listen", "tcp://127.0.0.1:0")
    try:
        info = cli_json("info", "--port", port)
        assert info["backends"]["iree"] == importlib.metadata.version("iree-base-runtime")
        assert info["formats"]["vmfb"] == ["iree"]
        if importlib.util.find_spec("ai_edge_litert") is not None:
            import ai_edge_litert

            assert info["backends"]["litert"] == ai_edge_litert.__version__
        up = cli_json("deploy", MATMUL, "--name", "mm", "--port", port)
        assert up["backend"] == "iree" and up["io"]["inputs"][0]["shape"] == [1, 256]
        details = cli_json("model", "info", "mm", "--port", port)["details"]
        assert details == {
            "driver": "local-sync",
            "module": "module",
            "function": "main",
            "functions": ["main"],
        }
        xs = float_input(np.random.default_rng(3), (4, 1, 256))
        np.save(tmp_path / "xs.npy", xs)
        res = cli_json("infer", "-m", "mm", "-i", tmp_path / "xs.npy", "--port", port)
        assert res["count"] == 4 and len(res["device_us"]) == 4
        got = np.array(res["outputs"][0], np.float32)
        direct = Direct(MATMUL)
        assert got.shape == (4, 1, 256)
        for k in range(4):
            assert got[k].tobytes() == direct(xs[k])[0].tobytes(), k
        stats = cli_json("stats", "--port", port)
        mm = stats["models"]["mm"]
        assert mm["count"] == 4
        assert 0 < mm["min_us"] <= mm["p50_us"] <= mm["max_us"]
        assert stats["errors"] == {}
    finally:
        proc.terminate()
        proc.wait(10)


def test_deploy_options_choose_the_function_and_driver(tmp_path):
    board = ["--board", "sim-linux"]
    up = cli_json(
        "deploy",
        INT_ARITH,
        "--name",
        "dbl",
        "-O",
        "function=double",
        "-O",
        "driver=local-task",
        *board,
    )
    assert up["load_error"] is None
    spec = up["io"]["inputs"]
    assert len(spec) == 1 and spec[0]["dtype"] == "int32" and spec[0]["shape"] == [4]
    details = cli_json("model", "info", "dbl", *board)["details"]
    assert details["function"] == "double" and details["driver"] == "local-task"
    x = np.array([1, -2, 3, 2**30], np.int32)
    np.save(tmp_path / "x.npy", x)
    res = cli_json("infer", "-m", "dbl", "-i", tmp_path / "x.npy", *board)
    assert np.array(res["outputs"][0], np.int32).tolist() == (x + x).tolist()


def test_a_malformed_deploy_option_is_one_line_and_uploads_nothing():
    result = subprocess.run(
        ["kpdev", "deploy", MLP, "-O", "driver", "--name", "bad", "--board", "sim-linux"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "KEY=VALUE" in result.stderr
    names = [m["name"] for m in cli_json("models", "--board", "sim-linux")["models"]]
    assert "bad" not in names
