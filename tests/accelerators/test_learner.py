"""The few-shot memory learner (accelerators/learner.py) under CPython and the real micropython.

Every scenario (a list of steps: make a learner, learn, predict, save, load, ...) runs in one
driver process per interpreter (the ``answers`` fixture, on tests/conftest.py's ``impl``)
and is checked against a plain-Python reference written from the module docstring's rules
(exact fractions for class means; float32 sums in the documented order).  Both interpreters
must answer every scenario identically, byte for byte (distances cross as raw doubles), except
for which loops ran: viper under micropython (learner_viper.py), plain Python under CPython,
and under micropython too when the agent tree is bytecode only (a board with no mpy_march).
Few-shot accuracy is measured on the BasicMotions recordings through the demo pipeline.
"""

import struct
import subprocess
from fractions import Fraction

import cbor2
import numpy as np
import pytest
from support.interpreters import CPythonDriver, MicroPythonDriver
from support.paths import DEMO, ROOT

from kpdev.accelerators.learner import MemoryLearner
from kpdev.host import features as hf
from kpdev.host.agent.micropython import (
    MPY_CROSS_OPTIONS,
    MicroPythonNotFound,
    mpy_cross_binary,
    stage_lib,
)
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.tensors import Tensor

E_BAD_SHAPE, E_BAD_DTYPE, E_BAD_VALUE = 18, 19, 25
# 5 labelled recordings per class, knn l1 k=1 (and prototype l2), on the 40 test recordings:
# at least this accuracy (numpy prototyping gave about 0.98; 10 seeds gave 0.975 to 1.0).
MIN_FEW_SHOT_ACCURACY = 0.9
SHOTS = 5

DRIVER = "learner_driver.py"  # the ``impl`` fixture runs it under CPython and MicroPython


class Tx:
    """A vector passed whole to one step: CBOR carries it as a tensor (tag 40)."""

    def __init__(self, dtype, data, shape):
        self.dtype = dtype
        self.data = data
        self.shape = shape


_TAGS = {"int8": 72, "uint8": 64, "float32": 85}


def to_cbor(obj):
    """Steps with their Tx vectors as CBOR tensors."""
    if isinstance(obj, Tx):
        return cbor2.CBORTag(40, [list(obj.shape), cbor2.CBORTag(_TAGS[obj.dtype], obj.data)])
    if isinstance(obj, list):
        return [to_cbor(o) for o in obj]
    if isinstance(obj, dict):
        return {k: to_cbor(v) for k, v in obj.items()}
    return obj


def i8(*values):
    return struct.pack("<%db" % len(values), *values)


def dist(d):
    """A distance as the driver reports it (raw double) -> float."""
    return struct.unpack("<d", d)[0]


# -- the reference ----------------------------------------------------------------------------


