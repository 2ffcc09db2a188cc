"""Knowledge Packs: build and inspect through the CLI and the library, and every refusal."""

import hashlib
import io
import json
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from support.cli import cli, cli_json
from support.paths import DATA

from kpdev.host import features
from kpdev.host.datasets import load_dataset
from kpdev.host.errors import UsageError
from kpdev.host.packs.build import ModelSpec, build_pack
from kpdev.host.packs.pack import SCHEMA, device_pack, read_pack, write_pack
from kpdev.host.runtime.modelgen import dense_int8
from kpdev.host.runtime.reference import load_reference

MODEL = DATA / "dense_int8.tflite"  # int8 [1, 16] (scale 1/128, zero point 0) -> int8 [1, 4]
CLASSES = ["Standing", "Running", "Walking", "Badminton"]
# 4 axes x 4 features = the 16 int8 values dense_int8.tflite takes.
PIPELINE = {
    "axes": ["ax", "ay", "az", "g"],
    "input_dtype": "float32",
    "rate_hz": 10,
    "window": {"size": 20, "stride": 20},
    "features": [{"gen": "mean"}, {"gen": "std"}, {"gen": "min"}, {"gen": "max"}],
    "scale": None,
    "output": {"dtype": "int8", "scale": 0.0078125, "zero_point": 0, "shape": [1, 16]},
}


