"""Knowledge Packs on the device: PACK_SET/GET/CLEAR, CLASSIFY through pipeline and model graph,
streams with a CLASS_EVENT per window, PROFILE_RUN, persistence; on MicroPython and CPython.

Every device answer is checked against the host's own computation of the same thing: the numpy
pipeline (kpdev.host.features) and tflite-micro's interpreter in this process.
"""

import hashlib
import subprocess
import time

import numpy as np
import pytest
from support.agents import assert_serving
from support.packs import CLASSES, MODELS, SPEC, device_pack, upload_all
from support.reference import reference

from kpdev.host import features
from kpdev.host.runtime import modelgen
from kpdev.protocol import ops
from kpdev.protocol.errors import DeviceError

pytest.importorskip("tflite_micro")

BOARDS = ["sim-mcu", "sim-linux"]


def host_classify(window):
    """What the device should answer: host pipeline, then tflite-micro through the graph."""
    x = features.transform(SPEC, window)
    k = int(np.argmax(reference(MODELS["router"], x)))
    child = "left" if k == 0 else "right"
    c = int(np.argmax(reference(MODELS[child], x)))
    return x, [["router", k], [child, c]], CLASSES[child][c]


def windows(n, seed=0):
    # Each window its own level and loudness, so features (and classes) differ between windows.
    rng = np.random.default_rng(seed)
    level = rng.integers(-500, 500, size=(n, 1, 3))
    loud = rng.integers(20, 600, size=(n, 1, 3))
    return (level + rng.uniform(-1, 1, size=(n, 20, 3)) * loud).astype(np.int16)


@pytest.mark.parametrize("board", BOARDS)
def test_classify_runs_pipeline_and_routes_parent_to_child(agents, board):
    client = agents.start(board).client()
    upload_all(client)
    described = client.pack_set(device_pack())
    assert described["models"] == ["router", "left", "right"]
    assert described["window"] == [20, 10] and described["features"] == 12
    seen = set()
    for w in windows(12):
        t0 = time.perf_counter()
        r = client.classify(w, features=True)
        wall_us = (time.perf_counter() - t0) * 1e6
        x, path, label = host_classify(w)
        assert np.array_equal(r["x"], x)  # the device's pipeline output, bit for bit
        assert r["p"] == path and r["l"] == label and r["m"] == path[-1][0]
        seen.add(path[0][1])
        # the pipeline's and the models' times, within the request's round trip
        assert r["tf"] >= 0 and r["tm"] > 0 and r["tf"] + r["tm"] < wall_us
    assert seen == {0, 1}, "both branches of the graph were taken"
    # A batch answers in order, the same as one at a time.
    ws = windows(5, seed=1)
    batch = list(client.classify_many(ws, batch=2))
    assert [r["l"] for r in batch] == [host_classify(w)[2] for w in ws]


@pytest.mark.parametrize("board", BOARDS)
def test_bad_packs_are_refused_and_the_old_one_stays(agents, board):
    client = agents.start(board).client()
    upload_all(client)
    client.pack_set(device_pack())
    bad = device_pack()
    bad["models"][1]["model"] = "demo.missing"
    with pytest.raises(DeviceError) as e:
        client.pack_set(bad)
    assert e.value.code == ops.E_NO_MODEL and "demo.missing" in str(e.value)
    changed = device_pack(models=dict(MODELS, left=modelgen.dense_int8(12, 8, 3, seed=9)))
    with pytest.raises(DeviceError) as e:
        client.pack_set(changed)
    assert e.value.code == ops.E_CHECKSUM and "deploy the pack again" in str(e.value)
    dangling = device_pack()
    dangling["models"][0]["results"] = {1: "nowhere"}
    with pytest.raises(DeviceError) as e:
        client.pack_set(dangling)
    assert e.value.code == ops.E_BAD_VALUE and "nowhere" in str(e.value)
    broken = device_pack()
    broken["pipeline"] = dict(SPEC, window={"size": 0, "stride": 1})
    with pytest.raises(DeviceError) as e:
        client.pack_set(broken)
    assert e.value.code == ops.E_BAD_VALUE
    with pytest.raises(DeviceError) as e:
        client.classify(np.zeros((20, 4), np.int16))
    assert e.value.code == ops.E_BAD_SHAPE and "3" in str(e.value)
    with pytest.raises(DeviceError) as e:
        client.classify(np.zeros((20, 3), np.float32))
    assert e.value.code == ops.E_BAD_DTYPE
    assert client.pack_get()["name"] == "demo"
    assert_serving(client)


