"""Edge learning over the link: the LEARN operations on sim-mcu (the memory learner on the real
MicroPython) and sim-linux (the memory learner, and akida's own learning in its software
engine), with the host's session, persistence and export around them.

The data is real: UEA BasicMotions (host/demo/basicmotions.npz, its predefined 40/40 fold),
through the demo pack's feature pipeline; shots are drawn with fixed seeds.  Every device answer
that can be computed on the host is checked against the host reference (the same learner code,
or akida, in this process).
"""

import copy
import resource

import pytest
from support.agents import assert_serving
from support.packs import device_pack, upload_all
from support.paths import DEMO

from kpdev.host import features
from kpdev.host.datasets import load_dataset
from kpdev.host.learning.session import export_pack, run_session
from kpdev.host.packs.deploy import deploy_pack
from kpdev.host.packs.learner import build_learning_pack
from kpdev.host.packs.pack import read_pack
from kpdev.host.runtime.emulate import HostPack
from kpdev.protocol import ops
from kpdev.protocol.errors import DeviceError

DATASET = DEMO / "basicmotions.npz"
SPEC = features.load_spec(DEMO / "basicmotions_pipeline.yml")
CLASSES = ["Standing", "Running", "Walking", "Badminton"]
# Stated thresholds: 5 shots per class, the 40 held-out recordings.  The host-trained MLP of the
# demo pack scores 0.975; the learners reach 0.95+ (memory) and 0.9 (akida) with these seeds.
MEMORY_5_SHOT = 0.9
AKIDA_5_SHOT = 0.8


def binary_spec(levels=4):
    """The demo pipeline with a thermometer-encoded output: the akida learner's binary input."""
    spec = copy.deepcopy(SPEC)
    n = features.n_features(spec) * levels
    spec["output"] = {
        "dtype": "uint8",
        "shape": [1, 1, 1, n],
        "encoding": {"kind": "thermometer", "levels": levels, "low": -2.0, "high": 2.0},
    }
    return spec


@pytest.fixture(scope="module")
def data():
    return load_dataset(str(DATASET))


@pytest.fixture(scope="module")
def packs(tmp_path_factory, data):
    """Learner packs built once: memory (empty, and knowing two classes), akida (empty)."""
    out = tmp_path_factory.mktemp("packs")
    built = {}
    build_learning_pack(out / "mem.kp", learner="memory", pipeline=SPEC, dataset=data, name="mem")
    built["memory"] = read_pack(out / "mem.kp")
    build_learning_pack(
        out / "two.kp",
        learner="memory",
        pipeline=SPEC,
        dataset=data,
        name="two",
        classes=["Standing", "Walking"],
        learn_shots=5,
    )
    built["two"] = read_pack(out / "two.kp")
    if _has_akida():
        build_learning_pack(
            out / "ak.kp", learner="akida", pipeline=binary_spec(), dataset=data, name="ak"
        )
        built["akida"] = read_pack(out / "ak.kp")
    return built


def _has_akida():
    try:
        import akida  # noqa: F401
    except ImportError:
        return False
    return True


CASES = [
    pytest.param("sim-mcu", "memory", MEMORY_5_SHOT, id="sim-mcu-memory"),
    pytest.param("sim-linux", "memory", MEMORY_5_SHOT, id="sim-linux-memory"),
    pytest.param("sim-linux", "akida", AKIDA_5_SHOT, id="sim-linux-akida"),
]


def _pack(packs, kind):
    if kind not in packs:
        pytest.skip("akida is not installed")
    return packs[kind]


def _deployed(agents, board, pack, state=None):
    agent = agents.start(board, state=state)
    client = agent.client(timeout=60)
    deploy_pack(client, pack, None)
    return agent, client


def _test_windows(data):
    _, test = data.split()
    return features.raw_input(SPEC, test.x), [test.classes[i] for i in test.y]


