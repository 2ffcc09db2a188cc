"""Classification and latency metrics and the measurements file: by hand and vs scikit-learn."""

import json
import os

import numpy as np
import pytest

from kpdev.host.errors import UsageError
from kpdev.host.evaluation.metrics import (
    SCHEMA,
    classification,
    latency,
    measurements,
    read_measurements,
    write_measurements,
)

CLASSES = ["a", "b", "c", "d"]
# "c" is never predicted, "d" is neither true nor predicted.
Y_TRUE = ["a", "a", "a", "b", "b", "c", "c"]
Y_PRED = ["a", "a", "b", "b", "a", "b", "a"]


def test_hand_computed_case():
    m = classification(Y_TRUE, Y_PRED, CLASSES)
    assert m["n"] == 7
    assert m["classes"] == CLASSES
    assert m["accuracy"] == pytest.approx(3 / 7)
    assert m["confusion"] == [[2, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]]
    pc = m["per_class"]
    assert pc["a"] == pytest.approx({"precision": 0.5, "recall": 2 / 3, "f1": 4 / 7, "support": 3})
    assert pc["b"] == pytest.approx({"precision": 1 / 3, "recall": 0.5, "f1": 0.4, "support": 2})
    # Zero division counts as 0.0: c is never predicted, d never occurs at all.
    assert pc["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert pc["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # Macro F1 averages over the classes present in y_true: a, b and c, not d.
    assert m["macro_f1"] == pytest.approx((4 / 7 + 0.4 + 0.0) / 3)
    assert m["macro_f1_classes"] == ["a", "b", "c"]


def test_macro_f1_ignores_classes_absent_from_the_data():
    # Two of five classes in the sample, all right: macro F1 is 1.0, not 2/5.
    m = classification(["a", "b", "b"], ["a", "b", "b"], ["a", "b", "c", "d", "e"])
    assert m["accuracy"] == 1.0
    assert m["macro_f1"] == 1.0
    assert m["macro_f1_classes"] == ["a", "b"]


def test_indices_and_labels_agree():
    index = {c: i for i, c in enumerate(CLASSES)}
    by_index = classification(
        [index[y] for y in Y_TRUE], np.array([index[y] for y in Y_PRED]), CLASSES
    )
    assert by_index == classification(Y_TRUE, Y_PRED, CLASSES)


def test_result_is_plain_json():
    m = classification(np.array([0, 1, 1]), np.array([0, 1, 0]), ["x", "y"])
    assert json.loads(json.dumps(m)) == m
    assert type(m["confusion"][0][0]) is int
    assert type(m["per_class"]["x"]["support"]) is int


def test_perfect_and_all_wrong():
    assert classification(["x", "y"], ["x", "y"], ["x", "y"])["accuracy"] == 1.0
    wrong = classification(["x", "x"], ["y", "y"], ["x", "y"])
    assert wrong["accuracy"] == 0.0
    assert wrong["macro_f1"] == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_matches_scikit_learn(seed):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    n = int(rng.integers(1, 60))
    classes = [f"class{i}" for i in range(k)]
    # Skewed draws so that some classes go missing from one side or the other.
    y_true = rng.integers(0, max(1, k - 1), n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, n))
    labels = list(range(k))
    m = classification(y_true, y_pred, classes)

    assert m["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y_true, y_pred))
    assert (
        m["confusion"] == sklearn_metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    )
    p, r, f, s = sklearn_metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    for i, label in enumerate(classes):
        got = m["per_class"][label]
        assert got["precision"] == pytest.approx(p[i])
        assert got["recall"] == pytest.approx(r[i])
        assert got["f1"] == pytest.approx(f[i])
        assert got["support"] == s[i]
    present = sorted(set(y_true.tolist()))
    macro = sklearn_metrics.f1_score(
        y_true, y_pred, labels=present, average="macro", zero_division=0
    )
    assert m["macro_f1"] == pytest.approx(macro)
    assert m["macro_f1_classes"] == [classes[i] for i in present]


@pytest.mark.parametrize(
    "y_true, y_pred, classes, message",
    [
        (["a"], ["a", "b"], ["a", "b"], "1 true labels but 2 predictions"),
        ([], [], ["a"], "no samples"),
        (["a", "z"], ["a", "a"], ["a", "b"], "y_true[1] is 'z', not one of the classes"),
        ([0], [2], ["a", "b"], "y_pred[0] is class index 2, outside 0..1"),
        (["a"], ["a"], [], "at least one class"),
        (["a"], ["a"], ["a", "a"], "class labels repeat"),
    ],
)
def test_classification_refuses(y_true, y_pred, classes, message):
    with pytest.raises(UsageError) as caught:
        classification(y_true, y_pred, classes)
    assert message in str(caught.value)


def test_latency_summary():
    s = latency([40, 10, 30, 20])
    assert s == pytest.approx(
        {
            "n": 4,
            "mean": 25.0,
            "p50": 25.0,
            "p90": 37.0,  # "linear": position 0.9 * 3 = 2.7 of the sorted values, 30 + 0.7 * 10
            "p99": 39.7,
            "min": 10.0,
            "max": 40.0,
            "std": np.sqrt(125.0),
        }
    )
    assert type(s["n"]) is int


def test_latency_matches_numpy_linear():
    values = np.random.default_rng(1).exponential(200.0, 257)
    s = latency(values)
    for q in (50, 90, 99):
        assert s[f"p{q}"] == pytest.approx(np.percentile(values, q, method="linear"))
    assert latency([7.5]) == pytest.approx(
        {"n": 1, "mean": 7.5, "p50": 7.5, "p90": 7.5, "p99": 7.5, "min": 7.5, "max": 7.5, "std": 0}
    )


def test_latency_refuses_empty_and_nan():
    with pytest.raises(UsageError, match="no latency samples"):
        latency([])
    with pytest.raises(UsageError, match="finite"):
        latency([1.0, float("nan")])


def _doc(**overrides):
    results = {
        "classification": classification(Y_TRUE, Y_PRED, CLASSES),
        "latency_us": latency(np.arange(1.0, 11.0)),
        "latency_samples_us": np.arange(1.0, 11.0),  # numpy in, plain list out
        "link": {"bytes_out": np.int64(1200), "bytes_in": 340, "per_inference": 220},
        "energy": None,
        "wall_s": 1.25,
        "profile": None,
    }
    kwargs = {
        "board": {"id": "sim-mcu", "name": "Simulated microcontroller"},
        "versions": {"kpdev": "0.1.0", "agent": "0.1.0"},
        "results": results,
        "pack": {"name": "basicmotions", "version": "1.0.0"},
        "dataset": {"name": "BasicMotions", "n_test": 7},
    }
    kwargs.update(overrides)
    return measurements("eval", **kwargs)


def test_measurements_document_shape():
    doc = _doc(created="2026-11-21T10:00:00Z")
    assert list(doc) == [
        "kind", "schema", "created", "command", "label", "board", "pack", "model", "dataset",
        "inputs", "versions", "results",
    ]  # fmt: skip
    assert doc["label"] is None  # kpdev eval --label sets it
    assert doc["kind"] == "kpdev-measurements"
    assert doc["schema"] == SCHEMA == 1
    assert doc["created"] == "2026-11-21T10:00:00Z"
    assert doc["model"] is None and doc["inputs"] is None
    assert doc["results"]["latency_samples_us"] == [float(v) for v in range(1, 11)]
    assert json.loads(json.dumps(doc)) == doc


def test_created_defaults_to_utc_now():
    created = _doc()["created"]
    assert len(created) == 20 and created[10] == "T" and created.endswith("Z")


def test_round_trip(tmp_path):
    doc = _doc()
    path = write_measurements(doc, tmp_path / "runs" / "a.json")
    assert path == tmp_path / "runs" / "a.json"
    assert read_measurements(path) == doc
    # Overwriting replaces the file whole and leaves no temporary files behind.
    other = _doc(board={"id": "sim-linux"})
    write_measurements(other, path)
    assert read_measurements(str(path)) == other
    assert os.listdir(tmp_path / "runs") == ["a.json"]


def test_write_refuses_nan(tmp_path):
    doc = _doc()
    doc["results"]["wall_s"] = float("nan")
    with pytest.raises(UsageError, match="NaN or infinity"):
        write_measurements(doc, tmp_path / "a.json")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89PNG\r\n", "is not a kpdev measurements file (not UTF-8 text)"),
        (b"{oops", "is not a kpdev measurements file (not JSON: "),
        (b"[1, 2]", 'is not a kpdev measurements file (no "kind")'),
        (b'{"schema": 1}', 'is not a kpdev measurements file (no "kind")'),
        (
            b'{"kind": "kpdev-pack", "schema": 1}',
            "is not a kpdev measurements file (kind 'kpdev-pack')",
        ),
        (
            b'{"kind": "kpdev-measurements", "schema": 2}',
            ": measurements schema 2 is newer than this kpdev (1); upgrade kpdev",
        ),
        (b'{"kind": "kpdev-measurements", "schema": "1"}', "schema '1' is not a valid schema"),
        (
            b'{"kind": "kpdev-measurements", "schema": 1, "command": "eval", "board": {}}',
            'has no "results"',
        ),
    ],
)
def test_read_refuses(tmp_path, monkeypatch, content, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "a.json").write_bytes(content)
    with pytest.raises(UsageError) as caught:
        read_measurements("runs/a.json")
    text = str(caught.value)
    assert text.startswith("runs/a.json")
    assert message in text
    assert "\n" not in text


def test_read_refuses_missing_file(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        read_measurements(tmp_path / "nope.json")
