"""Knowledge Packs through the CLI on the simulated boards, as a user runs them: deploy, the
refusals that come before anything is sent, routing through a model tree, eval, recognize,
profile and report.

The BasicMotions packs are built once from the committed demo models (host/demo); every number
the device gives is checked against what the host reference runtime recorded in the pack.
"""

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from support.cli import PNG, cli, cli_json, kpdev, one_line_error
from support.paths import DATA, DEMO

from kpdev.host.evaluation.metrics import read_measurements
from kpdev.host.runtime.modelgen import dense_int8

pytest.importorskip("tflite_micro")

DATASET = DEMO / "basicmotions.npz"
WALK = DEMO / "basicmotions_walk.npz"
CLASSES = "Standing,Running,Walking,Badminton"


def store(board):
    """What a board holds: its model list and a snapshot of its model storage files."""
    models = cli_json("models", "--board", board)["models"]
    root = Path(os.environ["KPDEV_HOME"]) / "boards" / board / "models"
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            files[str(path.relative_to(root))] = (st.st_ino, st.st_mtime_ns, digest)
    return models, files


def build(out, *args):
    """``kpdev pack build OUT ARGS``; returns the manifest as ``kpdev pack inspect`` shows it."""
    cli("pack", "build", out, *args)
    return cli_json("pack", "inspect", out)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("packcli")


@pytest.fixture(scope="module")
def flat(work):
    """The BasicMotions pack: one int8 MLP behind the fitted feature pipeline."""
    path = work / "bm.kp"
    manifest = build(
        path,
        "-m",
        f"main={DEMO / 'basicmotions_mlp.tflite'}",
        "-c",
        CLASSES,
        "--pipeline",
        DEMO / "basicmotions_pipeline.yml",
        "--dataset",
        DATASET,
        "--name",
        "basicmotions",
    )
    return path, manifest


@pytest.fixture(scope="module")
def tree(work):
    """The BasicMotions tree: a calm/vigorous router, then one two-class model per branch."""
    path = work / "tree.kp"
    manifest = build(
        path,
        "-m",
        f"main={DEMO / 'basicmotions_router.tflite'}",
        "-m",
        f"calm={DEMO / 'basicmotions_calm.tflite'}",
        "-m",
        f"vigorous={DEMO / 'basicmotions_vigorous.tflite'}",
        "-c",
        "main=calm,vigorous",
        "-c",
        "calm=Standing,Walking",
        "-c",
        "vigorous=Running,Badminton",
        "--route",
        "main:0=calm",
        "--route",
        "main:vigorous=vigorous",
        "--pipeline",
        DEMO / "basicmotions_pipeline.yml",
        "--dataset",
        DATASET,
        "--name",
        "bmtree",
    )
    return path, manifest


@pytest.fixture(scope="module")
def flat_evals(flat, work):
    """``kpdev eval`` of the flat pack on sim-mcu and sim-linux: {board: (stdout doc, file)}."""
    path, _ = flat
    runs = {}
    for board in ("sim-mcu", "sim-linux"):
        out = work / f"eval-{board}.json"
        label = f"{board} run"
        doc = cli_json(
            "eval", path, "--board", board, "--dataset", DATASET, "-o", out, "--label", label
        )  # fmt: skip
        runs[board] = (doc, out)
    return runs


@pytest.fixture(scope="module")
def profile(flat, work):
    """``kpdev profile`` of the flat pack on sim-mcu: (stdout doc, the file -o wrote)."""
    out = work / "profile.json"
    doc = cli_json("profile", flat[0], "--board", "sim-mcu", "-o", out, "--runs", "3")
    return doc, out


# -- deploy ----------------------------------------------------------------------------------


def test_deploy_checks_every_vector_and_a_second_deploy_sends_no_model(flat):
    path, manifest = flat
    plan = cli_json("deploy", path, "--board", "sim-mcu")
    assert plan["active"] and not plan["dry_run"]
    assert [m["stored"] for m in plan["models"]] == [False]
    checks = {(v["vector"], v["check"]) for v in plan["vectors"]}
    n = manifest["test_vectors"]  # pack inspect --json gives their count
    assert n == 4
    assert checks == {(i, c) for i in range(n) for c in ("model main", "pipeline")}
    assert all(v["match"] for v in plan["vectors"]), plan["vectors"]
    # The device's pipeline picked the class the vector was labelled with, where the host did.
    assert all(v["class"] for v in plan["vectors"] if v["check"] == "pipeline")
    listed = cli_json("models", "--board", "sim-mcu")["models"]
    main = next(m for m in listed if m["name"] == "basicmotions.main")
    assert main["sha256"] == manifest["models"][0]["sha256"]

    before = store("sim-mcu")
    again = cli_json("deploy", path, "--board", "sim-mcu")
    assert [m["stored"] for m in again["models"]] == [True]
    assert again["active"] and all(v["match"] for v in again["vectors"])
    assert store("sim-mcu") == before, "the second deploy wrote to the model store"