class Reference:
    """The learner's rules, written plainly: FIFO slots, sorted neighbours, exact means."""

    def __init__(self, n, dtype="int8", per_class=16, k=1, metric="l1", mode="knn", classes=0):
        self.n, self.dtype, self.per_class, self.k = n, dtype, per_class, k
        self.metric, self.mode = metric, mode
        self.slots, self.next, self.count = [], [], []
        for _ in range(classes):
            self.add_class()

    def add_class(self):
        self.slots.append([None] * self.per_class)
        self.next.append(0)
        self.count.append(0)
        return len(self.slots) - 1

    def values(self, data):
        fmt = {"int8": "b", "uint8": "B", "float32": "f"}[self.dtype]
        return list(struct.unpack("<%d%s" % (self.n, fmt), data))

    def dist(self, a, b):
        total = 0 if self.dtype != "float32" else 0.0
        for u, v in zip(a, b, strict=True):  # element order, as the device sums
            total += abs(u - v) if self.metric == "l1" else (u - v) * (u - v)
        return total

    def learn(self, data, c):
        before = self.predict(data)[0]
        s = self.next[c]
        self.slots[c][s] = self.values(data)
        self.next[c] = (s + 1) % self.per_class
        self.count[c] = min(self.count[c] + 1, self.per_class)
        return before

    def predict(self, data):
        x = self.values(data)
        if self.mode == "knn":
            return self._knn(x)
        return self._prototype(x)

    def _knn(self, x):
        # Equal distances rank by class, then slot; the k first vote.
        ranked = sorted(
            (self.dist(self.slots[c][s], x), c, s)
            for c in range(len(self.slots))
            for s in range(self.count[c])
        )[: self.k]
        if not ranked:
            return -1, None
        score = {}
        for d, c, _ in ranked:  # nearest first: the summed distances add up in that order
            votes, total, near = score.get(c, (0, 0, d))
            score[c] = (votes + 1, total + d, near)
        c = min(score, key=lambda c: (-score[c][0], score[c][1], c))
        return c, float(score[c][2])

    def _mean(self, c):
        held = self.slots[c][: self.count[c]]
        if self.dtype != "float32":
            return [Fraction(sum(col), len(held)) for col in zip(*held, strict=True)]
        means = []
        for i in range(self.n):
            s = 0.0
            for row in held:  # slot 0 first
                s += row[i]
            means.append(float(np.float32(s / len(held))))
        return means

    def _prototype(self, x):
        best = None
        for c in range(len(self.slots)):
            if self.count[c]:
                d = self.dist(x, self._mean(c))
                if best is None or d < best[1]:
                    best = (c, d)
        if best is None:
            return -1, None
        return best[0], float(best[1])


def encode(result):
    """A reference prediction as the driver reports it."""
    c, d = result
    return [c, None if d is None else struct.pack("<d", d)]


def test_reference_tie_rules():
    """The reference itself, on ties worked out by hand."""
    ref = Reference(1, "int8", per_class=2, k=2, classes=2)
    ref.learn(i8(1), 1)
    ref.learn(i8(-1), 0)
    assert ref.predict(i8(0)) == (0, 1.0)  # a vote each, equal sums: the lower class
    ref.learn(i8(3), 1)
    assert ref.predict(i8(2)) == (1, 1.0)  # (3) and (1) of class 1 are nearest
    ref.k = 3
    assert ref.predict(i8(0)) == (1, 1.0)  # two votes (at 1 and 3) beat one nearer vote
    proto = Reference(1, "int8", per_class=4, mode="prototype", classes=2)
    for v, c in ((0, 0), (3, 0), (1, 1), (2, 1)):
        proto.learn(i8(v), c)
    assert proto.predict(i8(1)) == (0, 0.5)  # both means are 1.5: the lower class


# -- scenarios ------------------------------------------------------------------------------


def basicmotions():
    """(int8 pipeline outputs [80, 48], labels, class names, fold) of the demo recordings."""
    spec = hf.load_spec(DEMO / "basicmotions_pipeline.yml")
    data = np.load(DEMO / "basicmotions.npz")
    x = hf.transform_batch(spec, hf.raw_input(spec, data["x"]))
    assert x.dtype == np.int8
    return x.reshape(len(x), -1), data["y"], [str(c) for c in data["classes"]], data["fold"]


BM_X, BM_Y, BM_CLASSES, BM_FOLD = basicmotions()
BM_N = BM_X.shape[1]


def few_shot_split(seed=0):
    """SHOTS training recordings per class (fixed seed, shuffled), and every test recording."""
    rng = np.random.default_rng(seed)
    train = []
    for c in range(len(BM_CLASSES)):
        train += list(rng.choice(np.flatnonzero((BM_FOLD == 0) & (BM_Y == c)), SHOTS, False))
    rng.shuffle(train)
    return train, list(np.flatnonzero(BM_FOLD == 1))


