"""The energy figure of an evaluation is the board's power model (boards.yml) x the very time
span its latency figure reports, computed here from the device's own timings."""

import numpy as np
import pytest
from support.packs import SPEC, device_pack, upload_all, windows
from support.paths import read_data

from kpdev.host.boards.catalog import get_board
from kpdev.host.evaluation.evaluate import evaluate
from kpdev.host.evaluation.report_text import energy_text

CLASSES = ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_pack_energy_covers_pipeline_and_model_graph(agents, board):
    client = agents.start(board).client()
    upload_all(client)
    client.pack_set(device_pack())
    x = windows(10)
    labels = [CLASSES[i % 5] for i in range(len(x))]
    r = evaluate(client, x, labels, classes=CLASSES, pipeline=SPEC, batch=3)
    active = get_board(board).power["active_mw"]
    times = r["latency_samples_us"]  # tf + tm of each CLASSIFY reply
    e = r["energy"]
    assert e["uj_per_inference"] == pytest.approx(active * np.mean(times) / 1000, rel=1e-9)
    assert r["latency_us"]["mean"] == pytest.approx(np.mean(times))
    assert e["estimated"] is True and e["count"] == len(x) and e["mw"] == active
    assert e["method"] == "estimated from the board's power model"
    assert e["span"] == "CLASSIFY (pipeline + model graph)"
    stages = e["stages_uj"]
    assert stages["pipeline"] > 0 and stages["models"] > 0
    assert stages["pipeline"] + stages["models"] == pytest.approx(e["uj_per_inference"])
    assert energy_text(e).endswith("µJ (estimated from the board's power model)")


def test_bare_model_energy_covers_infer(agents):
    client = agents.start("sim-mcu").client()
    client.upload("dense", read_data("dense_int8.tflite"), "tflite", activate=False)
    x = np.random.default_rng(1).integers(-128, 128, size=(6, 1, 16)).astype(np.int8)
    r = evaluate(client, x, ["a"] * 6, classes=CLASSES, model="dense")
    active = get_board("sim-mcu").power["active_mw"]
    e = r["energy"]
    want = active * np.mean(r["latency_samples_us"]) / 1000
    assert e["uj_per_inference"] == pytest.approx(want, rel=1e-9)
    assert e["span"] == "INFER" and e["count"] == 6 and "stages_uj" not in e