@pytest.mark.parametrize("board,kind,threshold", CASES)
def test_five_shots_learned_over_the_link_score_above_the_threshold(
    agents, packs, data, board, kind, threshold
):
    pack = _pack(packs, kind)
    agent, client = _deployed(agents, board, pack)
    log = run_session(client, pack, data, shots=5, rounds=2, seed=0, session="t1")
    first, one, two = log["rows"]
    assert first["shots_per_class"] == 0
    if kind == "memory":
        assert first["accuracy"] == 0.0  # knows nothing yet: class -1 for every window
    else:
        assert first["accuracy"] < one["accuracy"]  # akida's neurons start from random weights
    assert one["shots_per_class"] == 5 and one["accuracy"] >= threshold, log["curve"]
    assert two["shots_per_class"] == 10 and two["samples"] == 40
    assert 0.0 <= two["prequential_accuracy"] <= 1.0
    info = client.learn_info()
    assert info["samples"] == 40 and info["session"] == "t1" and info["dirty"]
    assert info["labels"] == CLASSES
    # The device's answers are the host reference's, given what the device learned.
    exported = read_pack(_export(client, pack, agent.state.parent / f"{board}-{kind}.kp"))
    host = HostPack(exported)
    xs, _ = _test_windows(data)
    device = [r["l"] for r in client.classify_many(xs)]
    assert device == [host.classify(x)["l"] for x in xs]
    host.close()


def _export(client, pack, path):
    data = client.learn_export()
    out, learned = export_pack(pack, data, path, board=client.device.get("board"))
    assert learned["on_device"] and learned["samples"] == client.learn_info()["samples"]
    return out


@pytest.mark.parametrize("board,kind,threshold", CASES)
def test_export_then_deploy_on_a_clean_board_predicts_identically(
    agents, packs, data, tmp_path, board, kind, threshold
):
    pack = _pack(packs, kind)
    _, client = _deployed(agents, board, pack)
    run_session(client, pack, data, shots=3, rounds=1, seed=4, session="exp")
    xs, _ = _test_windows(data)
    before = [r["l"] for r in client.classify_many(xs)]
    path = _export(client, pack, tmp_path / "learned.kp")
    learned = read_pack(path)
    assert learned.learning["learned"]["session"] == "exp"
    assert learned.manifest["version"] == "1.0.0+learned.exp"
    assert learned.learning["classes"] == CLASSES
    _, fresh = _deployed(agents, board, learned)  # a new state directory: a freshly flashed board
    assert fresh.learn_info()["restored"] == "pack"
    assert [r["l"] for r in fresh.classify_many(xs)] == before
    host = HostPack(learned)
    assert [host.classify(x)["l"] for x in xs] == before
    host.close()


@pytest.mark.parametrize("board,kind,threshold", CASES)
def test_saved_learning_survives_a_kill_and_unsaved_learning_does_not(
    agents, packs, data, board, kind, threshold
):
    pack = _pack(packs, kind)
    agent, client = _deployed(agents, board, pack)
    run_session(client, pack, data, shots=2, rounds=1, seed=1)
    saved = client.learn_save()
    xs, _ = _test_windows(data)
    kept = [r["l"] for r in client.classify_many(xs)]
    run_session(client, pack, data, shots=3, rounds=1, seed=2)  # learned, not saved
    assert client.learn_info()["samples"] == 20
    agent.kill()  # a power cut
    again = agents.start(board, state=agent.state).client(timeout=60)
    info = again.learn_info()
    assert info["restored"] == "saved" and info["samples"] == saved["samples"] == 8
    assert not info["dirty"]
    assert [r["l"] for r in again.classify_many(xs)] == kept
    # Deploying the same pack again keeps what was learned; reset forgets it, saved state too.
    deploy_pack(again, pack, None)
    assert again.learn_info()["samples"] == 8
    reset = again.learn_reset()
    assert reset["samples"] == 0 and not reset["saved"] and reset["restored"] == "pack"
    host = HostPack(pack)  # as the pack brought it
    assert [r["l"] for r in again.classify_many(xs)] == [host.classify(x)["l"] for x in xs]
    host.close()