def random_vectors(rng, dtype, n, count, lo=None, hi=None):
    if dtype == "float32":
        return [rng.normal(size=n).astype(np.float32).tobytes() for _ in range(count)]
    info = np.iinfo(dtype)
    lo = info.min if lo is None else lo
    hi = info.max if hi is None else hi
    return [rng.integers(lo, hi + 1, n).astype(dtype).tobytes() for _ in range(count)]


class Scenario:
    """Steps for the driver, with what the reference says each must answer."""

    def __init__(self, n, dtype="int8", per_class=16, k=1, metric="l1", mode="knn", labels=()):
        self.n, self.dtype = n, dtype
        kw = {"per_class": per_class, "k": k, "metric": metric, "mode": mode}
        self.steps = [["new", [n, dtype], dict(kw, labels=list(labels))]]
        self.want = ["ok"]
        self.ref = Reference(n, dtype, classes=len(labels), **kw)

    def learn(self, vectors, classes):
        self.steps.append(["learn", self.dtype, [1, self.n], vectors, classes])
        self.want.append([self.ref.learn(v, c) for v, c in zip(vectors, classes, strict=True)])

    def predict(self, vectors):
        self.steps.append(["predict", self.dtype, [1, self.n], vectors])
        self.want.append([encode(self.ref.predict(v)) for v in vectors])

    def add_class(self, label):
        self.steps.append(["add", label])
        self.want.append(self.ref.add_class())

    def roundtrip(self):
        self.steps.append(["roundtrip"])
        self.want.append("ok")


def checked_scenarios():
    """name -> Scenario whose every answer the reference gives."""
    out = {}
    train, test = few_shot_split()
    tests = [BM_X[i].tobytes() for i in test]
    for name, k, metric, mode in (
        ("fewshot_knn_l1", 1, "l1", "knn"),
        ("fewshot_knn_l2_k3", 3, "l2", "knn"),
        ("fewshot_prototype_l1", 1, "l1", "prototype"),
        ("fewshot_prototype_l2", 1, "l2", "prototype"),
    ):
        s = Scenario(BM_N, "int8", 16, k, metric, mode, BM_CLASSES)
        s.predict(tests[:1])  # nothing learned yet
        s.learn([BM_X[i].tobytes() for i in train], [int(BM_Y[i]) for i in train])
        s.predict(tests)
        s.roundtrip()
        s.predict(tests)
        out[name] = s

    rng = np.random.default_rng(7)
    # Many ties: 3 values from {-1, 0, 1}, 30 samples for 3 x 4 slots (eviction), k up to 5.
    for k, metric in ((1, "l1"), (3, "l1"), (5, "l2"), (4, "l2")):
        for mode in ("knn", "prototype"):
            s = Scenario(3, "int8", 4, k, metric, mode, ["a", "b", "c"])
            v = random_vectors(rng, "int8", 3, 40, -1, 1)
            s.learn(v[:30], [int(c) for c in rng.integers(0, 3, 30)])
            s.predict(v[30:] + v[:5])
            s.roundtrip()
            s.predict(v[30:] + v[:5])
            out["ties_%s_%s_k%d" % (mode, metric, k)] = s

    # Full-range vectors of each dtype, more than the slots hold; a class added midway.
    for dtype in ("int8", "uint8", "float32"):
        for metric in ("l1", "l2"):
            for mode, k in (("knn", 3), ("prototype", 1)):
                n = 48 if dtype != "float32" else 16
                s = Scenario(n, dtype, 16, k, metric, mode, ["c0", "c1"])
                v = random_vectors(rng, dtype, n, 110)
                s.learn(v[:40], [int(c) for c in rng.integers(0, 2, 40)])
                s.add_class("c2")
                s.learn(v[40:90], [int(c) for c in rng.integers(0, 3, 50)])
                s.predict(v[90:] + v[:10])
                s.roundtrip()
                s.predict(v[90:] + v[:10])
                out["random_%s_%s_%s" % (dtype, mode, metric)] = s

    # Distances beyond int32 (40000 x 255**2): the viper knn loops hand results back in an
    # int32 array, so this learner runs the plain loops, and must still be right.
    big = 40000
    s = Scenario(big, "uint8", 1, 1, "l2", "knn", ["zero", "full"])
    s.learn([bytes(big), b"\xff" * big], [0, 1])
    s.predict([b"\x00" * (big - 1) + b"\xff", b"\x80" * big])
    out["big_l2"] = s
    return out