@pytest.mark.parametrize("board", BOARDS)
def test_a_pack_whose_results_are_not_class_indexes_is_a_bad_request(agents, board):
    # A key that int() cannot read was once answered 32 INTERNAL (ValueError).
    client = agents.start(board).client()
    upload_all(client)
    client.pack_set(device_pack())
    for results in ({"two": "left"}, {1.5: "left"}, {True: "left"}, {0: 7}, ["left"]):
        bad = device_pack()
        bad["name"] = "bad"
        bad["models"][0]["results"] = results
        with pytest.raises(DeviceError) as e:
            client.pack_set(bad)
        assert e.value.code == ops.E_BAD_REQUEST and "'results'" in str(e.value), results
    assert client.pack_get()["name"] == "demo"
    assert_serving(client)


@pytest.mark.parametrize("board", BOARDS)
def test_stream_sends_one_class_event_per_window(agents, board):
    events = []
    agent = agents.start(board)
    client = agent.client()
    client.on_event = lambda op, body: events.append((op, body))
    upload_all(client)
    client.pack_set(device_pack())
    with pytest.raises(DeviceError) as e:
        client.stream_push(np.zeros((5, 3), np.int16))
    assert e.value.code == ops.E_UPLOAD_STATE
    assert client.stream_start() == {"size": 20, "stride": 10, "axes": 3}
    signal = np.random.default_rng(4).integers(-900, 900, size=(95, 3)).astype(np.int16)
    at = 0
    for n in (1, 7, 30, 2, 40, 15):  # uneven pushes: windows complete inside and across them
        client.stream_push(signal[at : at + n])
        at += n
    assert client.stream_stop()["total"] == 8  # windows start at 0, 10, ..., 70
    got = [body for op, body in events if op == ops.CLASS_EVENT]
    assert [b["w"] for b in got] == list(range(8))
    want = [host_classify(w)[2] for w in features.segment(signal, 20, 10)]
    assert [b["l"] for b in got] == want


@pytest.mark.parametrize("board", BOARDS)
def test_profile_times_every_stage(agents, board):
    client = agents.start(board).client()
    upload_all(client)
    client.pack_set(device_pack())
    p = client.profile(windows(1)[0], runs=3)
    names = [s["name"] for s in p["stages"]]
    for gen in ("mean", "std", "max", "mean_crossing_rate"):
        assert any(gen in n for n in names), names
    assert "model:router" in names
    assert any(n in ("model:left", "model:right") for n in names)
    # each stage timed within the whole classification: together no more than the total
    assert all(s["us"] >= 0 for s in p["stages"]) and p["total_us"] > 0
    assert sum(s["us"] for s in p["stages"]) <= p["total_us"] + 1e-6
    assert p["runs"] == 3
    # The times of each run, per stage and in all: their means are the means
    assert len(p["totals"]) == 3 and p["w"] == 0
    assert sum(p["totals"]) / 3 == pytest.approx(p["total_us"])
    for s in p["stages"]:
        assert len(s["runs"]) == 3
        assert sum(s["runs"]) / 3 == pytest.approx(s["us"])
    for i, total in enumerate(p["totals"]):
        assert sum(s["runs"][i] for s in p["stages"]) <= total
    # Warm-up runs are not counted; the per-run times stop at 64 runs, the means do not.
    many = client.profile(windows(1)[0], runs=70, warmup=2)
    assert (many["runs"], many["w"], len(many["totals"])) == (70, 2, 64)
    assert all(len(s["runs"]) == 64 for s in many["stages"])
    for runs, warmup in ((0, 0), (1, -1), (1, 10001)):
        with pytest.raises(DeviceError) as e:
            client.profile(windows(1)[0], runs=runs, warmup=warmup)
        assert e.value.code == ops.E_BAD_REQUEST