def _no_bigger_files(limit):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_an_interrupted_save_keeps_the_previous_state(agents, packs, data, board):
    pack = packs["memory"]
    agent, client = _deployed(agents, board, pack)
    run_session(client, pack, data, shots=2, rounds=1, seed=1)
    first = client.learn_save()
    xs, _ = _test_windows(data)
    kept = [r["l"] for r in client.classify_many(xs)]
    agent.stop()
    # The same flash, now with files limited to 256 bytes: the next save stops part-way (the
    # write fails with EFBIG; SIGXFSZ is ignored, as CPython, which starts the agent, sets it).
    cut = agents.start(board, state=agent.state, preexec_fn=_no_bigger_files(256))
    c2 = cut.client(timeout=60)
    run_session(c2, pack, data, shots=3, rounds=1, seed=2)
    with pytest.raises(DeviceError) as e:
        c2.learn_save()
    assert e.value.code == ops.E_LEARN and "previous save stands" in str(e.value)
    info = c2.learn_info()  # still serving, still holding what it learned
    assert info["dirty"] and info["samples"] == 20
    cut.kill()
    again = agents.start(board, state=agent.state).client(timeout=60)
    info = again.learn_info()
    assert info["restored"] == "saved" and info["samples"] == first["samples"]
    assert [r["l"] for r in again.classify_many(xs)] == kept


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_bad_labels_get_clear_errors_and_learn_nothing(agents, packs, data, board):
    pack = packs["memory"]
    agent, client = _deployed(agents, board, pack)
    xs, _ = _test_windows(data)
    bad = [
        ([7], ops.E_BAD_VALUE, "classes 0..3"),
        ([-1], ops.E_BAD_VALUE, "classes 0..3"),
        ([1.0], ops.E_BAD_DTYPE, "int class indices"),
        (["Walking"], ops.E_BAD_DTYPE, "int class indices"),
        ([True], ops.E_BAD_DTYPE, "int class indices"),
    ]
    for ys, code, words in bad:
        with pytest.raises(DeviceError) as e:
            client.learn([xs[0]], ys)
        assert e.value.code == code and words in str(e.value), (ys, str(e.value))
    # One bad label in a batch: none of the batch is learned (sim-mcu's 2 KB frames hold one
    # window, so its batch is that one).
    k = 3 if client.max_payload > 8192 else 1
    with pytest.raises(DeviceError) as e:
        client.learn(list(xs[:k]), [0] * (k - 1) + [9])
    assert e.value.code == ops.E_BAD_VALUE and "label %d" % (k - 1) in str(e.value)
    with pytest.raises(DeviceError) as e:
        client.learn(list(xs[:1]), [0, 1])
    assert e.value.code == ops.E_BAD_VALUE and "1 samples but 2 labels" in str(e.value)
    assert client.learn_info()["samples"] == 0
    with pytest.raises(DeviceError) as e:
        client.learn([xs[0][:10]], [0])  # not a window
    assert e.value.code == ops.E_BAD_SHAPE
    with pytest.raises(DeviceError) as e:
        client.learn_add_classes(["Walking"])
    assert e.value.code == ops.E_BAD_VALUE and "already known" in str(e.value)
    client.learn_enable(False)
    with pytest.raises(DeviceError) as e:
        client.learn([xs[0]], [0])
    assert e.value.code == ops.E_LEARN and "disabled" in str(e.value)
    assert client.classify(xs[0])["c"] == -1  # classifying goes on
    client.learn_enable(True)
    assert client.learn([xs[0]], [0])["samples"] == 1
    assert_serving(client)


def test_a_pack_without_a_learner_refuses_learn_ops(agents):
    client = agents.start("sim-linux").client()
    upload_all(client)
    client.pack_set(device_pack())
    with pytest.raises(DeviceError) as e:
        client.learn_info()
    assert e.value.code == ops.E_LEARN and "no learner" in str(e.value)
    with pytest.raises(DeviceError) as e:
        client.request(0x3B)
    assert e.value.code == ops.E_NOT_IMPLEMENTED and "LEARN" in str(e.value)


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_new_classes_are_learned_without_forgetting_the_old(agents, packs, data, board):
    pack = packs["two"]  # knows Standing and Walking (5 shots each, taught on the host)
    _, client = _deployed(agents, board, pack)
    log = run_session(
        client, pack, data, shots=5, rounds=1, seed=3, new_classes=["Running", "Badminton"]
    )
    assert log["labels"] == ["Standing", "Walking", "Running", "Badminton"]
    start, end = log["rows"]
    assert start["per_class"]["Running"] == 0.0 and start["per_class"]["Standing"] >= 0.9
    assert end["per_class"]["Running"] >= 0.8 and end["per_class"]["Badminton"] >= 0.8
    assert end["per_class"]["Standing"] >= 0.8 and end["per_class"]["Walking"] >= 0.8
    assert end["accuracy"] >= MEMORY_5_SHOT
