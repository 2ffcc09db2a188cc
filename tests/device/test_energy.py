"""Energy per inference covers the span the latency figure covers: for a pack, the whole
CLASSIFY (pipeline + model graph), per stage; checked against the device's own timings."""

import hashlib

import pytest
from support.packs import MODELS, device_pack, upload_all, windows

from kpdev.device.agent import Agent
from kpdev.host.boards.catalog import get_board
from kpdev.protocol import ops
from kpdev.protocol.tensors import Tensor, encode_tensor


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_estimate_covers_the_whole_classification(agents, board):
    client = agents.start(board).client()
    active = get_board(board).power["active_mw"]
    upload_all(client)
    client.pack_set(device_pack())
    client.stats(reset=True)
    ws = windows(9)
    replies = [client.classify(w) for w in ws[:3]] + list(client.classify_many(ws[3:], batch=2))
    tf = sum(r["tf"] for r in replies)
    tm = sum(r["tm"] for r in replies)
    n = len(replies)
    st = client.stats()
    got = st["packs"]["demo"]
    assert got["count"] == n
    assert got["pipeline_us"] == pytest.approx(tf / n, rel=1e-12)
    assert got["models_us"] == pytest.approx(tm / n, rel=1e-12)
    assert got["mean_us"] == pytest.approx((tf + tm) / n, rel=1e-12)
    e = got["energy"]
    assert (e["source"], e["estimated"], e["mw"], e["count"]) == ("estimate", True, active, n)
    # The board's power model x the device's own time for pipeline + models, per inference.
    assert e["mj"] == pytest.approx(active * (tf + tm) / n / 1e6, rel=1e-9)
    assert e["stages"]["pipeline"] == pytest.approx(active * tf / n / 1e6, rel=1e-9)
    assert e["stages"]["models"] == pytest.approx(active * tm / n / 1e6, rel=1e-9)
    assert tf > 0 and e["stages"]["pipeline"] > 0
    # The models' own figures still cover only their INFER span.
    model_uj = sum(m["energy"]["mj"] * m["count"] for m in st["models"].values()) / n
    assert model_uj == pytest.approx(active * tm / n / 1e6, rel=1e-9)
    assert client.stats(reset=True)["packs"] and client.stats()["packs"] == {}


def tensor(window):
    return encode_tensor(Tensor("int16", window.shape, window.tobytes()))


def _hwmon(root, mw):
    ina = root / "hwmon0"
    ina.mkdir(parents=True, exist_ok=True)
    for name, value in (("name", "ina219"), ("in1_input", 5000), ("curr1_input", 250)):
        (ina / name).write_text("%s\n" % value)
    (ina / "power1_input").write_text("%d\n" % (mw * 1000))  # µW


def test_a_sensor_measures_the_whole_classification(tmp_path):
    hwmon = tmp_path / "hwmon"
    _hwmon(hwmon, 1250)
    agent = Agent(str(tmp_path / "state"), power={"source": "sysfs", "root": str(hwmon)})
    for mid, data in MODELS.items():
        name = "demo." + mid
        h = hashlib.sha256(data).digest()
        begin = {"name": name, "format": "tflite", "size": len(data), "sha256": h}
        agent.request(ops.MODEL_BEGIN, begin)
        agent.request(ops.MODEL_CHUNK, {"name": name, "offset": 0, "data": data})
        agent.request(ops.MODEL_COMMIT, {"name": name, "activate": False})
    agent.request(ops.PACK_SET, {"pack": device_pack()})
    w = windows(2)
    agent.request(ops.CLASSIFY, {"x": tensor(w[0])})  # not measuring: no energy
    assert "energy" not in agent.request(ops.STATS, {"reset": True})["packs"]["demo"]
    agent.request(ops.POWER_ENABLE)
    spans = []
    for mw, window in ((1250, w[0]), (990, w[1])):
        _hwmon(hwmon, mw)
        (r,) = agent.request(ops.CLASSIFY, {"x": tensor(window)})["r"]
        spans.append((mw, r["tf"] + r["tm"], r["tf"], r["tm"]))
    e = agent.request(ops.STATS)["packs"]["demo"]["energy"]
    assert (e["source"], e["estimated"], e["count"]) == ("sysfs", False, 2)
    uj = [mw * us / 1000 for mw, us, _, _ in spans]  # each reading x its classification's span
    assert e["mj"] == pytest.approx(sum(uj) / 2 / 1000, rel=1e-9)
    assert e["mw"] == pytest.approx(sum(uj) * 1000 / sum(s[1] for s in spans), rel=1e-9)
    tf = sum(s[2] for s in spans)
    tm = sum(s[3] for s in spans)
    assert e["stages"]["pipeline"] + e["stages"]["models"] == pytest.approx(e["mj"], rel=1e-9)
    assert e["stages"]["pipeline"] == pytest.approx(e["mj"] * tf / (tf + tm), rel=1e-9)
    agent.close()
