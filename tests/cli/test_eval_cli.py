"""``kpdev eval`` on sim-linux: samples of classes a pack does not know are left out and
counted, and inputs that saturate a model's input quantization are counted and can be scaled."""

import json

import numpy as np
import pytest
from support.cli import kpdev, one_line_error
from support.paths import DATA

from kpdev.host.datasets import load_dataset

pytest.importorskip("tflite_micro")

DEMO = DATA.parent.parent / "host" / "demo"


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval") / "bm.kp"
    r = kpdev(
        "pack", "build", path, "-m", f"main={DEMO / 'basicmotions_mlp.tflite'}",
        "-c", "Standing,Running,Walking,Badminton",
        "--pipeline", DEMO / "basicmotions_pipeline.yml",
        "--dataset", DEMO / "basicmotions.npz", "--name", "basicmotions",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return path


def with_classes(tmp_path, names):
    # The demo data with its classes renamed (a pack knows Standing, Running, Walking, Badminton).
    d = dict(np.load(DEMO / "basicmotions.npz"))
    d["classes"] = np.array(names)
    path = tmp_path / "data.npz"
    np.savez(path, **d)
    return path


def test_classes_the_pack_does_not_know_are_left_out_and_counted(pack, tmp_path):
    data = with_classes(tmp_path, ["Standing", "Running", "Jumping", "Badminton"])
    out = tmp_path / "run.json"
    r = kpdev("eval", pack, "--board", "sim-linux", "-d", data, "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    test = load_dataset(str(data), window=(100, 100)).split(None, 0)[1]
    jumping = int(np.count_nonzero(test.y == 2))
    assert jumping > 0
    assert doc["results"]["skipped"] == {"Jumping": jumping}
    assert doc["results"]["classification"]["n"] == len(test) - jumping
    assert "Jumping" not in doc["results"]["classification"]["macro_f1_classes"]
    assert f"{jumping} test samples left out" in r.stderr and "Jumping" in r.stderr

    none = with_classes(tmp_path, ["Jumping", "Sitting", "Lying", "Cycling"])
    r = kpdev("eval", pack, "--board", "sim-linux", "-d", none, "-o", tmp_path / "x.json")
    assert "none of the test samples' classes" in one_line_error(r, 2)
    assert not (tmp_path / "x.json").exists()


def test_saturated_inputs_are_counted_and_input_scale_fixes_them(tmp_path):
    model = DATA / "keras_cnn_int8.tflite"
    args = ("eval", model, "--board", "sim-linux", "-d", "sklearn:digits", "--limit", "100")
    r = kpdev(*args, "-o", tmp_path / "raw.json")
    assert r.returncode == 0, r.stderr
    raw = json.loads((tmp_path / "raw.json").read_text())["results"]
    # The model's input: int8, scale 1/255, zero point -128, so a pixel saturates above 1.0;
    # digits' pixels are whole numbers 0..16.
    test = load_dataset("sklearn:digits").split(None, 0)[1]
    want = int(np.count_nonzero(test.x[:100] >= 2))
    assert raw["input_quantization"]["saturated"] == want > 0
    assert raw["input_quantization"]["values"] == test.x[:100].size
    assert f"warning: {want} of {test.x[:100].size} input values saturate" in r.stderr

    r = kpdev(*args, "--input-scale", "1/16", "-o", tmp_path / "scaled.json")
    assert r.returncode == 0, r.stderr
    scaled = json.loads((tmp_path / "scaled.json").read_text())["results"]
    assert scaled["input_quantization"]["saturated"] == 0
    assert scaled["input_quantization"]["input_scale"] == 1 / 16
    assert "saturate" not in r.stderr
    assert scaled["classification"]["accuracy"] > 0.9 > raw["classification"]["accuracy"]

    r = kpdev(*args, "--input-scale", "0/4", "-o", tmp_path / "bad.json")
    assert "--input-scale '0/4'" in one_line_error(r, 2)


def test_a_bare_model_is_refused_unless_its_outputs_match_the_dataset_classes(tmp_path):
    # keras_cnn_int8 scores the 10 digits; a dataset of 5 digits leaves outputs 5..9 unnamed.
    model = DATA / "keras_cnn_int8.tflite"
    digits = load_dataset("sklearn:digits")
    few = digits.y < 5
    data = tmp_path / "five.npz"
    np.savez(data, x=digits.x[few], y=digits.y[few], classes=np.array(digits.classes[:5]))
    r = kpdev("eval", model, "-b", "sim-linux", "-d", data, "-o", tmp_path / "no.json")
    line = one_line_error(r, 2)
    assert "10 outputs" in line and "5 classes" in line and "kpdev pack build" in line
    assert not (tmp_path / "no.json").exists()

    # As many outputs as classes: output k is taken as the dataset's k-th class, and it says so.
    args = ("eval", model, "-b", "sim-linux", "-d", "sklearn:digits", "--limit", "20")
    r = kpdev(*args, "--input-scale", "1/16", "-o", tmp_path / "run.json", "--json")
    assert r.returncode == 0, r.stderr
    order = json.loads(r.stdout)["results"]["class_order"]
    assert order == {"assumed": True, "from": "dataset", "classes": list(digits.classes)}
    assert "output k is taken as class k of the dataset" in " ".join(r.stderr.split())
    r = kpdev("report", tmp_path / "run.json", "-o", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| class order | assumed: the model names no classes" in md