CHECKED = checked_scenarios()


def fifo_scenario():
    """One class of 3 slots, 5 samples learned: the two oldest are gone."""
    v = [i8(10 * j, 10 * j) for j in range(1, 7)]  # (10, 10) ... (60, 60)
    return [
        ["new", [2, "int8"], {"per_class": 3, "labels": ["only"]}],
        ["learn", "int8", [2], v[:5], [0] * 5],
        ["state"],
        ["predict", "int8", [2], v[:5]],
        ["bytes"],
        ["roundtrip"],
        ["learn", "int8", [2], v[5:], [0]],  # replaces slot 2, (30, 30), the oldest now
        ["predict", "int8", [2], [v[2], v[5]]],
        ["state"],
        ["reset", None],
        ["state"],
        ["predict", "int8", [2], [v[0]]],
        ["reset", ["x", "y"]],
        ["state"],
        ["bytes"],
    ]


# Steps that must fail: (step, expected code or None for "must succeed", words of the message).
ERROR_STEPS = [
    (["learn1", Tx("int8", i8(1, 2, 3), [3]), c], E_BAD_VALUE, ["0..1", "2 classes"])
    for c in (2, -1, True, 1.0, "0", None)
] + [
    (["learn1", Tx("uint8", bytes(3), [3]), 0], E_BAD_DTYPE, ["int8", "uint8"]),
    (["learn1", Tx("float32", bytes(12), [3]), 0], E_BAD_DTYPE, ["int8", "float32"]),
    (["learn1", Tx("int8", bytes(4), [4]), 0], E_BAD_SHAPE, ["3 values", "4 values"]),
    (["learn", "int8", [4, 1], [bytes(4)], [0]], E_BAD_SHAPE, ["3 values", "(4, 1)"]),
    (["learn1", Tx("int8", bytes(3), [1, 3]), 0], None, None),  # any shape of 3 values
    (["add", "a"], E_BAD_VALUE, ["'a'", "exists"]),
    (["add", ""], E_BAD_VALUE, ["non-empty str"]),
    (["add", 5], E_BAD_VALUE, ["non-empty str", "5"]),
    (["add", b"c"], E_BAD_VALUE, ["non-empty str"]),
    (["add", "x" * 256], E_BAD_VALUE, ["255 bytes"]),
    (["add", "c"], None, None),  # the third of max_classes=3
    (["add", "d"], E_BAD_VALUE, ["at most 3 classes"]),
    (["reset", ["p", "p"]], E_BAD_VALUE, ["exists"]),
    (["reset", ["p", "q", "r", "s"]], E_BAD_VALUE, ["at most 3"]),
    (["new", [0, "int8"], {}], E_BAD_VALUE, ["n must be"]),
    (["new", [4, "int16"], {}], E_BAD_DTYPE, ["int16"]),
    (["new", [4], {"metric": "cosine"}], E_BAD_VALUE, ["metric", "l1, l2"]),
    (["new", [4], {"mode": "svm"}], E_BAD_VALUE, ["mode", "knn, prototype"]),
    (["new", [4], {"k": 0}], E_BAD_VALUE, ["k must be"]),
    (["new", [4], {"per_class": True}], E_BAD_VALUE, ["per_class"]),
    (["new", [4], {"max_classes": 1, "labels": ["a", "b"]}], E_BAD_VALUE, ["at most 1"]),
    (["new", [4], {"labels": "ab"}], E_BAD_VALUE, ["labels must be a list"]),
]
ERROR_PREFIX = [
    ["new", [3, "int8"], {"max_classes": 3}],
    ["learn1", Tx("int8", i8(1, 2, 3), [3]), 0],  # no classes yet
    ["add", "a"],
    ["add", "b"],
]