def one_line(e):
    text = str(e.value)
    assert "\n" not in text
    return text


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A pipeline spec, a labelled window dataset and two child models on disk."""
    d = tmp_path_factory.mktemp("pack")
    (d / "pipeline.json").write_text(json.dumps(PIPELINE))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 160)
    x = rng.normal(0.0, 0.3, (160, 20, 4)) + (y[:, None, None] - 1.5) * 0.3
    np.savez(d / "motions.npz", x=x.astype(np.float32), y=y, classes=np.array(CLASSES))
    (d / "calm.tflite").write_bytes(dense_int8(outputs=2, seed=1))
    (d / "vigorous.tflite").write_bytes(dense_int8(outputs=2, seed=2))
    (d / "classes.txt").write_text("# output order\nStanding\nRunning\n\nWalking\nBadminton\n")
    return d


@pytest.fixture(scope="module")
def tree_pack(work):
    """A pack of a root and two children (built through the library)."""
    out = work / "tree.kp"
    manifest = build_pack(
        out,
        [
            ModelSpec(
                "main",
                MODEL,
                ["calm", "vigorous", "Walking", "Badminton"],
                results={0: "calm", 1: "vigorous"},
            ),
            ModelSpec("calm", work / "calm.tflite", ["Standing", "Walking"]),
            ModelSpec(
                "vigorous", work / "vigorous.tflite", ["Running", "Badminton"], parent="main"
            ),
        ],
        name="tree",
        pipeline=PIPELINE,
        dataset=load_dataset(str(work / "motions.npz")),
        test_fraction=0.25,
        seed=3,
        n_vectors=5,
    )
    return out, manifest


# -- build and inspect -------------------------------------------------------------------------
def test_build_and_inspect_round_trip_through_the_cli(work):
    out = work / "motions.kp"
    built = cli_json(
        "pack",
        "build",
        out,
        "--model",
        f"main={MODEL}",
        "--classes-file",
        work / "classes.txt",
        "--pipeline",
        work / "pipeline.json",
        "--dataset",
        work / "motions.npz",
        "--test-fraction",
        "0.25",
        "--seed",
        "1",
        "--version",
        "2.1.0",
        "--description",
        "demo",
    )
    assert built["name"] == "motions" and built["version"] == "2.1.0"
    assert built["schema"] == SCHEMA and built["description"] == "demo"
    (m,) = built["models"]
    assert m["id"] == "main" and m["format"] == "tflite" and m["file"] == "models/main.tflite"
    assert m["sha256"] == hashlib.sha256(MODEL.read_bytes()).hexdigest()
    assert m["bytes"] == MODEL.stat().st_size
    assert m["inputs"][0] == {
        "name": "input",
        "dtype": "int8",
        "shape": [1, 16],
        "scale": 0.0078125,
        "zero_point": 0,
    }
    assert m["outputs"][0]["shape"] == [1, 4]
    assert m["classes"] == CLASSES and m["class_index"]["Walking"] == 2
    assert m["source"] == "pipeline" and m["parent"] is None and m["results"] == {}
    assert built["test_vectors"] == 4
    metrics = built["metrics"]
    n_test = metrics["dataset"]["n_test"]
    assert n_test == 40 and metrics["dataset"]["n_train"] == 120
    assert sum(map(sum, metrics["confusion"])) == n_test
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert np.trace(metrics["confusion"]) == round(metrics["accuracy"] * n_test)
    cost = built["cost"]
    assert cost["model_bytes"] == m["bytes"]
    assert cost["pipeline"] == {"window_bytes": 20 * 4 * 4, "features": 16, "buffer_bytes": 848}
    arena = cost["models"]["main"]["arena_bytes"]
    assert arena > 0 and cost["ram_bytes"] == arena + 320 + 848
    assert cost["models"]["main"]["host_us"] > 0

    assert cli_json("pack", "inspect", out) == built
    text = cli("pack", "inspect", out).stdout
    for word in (
        "Knowledge Pack motions 2.1.0",
        "Badminton",
        "accuracy",
        "confusion",
        "cost",
        "mean, std, min, max",
        m["sha256"][:12],
    ):
        assert word in text, word


def test_vectors_hold_what_the_pipeline_and_the_reference_runtime_make(tree_pack):
    out, manifest = tree_pack
    pack = read_pack(out)
    vectors = pack.vectors()
    assert len(vectors) == 5
    refs = {m["id"]: load_reference("tflite", pack.model_bytes(m["id"])) for m in pack.models}
    for v in vectors:
        assert v["window"].shape == (20, 4) and v["window"].dtype == np.float32
        assert v["label"] in CLASSES
        np.testing.assert_array_equal(v["inputs"][0], features.transform(PIPELINE, v["window"]))
        for mid, ys in v["outputs"].items():
            (y,) = refs[mid].run(v["inputs"])
            np.testing.assert_array_equal(ys[0], y)
    assert set(vectors[0]["outputs"]) == {"main", "calm", "vigorous"}


def test_multi_model_pack_passes_validation_and_routes(tree_pack):
    out, manifest = tree_pack
    pack = read_pack(out)
    assert pack.root()["id"] == "main"
    assert [m["id"] for m in pack.children("main")] == ["calm", "vigorous"]
    assert pack.model("calm")["parent"] == "main"  # from the route alone
    assert pack.model("calm")["source"] == "parent"
    assert pack.model("main")["results"] == {"0": "calm", "1": "vigorous"}
    compact = device_pack(pack, {m["id"]: f"tree.{m['id']}" for m in pack.models})
    assert compact["root"] == "main" and compact["pipeline"] == PIPELINE
    assert compact["models"][0] == {
        "id": "main",
        "model": "tree.main",
        "sha256": pack.model("main")["sha256"],
        "classes": ["calm", "vigorous", "Walking", "Badminton"],
        "results": {0: "calm", 1: "vigorous"},
        "output": 0,
    }
    metrics = manifest["metrics"]
    # The pack answers with final classes only: the router's own "calm"/"vigorous" never.
    assert metrics["classes"] == CLASSES
    assert sum(map(sum, metrics["confusion"])) == metrics["dataset"]["n_test"]
    assert (
        manifest["cost"]["ram_bytes"]
        == max(c["arena_bytes"] for c in manifest["cost"]["models"].values()) + 320 + 848
    )
    with pytest.raises(UsageError, match="no model 'nope' in the pack"):
        pack.model("nope")


def test_multi_model_pack_through_the_cli(work):
    out = work / "cli_tree.kp"
    built = cli_json(
        "pack",
        "build",
        out,
        "-m",
        f"main={MODEL}",
        "-m",
        f"calm={work / 'calm.tflite'}",
        "-m",
        f"vigorous={work / 'vigorous.tflite'}",
        "-c",
        "main=calm,vigorous,Walking,Badminton",
        "-c",
        "calm=Standing,Walking",
        "-c",
        "vigorous=Running,Badminton",
        "--route",
        "main:calm=calm",
        "--route",
        "main:1=vigorous",
        "--parent",
        "vigorous=main",
        "--pipeline",
        work / "pipeline.json",
        "--vectors",
        "2",
        "--name",
        "tree2",
        "-O",
        "main:arena_size=16384",
        "--backend",
        "calm=tflite_micro",
    )
    models = {m["id"]: m for m in built["models"]}
    assert models["main"]["results"] == {"0": "calm", "1": "vigorous"}
    assert models["main"]["options"] == {"arena_size": 16384}
    assert models["calm"]["backend"] == "tflite_micro" and models["main"]["backend"] is None
    assert built["metrics"] is None and built["test_vectors"] == 2
    text = cli("pack", "inspect", out).stdout
    assert re.search(r"│ vigorous +│ tflite +│ default +│ +1\.9 KiB │ [0-9a-f]{12} │ main", text)
    assert re.search(r"│ +│ 1 +│ vigorous +│ vigorous +│", text)  # main's class 1 -> vigorous


def test_plain_model_without_pipeline_or_dataset(tmp_path):
    out = tmp_path / "plain.kp"
    built = cli_json("pack", "build", out, "-m", MODEL, "-c", "a,b,c,d", "--seed", "7")
    assert built["name"] == "plain" and built["pipeline"] is None
    assert built["models"][0]["source"] == "input" and built["metrics"] is None
    vectors = read_pack(out).vectors()
    assert len(vectors) == 4 and all(v["window"] is None and v["label"] is None for v in vectors)
    x = np.stack([v["inputs"][0] for v in vectors])
    assert x.dtype == np.int8 and x.shape == (4, 1, 16) and len(np.unique(x)) > 16
    cost = built["cost"]
    assert cost["pipeline"] is None and cost["ram_bytes"] == cost["models"]["main"]["arena_bytes"]
    # The same seed gives the same vectors.
    again = tmp_path / "again.kp"
    cli_json("pack", "build", again, "-m", MODEL, "-c", "a,b,c,d", "--seed", "7")
    assert [v["inputs"][0].tobytes() for v in read_pack(again).vectors()] == [
        v["inputs"][0].tobytes() for v in vectors
    ]
    assert "metrics: none" in cli("pack", "inspect", out).stdout


def test_float_dataset_is_quantized_into_an_int8_model(tmp_path):
    # digits_sample.npz: float pixels in [0, 1]; the Keras model takes int8 (scale 1/255).
    manifest = build_pack(
        tmp_path / "digits.kp",
        [ModelSpec("cnn", DATA / "keras_cnn_int8.tflite", [str(i) for i in range(10)])],
        name="digits",
        dataset=load_dataset(str(DATA / "digits_sample.npz")),
        test_fraction=0.5,
    )
    # 96 % on the 450 held-out digits; these 40 are among them.
    assert manifest["metrics"]["accuracy"] >= 0.85
    x = read_pack(tmp_path / "digits.kp").vectors()[0]["inputs"][0]
    assert x.dtype == np.int8 and x.shape == (1, 8, 8, 1)


def test_iree_and_akida_models(tmp_path):
    iree = build_pack(
        tmp_path / "iree.kp", [ModelSpec("mlp", DATA / "mlp_f32.vmfb", list("abcd"))], name="i"
    )
    assert iree["models"][0]["format"] == "vmfb"
    assert iree["models"][0]["inputs"][0]["dtype"] == "float32"
    assert iree["cost"]["ram_bytes"] is None  # IREE does not report an arena
    akida = build_pack(
        tmp_path / "akida.kp",
        [ModelSpec("fc", DATA / "akida_digits_fc.fbz", [str(i) for i in range(10)])],
        name="a",
    )
    spec = akida["models"][0]["inputs"][0]
    assert spec["dtype"] == "uint8" and spec["range"] == [0, 15]
    pack = read_pack(tmp_path / "akida.kp")
    for v in pack.vectors():
        assert v["inputs"][0].shape == (1, 8, 8, 1) and v["inputs"][0].max() <= 15
        assert v["outputs"]["fc"][0].shape == (1, 1, 1, 10)


def test_write_pack_is_deterministic_and_leaves_nothing_behind(tree_pack, tmp_path):
    pack = read_pack(tree_pack[0])
    files = {k: v for k, v in pack.files.items() if k != "manifest.json"}
    a = write_pack(tmp_path / "a.kp", pack.manifest, files)
    b = write_pack(tmp_path / "b.kp", pack.manifest, files)
    assert a.read_bytes() == b.read_bytes()
    names = zipfile.ZipFile(a).namelist()
    assert names[0] == "manifest.json" and names[1:] == sorted(names[1:])
    # A refused write keeps the old file and leaves no temporary file.
    bad = dict(pack.manifest, schema=SCHEMA + 1)
    with pytest.raises(UsageError):
        write_pack(a, bad, files)
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.kp", "b.kp"]


# -- refusals of read_pack ---------------------------------------------------------------------
def rewrite(src, dst, edit_manifest=None, edit_files=None):
    """Copy pack ``src`` to ``dst`` with its manifest and entries changed, bypassing checks."""
    with zipfile.ZipFile(src) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(files.pop("manifest.json"))
    if edit_manifest:
        edit_manifest(manifest)
    if edit_files:
        edit_files(files)
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for name, data in files.items():
            zf.writestr(name, data)
    return dst


def test_refuses_a_file_that_is_not_a_zip(tmp_path):
    path = tmp_path / "x.kp"
    path.write_text("not a pack")
    with pytest.raises(UsageError) as e:
        read_pack(path)
    assert one_line(e) == (
        f"{path} is not a Knowledge Pack (not a whole zip file: truncated, or another kind of "
        "file); rebuild it with kpdev pack build"
    )


def test_refuses_a_truncated_pack(tree_pack, tmp_path):
    data = tree_pack[0].read_bytes()
    path = tmp_path / "cut.kp"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError) as e:
        read_pack(path)
    assert "is not a Knowledge Pack (not a whole zip file: truncated" in one_line(e)


def test_refuses_a_model_whose_bytes_changed(tree_pack, tmp_path):
    def flip(files):
        model = bytearray(files["models/calm.tflite"])
        model[-20] ^= 0xFF
        files["models/calm.tflite"] = bytes(model)

    path = rewrite(tree_pack[0], tmp_path / "sha.kp", edit_files=flip)
    with pytest.raises(UsageError) as e:
        read_pack(path)
    assert one_line(e) == (
        f"{path}: model 'calm': sha256 mismatch (file altered or corrupt); rebuild the pack"
    )


def test_refuses_a_missing_model_file(tree_pack, tmp_path):
    path = rewrite(
        tree_pack[0], tmp_path / "gone.kp", edit_files=lambda f: f.pop("models/vigorous.tflite")
    )
    with pytest.raises(UsageError) as e:
        read_pack(path)
    assert "model 'vigorous': file models/vigorous.tflite is missing from the pack" in one_line(e)


def test_refuses_a_missing_test_vector_file(tree_pack, tmp_path):
    path = rewrite(
        tree_pack[0], tmp_path / "vec.kp", edit_files=lambda f: f.pop("vectors/0/x0.npy")
    )
    with pytest.raises(UsageError, match="test vector file vectors/0/x0.npy is missing"):
        read_pack(path)


def test_refuses_a_pack_from_a_newer_kpdev(tree_pack, tmp_path):
    path = rewrite(tree_pack[0], tmp_path / "new.kp", lambda m: m.update(schema=SCHEMA + 1))
    with pytest.raises(UsageError) as e:
        read_pack(path)
    assert one_line(e) == (
        f"{path} was made by a newer kpdev (pack schema {SCHEMA + 1}, this kpdev reads up to "
        f"{SCHEMA}); upgrade kpdev"
    )


def test_refuses_a_dangling_results_target(tree_pack, tmp_path):
    def dangle(m):
        m["models"][0]["results"]["1"] = "missing"

    path = rewrite(tree_pack[0], tmp_path / "dangle.kp", dangle)
    with pytest.raises(UsageError) as e:
        read_pack(path)
    assert "model 'main': results 1 -> 'missing', which is not a model of the pack" in one_line(e)


def test_refuses_two_roots(tree_pack, tmp_path):
    def orphan(m):
        m["models"][0]["results"].pop("1")
        m["models"][2]["parent"] = None

    path = rewrite(tree_pack[0], tmp_path / "roots.kp", orphan)
    with pytest.raises(UsageError) as e:
        read_pack(path)
    assert "exactly one root model (one without a parent), it has 2: main, vigorous" in one_line(e)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.pop("name"), 'top level has no "name"'),
        (lambda m: m.update(name="bad name"), "name 'bad name' is not 1-24"),
        (lambda m: m["models"][1].update(parent="vigorous"), "routes no class to it|parent of"),
        (lambda m: m["models"][1]["class_index"].update(Standing=1), "not the reverse of classes"),
        (
            lambda m: m["models"][1].update(
                classes=["a", "b", "c"], class_index=dict(a=0, b=1, c=2)
            ),
            "3 classes but output 0 has 2",
        ),
        (lambda m: m["models"][1].update(bytes="12"), '"bytes" must be an integer'),
        (lambda m: m["models"][1].update(format="onnx"), "format 'onnx' is not one of"),
        (lambda m: m["models"][0]["results"].update({"9": "calm"}), "not a class index 0..3"),
        (lambda m: m["pipeline"].update(window={"size": 0, "stride": 1}), "pipeline: window"),
    ],
)
def test_refuses_a_bad_manifest(tree_pack, tmp_path, edit, message):
    path = rewrite(tree_pack[0], tmp_path / "bad.kp", edit)
    with pytest.raises(UsageError, match=message) as e:
        read_pack(path)
    assert one_line(e).endswith("rebuild it with kpdev pack build")


def test_refuses_models_that_route_in_a_cycle(tree_pack, tmp_path):
    def cycle(m):
        m["models"][1]["results"] = {"0": "vigorous"}
        m["models"][2]["parent"] = "calm"
        m["models"][0]["results"] = {"0": "calm"}
        m["models"][0]["parent"] = "vigorous"
        m["models"][2]["results"] = {"0": "main"}

    path = rewrite(tree_pack[0], tmp_path / "cycle.kp", cycle)
    with pytest.raises(UsageError, match="exactly one root model .*it has 0"):
        read_pack(path)


def test_a_missing_runtime_names_the_extra_to_install():
    # A host without IREE's runtime: its import fails, as when the package is not installed.
    code = (
        "import sys; sys.modules['iree'] = None; sys.modules['iree.runtime'] = None\n"
        "from kpdev.host.runtime.reference import load_reference\n"
        "from kpdev.host.errors import UsageError\n"
        "try:\n"
        f"    load_reference('vmfb', open({str(DATA / 'mlp_f32.vmfb')!r}, 'rb').read())\n"
        "except UsageError as e:\n"
        "    print(e)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout == "no runtime for vmfb models on this host; pip install 'kpdev[iree]'\n"


def test_inspect_refusal_is_one_line_on_stderr(tree_pack, tmp_path):
    path = rewrite(tree_pack[0], tmp_path / "old.kp", lambda m: m.update(schema=SCHEMA + 1))
    proc = subprocess.run(
        [sys.executable, "-m", "kpdev.host.cli", "pack", "inspect", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Under --json the refusal is also one error object on stdout.
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"]["code"] == "usage"
    assert (
        proc.stderr == f"kpdev: error: {path} was made by a newer kpdev (pack schema 2, "
        f"this kpdev reads up to 1); upgrade kpdev\n"
    )


# -- refusals of pack build --------------------------------------------------------------------
def test_build_refuses_a_class_count_that_does_not_match_the_output(tmp_path):
    with pytest.raises(UsageError) as e:
        cli("pack", "build", tmp_path / "x.kp", "-m", MODEL, "-c", "a,b,c")
    assert one_line(e) == (
        "model 'main' gives 4 values in output 0 (int8 [1, 4] (scale 0.00390625, zero point "
        "-128)) but 3 classes were given (a, b, c); give one class label per output value"
    )
    assert not (tmp_path / "x.kp").exists()


def test_build_refuses_a_pipeline_that_does_not_make_the_model_input(work, tmp_path):
    spec = dict(PIPELINE, output={"dtype": "int8", "scale": 0.05, "zero_point": 0})
    with pytest.raises(UsageError) as e:
        build_pack(tmp_path / "x.kp", [ModelSpec("main", MODEL, CLASSES)], name="x", pipeline=spec)
    assert one_line(e) == (
        "root model 'main' takes int8 [1, 16] (scale 0.0078125, zero point 0) but the pipeline "
        "makes int8 [1, 16] (scale 0.05, zero point 0); make the pipeline's output (dtype, "
        "shape, scale, zero_point) match the model input"
    )
    float_spec = dict(PIPELINE, features=[{"gen": "mean"}], output={"dtype": "float32"})
    path = tmp_path / "float.json"
    path.write_text(json.dumps(float_spec))
    with pytest.raises(UsageError, match=r"the pipeline makes float32 \[1, 4\]"):
        cli(
            "pack",
            "build",
            tmp_path / "x.kp",
            "-m",
            MODEL,
            "-c",
            ",".join(CLASSES),
            "--pipeline",
            path,
        )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--route", "main:0=ghost"], "to 'ghost', which is not a model of the pack"),
        (["--route", "main:zzz=child"], "'zzz' is neither a class index nor a class of 'main'"),
        (["--route", "main:7=child"], "routes class 7, but its classes are 0..3"),
        (["--route", "main:0=child", "--parent", "child=child"], "but 'child' routes no class"),
        ([], "exactly one root model.*here main, child are roots"),
        (["--route", "main:0=child", "--route", "child:1=main"], "in a cycle"),
        (["--route", "main:0=child", "--backend", "main=iree"], "iree does not load tflite"),
        (["--route", "main:0=child", "-O", "main:arena_size=5"], "arena_size must be an int"),
    ],
)
def test_build_refuses_a_bad_model_graph_or_option(tmp_path, args, message):
    child = tmp_path / "child.tflite"
    child.write_bytes(dense_int8(outputs=2, seed=5))
    base = ["-m", f"main={MODEL}", "-m", f"child={child}", "-c", "main=a,b,c,d", "-c", "child=x,y"]
    with pytest.raises(UsageError, match=message) as e:
        cli("pack", "build", tmp_path / "x.kp", *base, *args)
    one_line(e)
    assert not (tmp_path / "x.kp").exists()


def test_build_refuses_unusable_inputs(work, tmp_path):
    odd = tmp_path / "model.onnx"
    odd.write_bytes(b"\0" * 8)
    with pytest.raises(UsageError, match=r"model\.onnx has an unknown model format"):
        cli("pack", "build", tmp_path / "x.kp", "-m", odd, "-c", "a")
    with pytest.raises(UsageError, match="no class labels for model 'main'"):
        cli("pack", "build", tmp_path / "x.kp", "-m", MODEL)
    with pytest.raises(UsageError, match="its stem is not a pack name"):
        cli("pack", "build", tmp_path / "bad name.kp", "-m", MODEL, "-c", "a,b,c,d")
    # Float pixels cannot feed akida's 4-bit input: it has no scale to quantize them with.
    with pytest.raises(UsageError, match="without a scale to quantize them with"):
        cli(
            "pack",
            "build",
            tmp_path / "x.kp",
            "-m",
            DATA / "akida_digits_fc.fbz",
            "-c",
            ",".join(map(str, range(10))),
            "--dataset",
            DATA / "digits_sample.npz",
        )
    # The dataset's classes must be answers of the pack.
    with pytest.raises(UsageError, match="class 'Standing' is not an answer of the pack"):
        cli(
            "pack",
            "build",
            tmp_path / "x.kp",
            "-m",
            MODEL,
            "-c",
            "a,b,c,d",
            "--pipeline",
            work / "pipeline.json",
            "--dataset",
            work / "motions.npz",
        )


def test_npy_vectors_never_unpickle(tree_pack, tmp_path):
    def pickled(files):
        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        files["vectors/0/x0.npy"] = buf.getvalue()

    pack = read_pack(rewrite(tree_pack[0], tmp_path / "pickle.kp", edit_files=pickled))
    with pytest.raises(UsageError, match="vectors/0/x0.npy is not a .npy array"):
        pack.vectors()


# -- deploy ------------------------------------------------------------------------------------
def test_a_pack_model_the_device_cannot_load_replaces_nothing(tree_pack, agents):
    from kpdev.host.boards.catalog import get_board
    from kpdev.host.packs.deploy import deploy_pack
    from kpdev.protocol import ops
    from kpdev.protocol.errors import DeviceError

    # sim-mcu-64k has the int8 interpreter but not the heap to load a model with it.
    client = agents.start("sim-mcu-64k").client()
    pack = read_pack(tree_pack[0])
    old = dense_int8(outputs=2, seed=9)
    for mid in ("main", "calm", "vigorous"):  # an older version's models under its names
        client.upload("tree." + mid, old, "tflite", activate=False)
    before = client.models(), client.info()["storage"]["used"]
    with pytest.raises(DeviceError) as e:
        deploy_pack(client, pack, get_board("sim-mcu-64k"))
    assert (client.models(), client.info()["storage"]["used"]) == before
    assert e.value.code == ops.E_MODEL_LOAD
    assert "nothing was stored, the previous pack stays active" in str(e.value)