@pytest.mark.parametrize("board", BOARDS)
def test_the_pack_survives_a_restart_and_clear_forgets_it(agents, board):
    agent = agents.start(board)
    client = agent.client()
    with pytest.raises(DeviceError) as e:
        client.classify(windows(1)[0])
    assert e.value.code == ops.E_NO_MODEL and "kpdev deploy" in str(e.value)
    upload_all(client)
    client.pack_set(device_pack())
    agent.kill()  # a power cut
    client = agents.start(board, state=agent.state).client()
    assert client.pack_get()["name"] == "demo"
    w = windows(1, seed=7)[0]
    assert client.classify(w)["l"] == host_classify(w)[2]
    client.pack_clear()
    assert client.pack_get() is None
    assert "demo.router" in [m["name"] for m in client.models()["models"]]


def test_a_save_cut_short_keeps_the_previous_pack(tmp_path):
    # The agent in this process: a save that stopped before its rename leaves pack.json.tmp.
    from kpdev.device.agent import Agent

    agent = Agent(str(tmp_path))
    for mid, data in MODELS.items():
        h = hashlib.sha256(data).digest()
        agent.request(
            ops.MODEL_BEGIN,
            {"name": "demo." + mid, "format": "tflite", "size": len(data), "sha256": h},
        )
        agent.request(ops.MODEL_CHUNK, {"name": "demo." + mid, "offset": 0, "data": data})
        agent.request(ops.MODEL_COMMIT, {"name": "demo." + mid, "activate": False})
    agent.request(ops.PACK_SET, {"pack": device_pack()})
    (tmp_path / "pack.json.tmp").write_text('{"name": "torn", "vers')
    agent.close()
    again = Agent(str(tmp_path))
    assert again.request(ops.PACK_GET)["pack"]["name"] == "demo"
    assert not (tmp_path / "pack.json.tmp").exists()
    again.close()


def test_pack_ops_outside_the_named_codes_are_reserved(agents):
    client = agents.start("sim-linux").client()
    with pytest.raises(DeviceError) as e:
        client.request(0x6A)
    assert e.value.code == ops.E_NOT_IMPLEMENTED and "PACK" in str(e.value)
    with pytest.raises(DeviceError) as e:
        client.request(0x51)
    assert e.value.code == ops.E_NOT_IMPLEMENTED and "PROFILE" in str(e.value)


PACKRUN_PROBE = """\
import sys
from kpdev.device import repl
agent = repl.default_agent()
loaded = lambda: "kpdev.device.packrun" in sys.modules
agent.request(0x61)  # PACK_GET: no pack
print(loaded())
agent.request(0x62)  # PACK_CLEAR
print(loaded())
"""


def test_with_no_pack_a_board_keeps_no_pack_code(micropython, mp_lib, tmp_path):
    # A PACK_GET that finds no pack (as `kpdev deploy --dry-run` sends) must not keep the pack
    # runner's code in a small board's heap; it held 2.5 KB of sim-mcu-64k's for good.
    (tmp_path / "probe.py").write_text(PACKRUN_PROBE)
    r = subprocess.run(
        [micropython, "-X", "heapsize=256K", "probe.py"],
        cwd=tmp_path,
        env={"MICROPYPATH": mp_lib, "KPDEV_STATE": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["False", "False"]