def corrupt_states():
    """A small saved state, and (what, bytes) of damaged copies of it."""
    lr = MemoryLearner(4, "int8", per_class=3, labels=["a", "bé"])
    for j in range(5):
        lr.learn(Tensor("int8", (4,), i8(j, -j, 2 * j, 3)), j % 2)
    good = lr.to_bytes()
    bad = [("prefix %d" % i, good[:i]) for i in range(len(good))]
    for i in range(len(good)):
        for bit in (0x01, 0x80):
            b = bytearray(good)
            b[i] ^= bit
            bad.append(("byte %d ^ %#x" % (i, bit), bytes(b)))
    wrong_version = bytearray(good)
    wrong_version[4] = 2
    bad += [("version 2", bytes(wrong_version)), ("extra byte", good + b"\0"), ("str", "x")]
    return good, bad


GOOD_STATE, BAD_STATES = corrupt_states()

# info() of learners whose loops differ: int8 and uint8 (viper on micropython), float32 (plain
# everywhere), sums beyond int32 (plain).
INFO_ARGS = [
    [[48, "int8"], {"labels": ["a", "b"], "mode": "prototype", "metric": "l2"}],
    [[48, "uint8"], {"k": 3}],
    [[48, "float32"], {"labels": ["a"]}],
    [[40000, "uint8"], {"metric": "l2", "per_class": 1}],
]

SCENARIOS = {name: s.steps for name, s in CHECKED.items()}
SCENARIOS["fifo"] = fifo_scenario()
SCENARIOS["errors"] = ERROR_PREFIX + [step for step, _, _ in ERROR_STEPS] + [["state"]]
SCENARIOS["corrupt"] = [["load", GOOD_STATE], ["state"]] + [["load", b] for _, b in BAD_STATES]
SCENARIOS["info"] = [x for args, kw in INFO_ARGS for x in (["new", args, kw], ["info"])]


# -- running them -----------------------------------------------------------------------------

_ANSWERS = {}


def _answers(driver):
    """Every scenario's answers under one interpreter: one driver process for all of them."""
    if driver.name not in _ANSWERS:
        names = list(SCENARIOS)
        out = driver.run([cbor2.dumps(to_cbor(SCENARIOS[n])).hex() for n in names])
        decoded = [cbor2.loads(bytes.fromhex(a)) for a in out]
        _ANSWERS[driver.name] = dict(zip(names, decoded, strict=True))
    return _ANSWERS[driver.name]


@pytest.fixture(scope="module")
def answers(impl):
    """name -> the scenario's step results, under each interpreter."""
    return _answers(impl)


@pytest.fixture(scope="module")
def both(micropython, mp_lib):
    """The answers of both interpreters."""
    drivers = CPythonDriver(DRIVER), MicroPythonDriver(micropython, mp_lib, DRIVER)
    return {d.name: _answers(d) for d in drivers}


def no_bugs(results):
    for r in results:
        assert not (isinstance(r, dict) and "bug" in r), r["bug"]
    return results


# -- tests ----------------------------------------------------------------------------------


def test_few_shot_accuracy(answers):
    _, test = few_shot_split()
    truth = [int(BM_Y[i]) for i in test]
    assert len(truth) == 40
    for name in ("fewshot_knn_l1", "fewshot_prototype_l2"):
        got = no_bugs(answers[name])
        assert got[1] == [[-1, None]]  # nothing learned yet
        assert got[2][0] == -1  # the first sample learned found nothing to compare with
        predicted = [c for c, _ in got[3]]
        accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
        assert accuracy >= MIN_FEW_SHOT_ACCURACY, (name, accuracy)
        assert got[5] == got[3]  # the same after from_bytes(to_bytes())