# -- refusals before anything is sent ---------------------------------------------------------


def _not_a_zip(work, flat):
    bad = work / "x.kp"
    bad.write_text("this is not a zip file\n")
    return bad


def _truncated(work, flat):
    bad = work / "half.kp"
    data = flat[0].read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    return bad


def _altered_model(work, flat):
    # The manifest still gives the model's original sha256: only the entry's bytes change.
    bad = work / "altered.kp"
    with zipfile.ZipFile(flat[0]) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "models/main.tflite":
                data = bytearray(data)
                data[len(data) // 2] ^= 0x01
                data = bytes(data)
            dst.writestr(info, data)
    return bad


def _too_big(work, flat):
    model = work / "big.tflite"
    model.write_bytes(dense_int8(inputs=16, hidden=[512, 512], outputs=4))
    assert model.stat().st_size > 256 * 1024  # sim-mcu-64k's storage quota
    bad = work / "big.kp"
    cli("pack", "build", bad, "-m", model, "-c", "a,b,c,d")
    return bad


def _vmfb(work, flat):
    pytest.importorskip("iree.runtime")
    bad = work / "iree.kp"
    cli("pack", "build", bad, "-m", f"main={DATA / 'mlp_f32.vmfb'}", "-c", "a,b,c,d")
    return bad


@pytest.mark.parametrize(
    "make, board, words",
    [
        (_not_a_zip, "sim-mcu", ["x.kp", "not a Knowledge Pack", "not a whole zip file"]),
        (_truncated, "sim-mcu", ["half.kp", "not a Knowledge Pack"]),
        (_altered_model, "sim-mcu", ["altered.kp", "model 'main'", "sha256 mismatch"]),
        (
            _too_big,
            "sim-mcu-64k",
            ["does not fit sim-mcu-64k", "storage", "boards that would take it:", "sim-mcu,"],
        ),
        (
            _vmfb,
            "sim-mcu",
            [".vmfb", "does not fit sim-mcu", "boards that would take it: sim-linux"],
        ),
    ],
    ids=["not-a-zip", "truncated", "altered-model", "too-big-for-64k", "vmfb-on-mcu"],
)
def test_a_pack_the_board_cannot_take_is_refused_before_anything_is_sent(
    flat, work, make, board, words
):
    bad = make(work, flat)
    before = store(board)
    line = one_line_error(kpdev("deploy", bad, "--board", board), 2)
    for w in words:
        assert w in line, line
    assert store(board) == before


# -- a model tree on the device --------------------------------------------------------------


def test_the_tree_pack_routes_on_the_device_exactly_as_on_the_host(tree, work):
    path, manifest = tree
    plan = cli_json("deploy", path, "--board", "sim-mcu")
    checks = {v["check"] for v in plan["vectors"]}
    assert checks == {"model main", "model calm", "model vigorous", "pipeline"}
    assert all(v["match"] for v in plan["vectors"]), plan["vectors"]

    doc = cli_json(
        "eval", path, "--board", "sim-mcu", "--dataset", DATASET, "-o", work / "tree.json"
    )
    got, want = doc["results"]["classification"], manifest["metrics"]
    assert got["n"] == want["n"] == 40
    assert got["accuracy"] == want["accuracy"] >= 0.9
    # The answers are the leaves' classes, not the router's: same table as the host's.
    assert got["classes"] == want["classes"]
    assert got["confusion"] == want["confusion"]
    assert got["macro_f1"] == pytest.approx(want["macro_f1"])

    routes = {m["id"]: m["results"] for m in manifest["models"]}
    labels = {m["id"]: m["classes"] for m in manifest["models"]}
    rec = cli_json("recognize", path, "--board", "sim-mcu", "--signal", WALK)
    assert rec["platform"] == "device" and len(rec["windows"]) == 8
    children = set()
    for w in rec["windows"]:
        (root, k), (child, c) = w["path"]
        assert root == "main" and child == routes["main"][str(k)]
        assert w["class"] == labels[child][c]
        children.add(child)
    assert children == {"calm", "vigorous"}, "the recording takes both branches"


# -- eval, recognize, profile, report --------------------------------------------------------


def test_eval_on_sim_mcu_and_sim_linux_matches_the_host_accuracy(flat, flat_evals):
    _, manifest = flat
    window_bytes = manifest["cost"]["pipeline"]["window_bytes"]
    assert window_bytes == 100 * 6 * 2  # 100 int16 samples of 6 axes
    predicted = {}
    for board, (doc, path) in flat_evals.items():
        r = doc["results"]
        assert doc["board"]["name"] == board and doc["pack"]["name"] == "basicmotions"
        assert r["classification"]["n"] == manifest["metrics"]["n"] == 40
        assert r["classification"]["accuracy"] == manifest["metrics"]["accuracy"]
        assert r["classification"]["accuracy"] >= 0.9
        assert r["classification"]["confusion"] == manifest["metrics"]["confusion"]
        written = read_measurements(path)
        assert written["results"]["classification"] == r["classification"]
        assert doc["path"] == str(path)
        assert r["latency_us"]["n"] == 40 and r["latency_us"]["p50"] > 0
        assert r["link"]["per_inference"] > window_bytes
        predicted[board] = r["predicted"]
    assert predicted["sim-mcu"] == predicted["sim-linux"]
    energy = flat_evals["sim-mcu"][0]["results"]["energy"]
    assert energy["estimated"] is True and energy["uj_per_inference"] > 0


def test_eval_records_throughput_memory_footprint_and_the_host(flat, flat_evals):
    _, manifest = flat
    for board, (doc, _) in flat_evals.items():
        r = doc["results"]
        assert doc["label"] == f"{board} run"
        samples = r["latency_samples_us"]
        tp = r["throughput"]
        assert tp["n"] == len(samples) == 40
        assert tp["device_per_s"] == pytest.approx(len(samples) / (sum(samples) / 1e6))
        assert tp["wall_per_s"] == pytest.approx(len(samples) / r["wall_s"])
        assert tp["wall_per_s"] < tp["device_per_s"]  # the wall clock also counts the link
        foot = r["footprint"]
        assert foot["cost"] == manifest["cost"]
        assert foot["model_bytes"] == manifest["cost"]["model_bytes"]
        catalog = {"sim-mcu": (256, 1024), "sim-linux": (1048576, 65536)}[board]
        assert (foot["ram_bytes"], foot["storage_bytes"]) == tuple(k * 1024 for k in catalog)
        memory = r["device_memory"]
        assert memory["storage"]["used"] >= manifest["cost"]["model_bytes"]
        if board == "sim-mcu":
            assert 0 < memory["heap_live_peak"] <= memory["heap_peak"] <= memory["heap_total"]
        else:
            assert 0 < memory["rss"] <= memory["rss_peak"]
        (stored,) = r["models"]
        assert stored == "basicmotions.main" and r["models"][stored]["size"] == 2152
        host = r["host"]
        assert host["cpus"] == os.cpu_count() and host["python"] and host["name"]
        assert len(host["load_start"]) == len(host["load_end"]) == 3


def test_recognize_on_the_device_and_on_the_host_agree_window_by_window(flat):
    path, _ = flat
    signal = np.load(WALK)["signal"]
    windows = (len(signal) - 100) // 100 + 1
    device = cli_json("recognize", path, "--board", "sim-mcu", "--signal", WALK)
    host = cli_json("recognize", path, "--platform", "host", "--signal", WALK)
    assert (device["platform"], host["platform"]) == ("device", "host")
    assert len(device["windows"]) == len(host["windows"]) == windows
    assert [w["class"] for w in device["windows"]] == [w["class"] for w in host["windows"]]
    assert [w["path"] for w in device["windows"]] == [w["path"] for w in host["windows"]]
    assert device["classification"]["accuracy"] == host["classification"]["accuracy"]


def test_recognize_out_goes_into_a_report(flat, work):
    out = work / "recognized.json"
    doc = cli_json("recognize", flat[0], "--board", "sim-mcu", "--signal", WALK, "-o", out)
    assert json.loads(out.read_text()) == doc and doc["kind"] == "kpdev-recognition"
    made = cli_json("report", out, "-o", work / "rec-report", "--label", "walk")
    md = Path(made["markdown"]).read_text()
    assert "## Recognition: walk" in md
    assert f"accuracy {doc['classification']['accuracy']:.4f}" in md
    for w in doc["windows"]:
        assert f"| {w['window']} | {w['start']:,} | {w['class']} | {w['score']:.3f} |" in md
    assert "the device's own time per window" in md
    assert any(Path(f).name == "walk-timeline.png" for f in made["figures"])


def test_profile_times_unpacking_each_feature_generator_then_scale_quantize_and_the_model(
    flat, profile
):
    _, manifest = flat
    doc, path = profile
    gens = [f["gen"] for f in manifest["pipeline"]["features"]]
    assert len(gens) == 8
    names = [s["name"] for s in doc["stages"]]
    want = [f"feature:{g}" for g in gens] + ["scale", "quantize", "model:main"]
    assert names == ["unpack"] + want
    # each stage timed within the whole classification: together no more than the total
    assert all(s["us"] >= 0 for s in doc["stages"]) and doc["total_us"] > 0
    assert sum(s["us"] for s in doc["stages"]) <= doc["total_us"] + 1e-6
    assert doc["board"] == "sim-mcu" and doc["runs"] == 3
    assert json.loads(path.read_text()) == doc


def test_report_compares_two_boards_with_figures(flat_evals, profile, work):
    out = work / "report"
    made = cli_json(
        "report",
        flat_evals["sim-mcu"][1],
        flat_evals["sim-linux"][1],
        "--profile",
        profile[1],
        "-o",
        out,
    )
    assert Path(made["markdown"]) == out / "report.md"
    assert Path(made["html"]) == out / "report.html"
    md = (out / "report.md").read_text()
    assert "sim-mcu" in md and "sim-linux" in md
    assert (out / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    figures = [Path(f) for f in made["figures"]]
    assert any("comparison" in f.name for f in figures)
    assert any("profile" in f.name for f in figures)
    assert sum("confusion" in f.name for f in figures) == 2
    # The labels eval stored head the runs and the comparison's columns.
    assert "## Run: sim-mcu run\n" in md and "## Run: sim-linux run\n" in md
    assert "| figure | sim-mcu run | sim-linux run |" in md
    # The profile's other row is in the table and the shares add up to 100 %.
    assert "| other |" in md and "| total |" in md and "| 100.0 % |" in md
    for f in figures:
        assert f.parent == out and f.read_bytes()[:8] == PNG, f


# -- a bare model file -----------------------------------------------------------------------


def test_eval_of_a_bare_akida_model_on_held_out_digits(work):
    pytest.importorskip("akida")
    datasets = pytest.importorskip("sklearn.datasets")
    selection = pytest.importorskip("sklearn.model_selection")
    # The model takes 4-bit pixels (0..16 times 15/16, rounded), uint8 [-1, 8, 8, 1]; the fold
    # is the 25 % split tests/data/make_akida_models.py held out from its fit.
    digits = datasets.load_digits()
    index = np.arange(len(digits.target))
    _, held_out = selection.train_test_split(
        index, test_size=0.25, random_state=0, stratify=digits.target
    )
    fold = np.zeros(len(index), np.int8)
    fold[held_out] = 1
    x = np.round(digits.images.astype(np.float64) * 15 / 16).astype(np.uint8)[..., None]
    data = work / "digits4.npz"
    np.savez(data, x=x, y=digits.target, classes=np.array([str(d) for d in range(10)]), fold=fold)

    model = DATA / "akida_digits_fc.fbz"
    out = work / "akida.json"
    doc = cli_json("eval", model, "--board", "sim-linux", "--dataset", data, "-o", out)
    assert doc["model"]["name"] == "akida_digits_fc" and doc["pack"] is None
    cl = doc["results"]["classification"]
    assert cl["n"] == 450
    assert cl["accuracy"] >= 0.95  # tests/data/README.md: 95.6 % on these 450 digits
    assert read_measurements(out)["results"]["classification"]["accuracy"] == cl["accuracy"]

    # Raw float pixels do not fit the 4-bit input: refused on the host, in one line.
    line = one_line_error(
        kpdev("eval", model, "-b", "sim-linux", "-d", "sklearn:digits", "-o", work / "no.json"), 2
    )
    assert "float32" in line and "uint8 [-1, 8, 8, 1]" in line


def test_recognize_leaves_out_windows_of_classes_the_pack_does_not_know(flat, work):
    # As kpdev eval does with samples: the Badminton windows, relabelled Jumping, are counted
    # and left out of the score instead of being scored as errors.
    walk = dict(np.load(WALK))
    classes = [str(c) for c in walk["classes"]]
    jumping = classes.index("Badminton")
    walk["classes"] = np.array(classes[:jumping] + ["Jumping"] + classes[jumping + 1 :])
    relabelled = work / "walk-jumping.npz"
    np.savez(relabelled, **walk)
    before = cli_json("recognize", flat[0], "--platform", "host", "--signal", WALK)
    after = cli_json("recognize", flat[0], "--platform", "host", "--signal", relabelled)
    unknown = [w for w in before["windows"] if w["label"] == "Badminton"]
    known = [w for w in before["windows"] if w["label"] != "Badminton"]
    assert unknown and known
    assert after["skipped"] == {"Jumping": len(unknown)} and before["skipped"] is None
    right = sum(w["class"] == w["label"] for w in known)
    assert after["classification"]["n"] == len(known)
    assert after["classification"]["accuracy"] == pytest.approx(right / len(known))
    text = cli("recognize", flat[0], "--platform", "host", "--signal", relabelled).output
    assert f"{len(unknown)} windows left out of the score" in text and "Jumping" in text
