"""Dataset loaders: every file kind from small files written here, the committed demo data,
the stratified split, and each refusal being one line that names the file."""

import os
import wave
from pathlib import Path

import numpy as np
import pytest
from support.paths import DEMO, EXAMPLES

from kpdev.host import features
from kpdev.host.datasets import Dataset, load_dataset, load_signal
from kpdev.host.errors import UsageError


def refusal(call, *args, **kwargs) -> str:
    """The message of the UsageError ``call`` raises, checked to be one line."""
    with pytest.raises(UsageError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def write_ts(path, cases, labels, classes, header=None, comment=True):
    """A sktime-format .ts file; ``cases`` is [n][dims][length] numbers (or strings)."""
    dims = len(cases[0])
    lines = ["# A test problem.", "# Made by test_datasets."] if comment else []
    fields = {
        "problemName": "Toy",
        "timeStamps": "false",
        "missing": "false",
        "univariate": "true" if dims == 1 else "false",
        "dimensions": str(dims),
        "equalLength": "true",
        "seriesLength": str(len(cases[0][0])),
        "classLabel": "true " + " ".join(classes),
    }
    fields.update(header or {})
    lines += ["@%s %s" % (k, v) for k, v in fields.items()] + ["@data"]
    for case, label in zip(cases, labels, strict=True):
        lines.append(":".join(",".join(str(v) for v in dim) for dim in case) + ":" + label)
    Path(path).write_text("\n".join(lines) + "\n")
    return str(path)


def write_csv(path, header, rows):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = ",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    Path(path).write_text(text)
    return str(path)


def write_wav(path, samples, rate=8000, width=2):
    """A PCM WAV file of ``samples`` [T, channels] (int16 values; 8-bit stores the high byte)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    samples = np.asarray(samples, dtype=np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 2:
            w.writeframes(samples.astype("<i2").tobytes())
        else:
            w.writeframes(((samples.astype(np.int32) >> 8) + 128).astype(np.uint8).tobytes())
    return str(path)


# --- .ts ------------------------------------------------------------------------------------

TS_CASES = [
    [[1, 2, 3, 4], [10, 20, 30, 40]],
    [[5, 6, 7, 8], [50, 60, 70, 80]],
    [[-1, -2, -3, -4], [-1.5, -2.5, -3.5, -4.5]],
]


def test_ts_multivariate(tmp_path):
    path = write_ts(tmp_path / "toy.ts", TS_CASES, ["walk", "idle", "walk"], ["walk", "idle"])
    ds = load_dataset(path)
    assert ds.name == "Toy"
    assert ds.classes == ["walk", "idle"]  # @classLabel order, not sorted
    assert ds.x.shape == (3, 4, 2) and ds.x.dtype == np.float32
    assert ds.x[0, :, 1].tolist() == [10, 20, 30, 40]  # time major, axes last
    assert ds.x[2, :, 1].tolist() == [-1.5, -2.5, -3.5, -4.5]
    assert ds.y.tolist() == [0, 1, 0] and ds.y.dtype == np.int64
    assert ds.axes == ["dim0", "dim1"]
    assert ds.fold is None


def test_ts_univariate(tmp_path):
    cases = [[[0.5, 1.5, 2.5]], [[3, 2, 1]]]
    path = write_ts(tmp_path / "uni.ts", cases, ["1", "2"], ["1", "2"], comment=False)
    ds = load_dataset(path)
    assert ds.x.shape == (2, 3, 1)
    assert ds.x[:, :, 0].tolist() == [[0.5, 1.5, 2.5], [3, 2, 1]]
    assert ds.classes == ["1", "2"] and ds.y.tolist() == [0, 1]


def test_ts_train_test_pair(tmp_path):
    write_ts(tmp_path / "Toy_TRAIN.ts", TS_CASES, ["a", "b", "a"], ["a", "b"])
    write_ts(tmp_path / "Toy_TEST.ts", TS_CASES[:2], ["b", "b"], ["a", "b"])
    for spec in ("Toy_TRAIN.ts", "Toy_TEST.ts", ""):
        ds = load_dataset(str(tmp_path / spec))
        assert len(ds) == 5
        assert ds.fold.tolist() == [0, 0, 0, 1, 1]
        assert ds.y.tolist() == [0, 1, 0, 1, 1]
    train, test = ds.split()
    assert len(train) == 3 and len(test) == 2
    assert np.array_equal(test.x, ds.x[3:])
    assert ds.summary()["fold"] == {"train": 3, "test": 2}


def test_ts_train_alone_has_no_fold(tmp_path):
    ds = load_dataset(write_ts(tmp_path / "Solo_TRAIN.ts", TS_CASES, ["a"] * 3, ["a"]))
    assert ds.fold is None and ds.name == "Toy"


def test_ts_window_cuts_cases(tmp_path):
    write_ts(tmp_path / "Toy_TRAIN.ts", TS_CASES, ["a", "b", "a"], ["a", "b"])
    write_ts(tmp_path / "Toy_TEST.ts", TS_CASES[:1], ["b"], ["a", "b"])
    ds = load_dataset(str(tmp_path), window=(2, 2))
    assert ds.x.shape == (8, 2, 2)  # 2 windows from each of 4 cases
    assert ds.x[1, :, 0].tolist() == [3, 4] and ds.x[2, :, 0].tolist() == [5, 6]
    assert ds.y.tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert ds.fold.tolist() == [0] * 6 + [1] * 2
    assert ds.group.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize(
    "cases, header, expect",
    [
        ([[[1, 2, 3]], [[1, 2]]], None, "equal-length"),
        ([[[1, 2, 3]], [[1, 2, 3]]], {"equalLength": "false"}, "equal-length"),
        ([[[1, "?", 3]], [[1, 2, 3]]], None, "missing values ('?')"),
        ([[[1, "NaN", 3]], [[1, 2, 3]]], None, "missing values (NaN)"),
        ([[[1, 2, 3]], [[1, 2, 3]]], {"timeStamps": "true"}, "timestamps"),
        ([[[1, 2, 3]], [[1, 2, 3]]], {"classLabel": "false"}, "@classLabel"),
    ],
)
def test_ts_refusals(tmp_path, cases, header, expect):
    path = write_ts(tmp_path / "bad.ts", cases, ["a", "a"], ["a"], header=header)
    message = refusal(load_dataset, path)
    assert path in message and expect in message


def test_ts_refuses_unknown_class_and_mixed_dims(tmp_path):
    path = write_ts(tmp_path / "bad.ts", [[[1, 2]], [[3, 4]]], ["a", "zzz"], ["a"])
    message = refusal(load_dataset, path)
    assert path + ":" in message and "'zzz'" in message
    path = write_ts(tmp_path / "dims.ts", [[[1, 2]], [[3, 4], [5, 6]]], ["a", "a"], ["a"])
    assert "dimensions" in refusal(load_dataset, path)


# --- .npz -----------------------------------------------------------------------------------


def test_npz_string_labels(tmp_path):
    path = str(tmp_path / "d.npz")
    x = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    np.savez(path, x=x, y=np.array(["walk", "idle", "walk", "run", "idle"]))
    ds = load_dataset(path)
    assert ds.classes == ["idle", "run", "walk"]
    assert ds.y.tolist() == [2, 0, 2, 1, 0]
    assert ds.name == "d" and np.array_equal(ds.x, x)
    ordered = load_dataset(path, classes=["walk", "run", "idle", "jump"])
    assert ordered.classes == ["walk", "run", "idle", "jump"]
    assert ordered.y.tolist() == [0, 2, 0, 1, 2]
    message = refusal(load_dataset, path, classes=["walk", "idle"])
    assert path in message and "'run'" in message


def test_npz_integer_like_labels_sort_as_numbers(tmp_path):
    path = str(tmp_path / "n.npz")
    np.savez(path, x=np.zeros((3, 2)), y=np.array(["10", "2", "1"]))
    assert load_dataset(path).classes == ["1", "2", "10"]


def test_npz_indices_with_classes_axes_and_fold(tmp_path):
    path = str(tmp_path / "full.npz")
    np.savez(
        path,
        x=np.zeros((4, 5, 2), np.float32),
        y=np.array([1, 0, 1, 0]),
        classes=np.array(["off", "on"]),
        axes=np.array(["ax", "ay"]),
        fold=np.array([0, 0, 1, 1]),
        source=np.array("a test"),
        rate_hz=np.array(50.0),
    )
    ds = load_dataset(path)
    assert ds.classes == ["off", "on"] and ds.axes == ["ax", "ay"]
    assert ds.source == "a test" and ds.rate_hz == 50.0
    train, test = ds.split()
    assert train.y.tolist() == [1, 0] and test.y.tolist() == [1, 0]
    summary = ds.summary()
    assert summary["counts"] == {"off": 2, "on": 2} and summary["shape"] == [5, 2]


def test_npz_refusals(tmp_path):
    path = str(tmp_path / "noy.npz")
    np.savez(path, x=np.zeros((2, 2)))
    message = refusal(load_dataset, path)
    assert path in message and "'y'" in message
    path = str(tmp_path / "obj.npz")
    np.savez(path, x=np.zeros((2, 2)), y=np.array([0, "a"], dtype=object))
    assert "Python objects" in refusal(load_dataset, path)
    path = str(tmp_path / "range.npz")
    np.savez(path, x=np.zeros((2, 2)), y=np.array([0, 2]), classes=np.array(["a", "b"]))
    assert "outside 0..1" in refusal(load_dataset, path)
    path = str(tmp_path / "float.npz")
    np.savez(path, x=np.zeros((2, 2)), y=np.array([0.0, 1.0]))
    assert "float64" in refusal(load_dataset, path)


# --- CSV ------------------------------------------------------------------------------------


def test_csv_label_column_windows(tmp_path):
    labels = ["idle"] * 5 + ["walk"] * 5
    rows = [(t, -t, lab) for t, lab in enumerate(labels)]
    path = write_csv(tmp_path / "rec.csv", ["ax", "ay", "label"], rows)
    ds = load_dataset(path, window=(4, 3))
    # Windows start at 0, 3, 6 (9 + 4 > 10): the last one is all walk, the middle one 2:2.
    assert ds.x.shape == (3, 4, 2) and ds.x.dtype == np.float32
    assert ds.x[:, 0, 0].tolist() == [0, 3, 6]
    assert ds.x[1, :, 1].tolist() == [-3, -4, -5, -6]
    assert ds.classes == ["idle", "walk"]
    assert ds.y.tolist() == [0, 0, 1]  # a 2:2 tie goes to the class listed first
    assert ds.axes == ["ax", "ay"] and ds.group.tolist() == [0, 0, 0]
    other = load_dataset(path, window=(4, 3), classes=["walk", "idle"])
    assert other.y.tolist() == [1, 0, 0]


def test_csv_windows_match_features_segment(tmp_path):
    features = pytest.importorskip("kpdev.host.features")
    if not hasattr(features, "segment"):
        pytest.skip("kpdev.host.features has no segment() yet")
    signal = np.arange(23 * 2, dtype=np.float32).reshape(23, 2)
    path = write_csv(tmp_path / "r.csv", ["a", "b", "label"], [(*s, "x") for s in signal])
    for size, stride in [(5, 5), (5, 2), (23, 1), (1, 7)]:
        ds = load_dataset(path, window=(size, stride))
        assert np.array_equal(ds.x, np.asarray(features.segment(signal, size, stride)))


def test_segment_semantics():
    signal = np.arange(10)
    assert features.windows_of(signal, 4, 3).tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert features.windows_of(signal, 10, 1).tolist() == [list(range(10))]
    assert features.windows_of(signal, 11, 1).shape == (0, 11)


def test_csv_class_folders(tmp_path):
    write_csv(tmp_path / "data" / "walk" / "w1.csv", ["x"], [(i,) for i in range(6)])
    write_csv(tmp_path / "data" / "walk" / "w2.csv", ["x"], [(i,) for i in range(4)])
    write_csv(tmp_path / "data" / "idle" / "i1.csv", ["x"], [(0,)] * 5)
    write_csv(tmp_path / "data" / "mixed.csv", ["x", "label"], [(1, "walk"), (2, "idle")] * 2)
    ds = load_dataset(str(tmp_path / "data"), window=(4, 2))
    assert ds.classes == ["idle", "walk"]
    # mixed.csv (top level, labelled per sample) first, then idle/i1, walk/w1, walk/w2.
    assert ds.y.tolist() == [0, 0, 1, 1, 1]
    assert ds.group.tolist() == [0, 1, 2, 2, 3]
    assert ds.summary()["recordings"] == 4


def test_csv_refusals(tmp_path):
    path = write_csv(tmp_path / "nolabel.csv", ["ax", "ay"], [(1, 2)] * 4)
    message = refusal(load_dataset, path, window=(2, 1))
    assert path in message and "'label'" in message and "--label-column" in message
    labelled = write_csv(tmp_path / "ok.csv", ["ax", "lab"], [(1, "a")] * 4)
    assert load_dataset(labelled, window=(2, 2), label_column="lab").classes == ["a"]
    message = refusal(load_dataset, labelled, label_column="lab")
    assert labelled in message and "window" in message
    path = write_csv(tmp_path / "noheader.csv", ["1", "2"], [(3, 4)])
    assert "header" in refusal(load_dataset, path, window=(1, 1))
    path = write_csv(tmp_path / "short.csv", ["a", "label"], [(1, "x")] * 3)
    assert "window size" in refusal(load_dataset, path, window=(4, 1))
    path = write_csv(tmp_path / "text.csv", ["a", "label"], [(1, "x"), ("oops", "x")])
    message = refusal(load_dataset, path, window=(1, 1))
    assert path + ":3" in message and "not a number" in message
    folders = tmp_path / "cols"
    write_csv(folders / "a" / "1.csv", ["x", "y"], [(1, 2)] * 3)
    write_csv(folders / "b" / "2.csv", ["x", "z"], [(1, 2)] * 3)
    message = refusal(load_dataset, str(folders), window=(2, 1))
    assert str(folders / "b" / "2.csv") in message and "differ" in message


def test_bad_window(tmp_path):
    path = write_csv(tmp_path / "r.csv", ["a", "label"], [(1, "x")] * 3)
    for window in [(0, 1), (2,), (2.0, 1), "4,2"]:
        assert "window" in refusal(load_dataset, path, window=window)


# --- WAV ------------------------------------------------------------------------------------


def test_wav_class_folders(tmp_path):
    rng = np.random.default_rng(1)
    clips = {}
    for label, names in {"yes": ["a", "b"], "no": ["c"]}.items():
        for name in names:
            clips[name] = rng.integers(-30000, 30000, (12, 2)).astype(np.int16)
            write_wav(tmp_path / "audio" / label / (name + ".wav"), clips[name], rate=16000)
    ds = load_dataset(str(tmp_path / "audio"))
    assert ds.classes == ["no", "yes"]
    assert ds.x.dtype == np.int16 and ds.x.shape == (3, 12, 2)
    assert np.array_equal(ds.x[0], clips["c"]) and np.array_equal(ds.x[2], clips["b"])
    assert ds.y.tolist() == [0, 1, 1]
    assert ds.axes == ["ch0", "ch1"] and ds.rate_hz == 16000.0
    windowed = load_dataset(str(tmp_path / "audio"), window=(5, 5))
    assert windowed.x.shape == (6, 5, 2) and windowed.y.tolist() == [0, 0, 1, 1, 1, 1]
    assert np.array_equal(windowed.x[1], clips["c"][5:10])


def test_wav_8bit_mono(tmp_path):
    samples = np.array([[-32768], [0], [256], [32512]], dtype=np.int16)
    write_wav(tmp_path / "w" / "beep" / "x.wav", samples, width=1)
    ds = load_dataset(str(tmp_path / "w"))
    assert ds.x[0, :, 0].tolist() == [-32768, 0, 256, 32512] and ds.axes == ["ch0"]


def test_wav_refusals(tmp_path):
    write_wav(tmp_path / "w" / "a" / "long.wav", np.zeros((10, 1)))
    write_wav(tmp_path / "w" / "b" / "short.wav", np.zeros((8, 1)))
    message = refusal(load_dataset, str(tmp_path / "w"))
    assert str(tmp_path / "w") in message and "long.wav" in message and "--window" in message
    assert len(load_dataset(str(tmp_path / "w"), window=(4, 4))) == 4
    loose = write_wav(tmp_path / "loose" / "x.wav", np.zeros((4, 1)))
    assert loose in refusal(load_dataset, str(tmp_path / "loose"))
    assert loose in refusal(load_dataset, loose)
    write_wav(tmp_path / "rates" / "a" / "1.wav", np.zeros((4, 1)), rate=8000)
    write_wav(tmp_path / "rates" / "b" / "2.wav", np.zeros((4, 1)), rate=16000)
    assert "16000 Hz" in refusal(load_dataset, str(tmp_path / "rates"))


# --- dispatch -------------------------------------------------------------------------------


def test_unknown_type_empty_dir_and_missing_path(tmp_path):
    path = tmp_path / "data.json"
    path.write_text("{}")
    message = refusal(load_dataset, str(path))
    assert str(path) in message and "'.json'" in message
    (tmp_path / "empty").mkdir()
    message = refusal(load_dataset, str(tmp_path / "empty"))
    assert str(tmp_path / "empty") in message and ".csv" in message
    assert "no such file" in refusal(load_dataset, str(tmp_path / "nope.npz"))
    assert "sklearn:digits" in refusal(load_dataset, "sklearn:iris")


# --- scikit-learn ---------------------------------------------------------------------------


def test_sklearn_digits():
    pytest.importorskip("sklearn")
    ds = load_dataset("sklearn:digits")
    assert ds.x.shape == (1797, 8, 8) and ds.x.dtype.kind == "f"
    assert ds.classes == [str(i) for i in range(10)]
    assert ds.x.max() == 16 and set(ds.y.tolist()) == set(range(10))
    assert "window" in refusal(load_dataset, "sklearn:digits", window=(4, 4))


def test_sklearn_missing(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "sklearn", None)
    monkeypatch.setitem(__import__("sys").modules, "sklearn.datasets", None)
    assert "pip install 'kpdev[datasets]'" in refusal(load_dataset, "sklearn:digits")


# --- split ----------------------------------------------------------------------------------


def make_dataset(counts, group=None):
    y = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    x = np.arange(len(y), dtype=np.float32)[:, None]
    return Dataset("toy", "test", x, y, ["c%d" % i for i in range(len(counts))], group=group)


def test_stratified_split():
    ds = make_dataset([40, 20, 8])
    train, test = ds.split(seed=3)
    assert np.bincount(test.y).tolist() == [10, 5, 2]
    assert np.bincount(train.y).tolist() == [30, 15, 6]
    ids = np.concatenate([train.x[:, 0], test.x[:, 0]])
    assert sorted(ids.tolist()) == list(range(68))
    again_train, again_test = ds.split(seed=3)
    assert np.array_equal(again_test.x, test.x) and np.array_equal(again_train.x, train.x)
    _, other = ds.split(seed=4)
    assert not np.array_equal(other.x, test.x)
    _, half = ds.split(0.5, seed=3)
    assert np.bincount(half.y).tolist() == [20, 10, 4]


def test_split_keeps_small_classes_and_refuses_too_little():
    train, test = make_dataset([3, 1]).split(0.25)
    assert np.bincount(test.y, minlength=2).tolist() == [1, 0]  # at least one, never all
    assert np.bincount(train.y).tolist() == [2, 1]
    assert "too few" in refusal(make_dataset([1, 1]).split)
    assert "between 0 and 1" in refusal(make_dataset([4]).split, 1.0)


def test_split_keeps_recordings_together():
    group = np.repeat(np.arange(8), 5)  # 8 recordings of 5 windows, 4 per class
    ds = make_dataset([20, 20], group=group)
    for seed in range(5):
        train, test = ds.split(seed=seed)
        assert not set(train.group.tolist()) & set(test.group.tolist())
        assert np.bincount(test.y).tolist() == [5, 5]


# --- the committed demo data ----------------------------------------------------------------


def test_committed_basicmotions():
    ds = load_dataset(str(DEMO / "basicmotions.npz"))
    assert ds.name == "BasicMotions" and "aeon 1.6.0" in ds.source
    assert ds.x.shape == (80, 100, 6) and ds.x.dtype == np.float32
    assert ds.classes == ["Standing", "Running", "Walking", "Badminton"]
    assert ds.axes == ["accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z"]
    assert ds.rate_hz == 10.0
    assert ds.summary()["fold"] == {"train": 40, "test": 40}
    train, test = ds.split()
    assert np.bincount(train.y).tolist() == [10] * 4 and np.bincount(test.y).tolist() == [10] * 4
    assert len(load_dataset(str(DEMO / "basicmotions.npz"), window=(50, 50))) == 160
    # A window as long as the cases leaves them as they are, axes named or not.
    assert load_dataset(str(DEMO / "basicmotions.npz"), window=(100, 50)).group is None


def test_committed_walk_signal():
    ds = load_dataset(str(DEMO / "basicmotions.npz"))
    sig = load_signal(str(DEMO / "basicmotions_walk.npz"))
    assert sig.x.shape == (800, 6) and sig.x.dtype == np.float32
    assert sig.rate_hz == 10.0 and sig.axes == ds.axes and sig.classes == ds.classes
    with np.load(DEMO / "basicmotions_walk.npz") as data:
        cases = data["cases"]
    assert (ds.fold[cases] == 1).all()
    assert np.bincount(ds.y[cases]).tolist() == [2, 2, 2, 2]
    assert np.array_equal(sig.x, np.concatenate(ds.x[cases]))
    assert np.array_equal(sig.labels, np.repeat(ds.y[cases], 100))


# --- load_signal ----------------------------------------------------------------------------


def test_signal_csv(tmp_path):
    path = write_csv(tmp_path / "s.csv", ["ax", "label", "ay"], [(1, "b", 2), (3, "a", 4)])
    sig = load_signal(path)
    assert sig.x.tolist() == [[1, 2], [3, 4]] and sig.axes == ["ax", "ay"]
    assert sig.classes == ["a", "b"] and sig.labels.tolist() == [1, 0]
    assert sig.rate_hz is None
    plain = load_signal(write_csv(tmp_path / "p.csv", ["v"], [(1,), (2,)]))
    assert plain.labels is None and plain.classes is None and plain.x.shape == (2, 1)


def test_signal_npz_and_wav(tmp_path):
    path = str(tmp_path / "s.npz")
    np.savez(path, signal=np.arange(6.0), labels=np.array(["on", "off"] * 3))
    sig = load_signal(path)
    assert sig.x.shape == (6, 1) and sig.axes == ["dim0"]
    assert sig.classes == ["off", "on"] and sig.labels.tolist() == [1, 0] * 3
    wav = write_wav(tmp_path / "a.wav", np.array([[1, -1], [2, -2]]), rate=22050)
    sig = load_signal(wav)
    assert sig.x.tolist() == [[1, -1], [2, -2]] and sig.rate_hz == 22050.0
    path = str(tmp_path / "nosignal.npz")
    np.savez(path, x=np.zeros(3))
    assert path in refusal(load_signal, path)
    assert "'.txt'" in refusal(load_signal, str(tmp_path / "s.txt"))


def test_demo_script_is_importable():
    # The script runs as a file (it is data, not a package); it must at least import cleanly.
    import runpy

    module = runpy.run_path(str(EXAMPLES / "make_basicmotions.py"), run_name="not_main")
    assert module["AXES"][0] == "accel_x" and os.path.basename(module["HERE"]) == "demo"