@pytest.mark.parametrize("name", list(CHECKED))
def test_matches_reference(answers, name):
    got = no_bugs(answers[name])
    want = CHECKED[name].want
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, "%s: step %d (%s)" % (name, i, CHECKED[name].steps[i][0])


def test_same_on_cpython_and_micropython(both):
    cp, mp = both["cpython"], both["micropython"]
    for name in SCENARIOS:
        if name != "info":
            assert cp[name] == mp[name], name
    cp_info = [dict(i) for i in no_bugs(cp["info"])[1::2]]  # copies: the answers are shared
    mp_info = [dict(i) for i in no_bugs(mp["info"])[1::2]]
    # which loops ran: viper on micropython unless the sums could overflow; else the same
    assert [i.pop("kernels") for i in mp_info] == ["viper", "viper", "plain", "plain"]
    assert [i.pop("kernels") for i in cp_info] == ["plain"] * 4
    assert cp_info == mp_info


def test_info(answers):
    info = dict(no_bugs(answers["info"])[1])
    assert info.pop("kernels") in ("viper", "plain")
    assert info == {
        "kind": "memory",
        "n": 48,
        "dtype": "int8",
        "per_class": 16,
        "k": 1,
        "metric": "l2",
        "mode": "prototype",
        "max_classes": 32,
        "labels": ["a", "b"],
        "counts": [0, 0],
        "samples": 0,
        "memory_bytes": 2 * (16 * 48 + 4 * 48),  # slots and the prototype sums
    }


def test_fifo_eviction(answers):
    got = no_bugs(answers["fifo"])
    assert got[2] == [["only"], [3], 5, 3 * 2]  # 3 held of 5 learned; 6 bytes of slots
    # (10,10) and (20,20) are gone: their nearest is (30,30); the three held are found exactly
    assert [dist(d) for _, d in got[3]] == [40.0, 20.0, 0.0, 0.0, 0.0]
    # the class record: label, count 3, next slot 2 (the oldest), slots (40) (50) (30)
    assert got[4][28:-4] == b"\x04only" + struct.pack("<HH", 3, 2) + i8(40, 40, 50, 50, 30, 30)
    # after the reload, (60,60) replaced (30,30), now 20 from its nearest, (40,40)
    assert [dist(d) for _, d in got[7]] == [20.0, 0.0]
    assert got[8] == [["only"], [3], 6, 6]
    assert got[10] == [[], [], 0, 0]  # reset: no samples, no classes
    assert got[11] == [[-1, None]]
    assert got[13] == [["x", "y"], [0, 0], 0, 2 * 3 * 2]
    reloaded = MemoryLearner.from_bytes(got[14])
    assert (reloaded.labels, reloaded.counts(), reloaded.per_class) == (["x", "y"], [0, 0], 3)


def test_bad_input_refused(answers):
    got = no_bugs(answers["errors"])
    assert got[0] == "ok" and got[2:4] == [0, 1]
    assert got[1]["err"] == E_BAD_VALUE and "no classes" in got[1]["msg"]
    results = got[len(ERROR_PREFIX) : len(ERROR_PREFIX) + len(ERROR_STEPS)]
    for (step, code, words), result in zip(ERROR_STEPS, results, strict=True):
        if code is None:
            assert not (isinstance(result, dict) and "err" in result), (step, result)
            continue
        assert isinstance(result, dict) and result["err"] == code, (step, result)
        for w in words:
            assert w in result["msg"], (step, result["msg"], w)
    # the refused steps changed nothing: one sample learned, the three classes added
    assert got[-1] == [["a", "b", "c"], [1, 0, 0], 1, 3 * 16 * 3]


def test_corrupt_state_refused(answers):
    got = no_bugs(answers["corrupt"])
    assert got[0] == "ok" and got[1] == [["a", "bé"], [3, 2], 5, 2 * 3 * 4]
    msgs = {}
    for (what, _), result in zip(BAD_STATES, got[2:], strict=True):
        assert isinstance(result, dict) and result.get("err") == E_BAD_VALUE, (what, result)
        msgs[what] = result["msg"]
    assert "truncated" in msgs["prefix 10"]
    assert "truncated" in msgs["prefix %d" % (len(GOOD_STATE) - 1)]
    assert "version 2" in msgs["version 2"]
    assert "magic" in msgs["byte 0 ^ 0x1"]
    assert "CRC" in msgs["byte 40 ^ 0x1"]  # a sample byte
    assert "after" in msgs["extra byte"]


def test_python_api():
    """Attributes other device code reads; learning straight from Tensors; replay."""

    def make():
        lr = MemoryLearner(4, "uint8", per_class=2, labels=["a"])
        assert lr.learn(Tensor("uint8", (2, 2), bytes([1, 2, 3, 4])), 0) == -1
        assert lr.add_class("b") == 1
        assert lr.learn(Tensor("uint8", (4,), bytes([9, 9, 9, 9])), 1) == 0
        return lr

    lr = MemoryLearner(4, "uint8", per_class=2, labels=["a"])
    assert (lr.n, lr.dtype, lr.labels, lr.counts(), lr.samples()) == (4, "uint8", ["a"], [0], 0)
    assert lr.predict(Tensor("uint8", (4,), bytes(4))) == (-1, None)
    lr = make()
    assert lr.predict(Tensor("uint8", (4,), bytes([1, 2, 3, 5]))) == (0, 1.0)
    assert lr.memory_bytes() == lr.info()["memory_bytes"] == 2 * 2 * 4
    assert make().to_bytes() == lr.to_bytes()  # a replay gives the same state
    with pytest.raises(DeviceError) as e:
        MemoryLearner.from_bytes(lr.to_bytes()[:-1])
    assert e.value.code == E_BAD_VALUE


def _cross(tmp_path, module, *options):
    """mpy-cross on accelerators/``module`` with the agent build's options and ``options``."""
    try:
        cross = mpy_cross_binary()
    except MicroPythonNotFound as e:
        pytest.skip(str(e))
    out = tmp_path / (module[:-3] + ".mpy")
    cmd = [
        cross,
        *MPY_CROSS_OPTIONS,
        *options,
        "-o",
        str(out),
        str(ROOT / "accelerators" / module),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return r, out


def test_mpy_cross_compiles_viper(tmp_path):
    r, out = _cross(tmp_path, "learner_viper.py", "-march=x64")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[2] >> 2 == 2  # the .mpy holds x64 native code (arch 2)
    # bytecode only is refused: the module does hold viper functions
    r, _ = _cross(tmp_path, "learner_viper.py")
    assert r.returncode != 0 and "arch" in r.stderr


def test_mpy_cross_compiles_learner_without_march(tmp_path):
    """learner.py is bytecode only: it compiles for a board with no mpy_march in boards.yml."""
    r, out = _cross(tmp_path, "learner.py")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[2] >> 2 == 0  # no native code, no architecture


def test_plain_loops_on_micropython_without_viper(micropython, tmp_path):
    """Bytecode only, without learner_viper (a board with no mpy_march): the plain loops run."""

    def include(rel):
        return rel.startswith("protocol/") or rel in (
            "accelerators/__init__.py",
            "accelerators/learner.py",
        )

    lib = stage_lib(str(tmp_path / "lib"), march=None, include=include)
    names = list(SCENARIOS)
    lines = [cbor2.dumps(to_cbor(SCENARIOS[n])).hex() for n in names]
    out = MicroPythonDriver(micropython, lib, DRIVER).run(lines)
    got = dict(zip(names, [cbor2.loads(bytes.fromhex(a)) for a in out], strict=True))
    assert [i["kernels"] for i in no_bugs(got["info"])[1::2]] == ["plain"] * 4
    assert got == _answers(CPythonDriver(DRIVER))  # kernels included: plain on both
