"""``kpdev pack build --learner`` and ``kpdev learn`` as a user runs them on the simulated boards:
a whole session with its log and plot, save / info / reset / export, the exported pack deployed
to another board, and the one-line refusals of bad requests.
"""

import importlib.util
import json
from pathlib import Path

import pytest
from support.cli import PNG, cli, cli_json, kpdev, one_line_error
from support.paths import DEMO

from kpdev.host.client.session import open_session
from kpdev.host.packs.pack import read_pack

DATASET = DEMO / "basicmotions.npz"
PIPELINE = DEMO / "basicmotions_pipeline.yml"
BINARY = DEMO / "basicmotions_binary.yml"


def build(path, *args):
    return cli_json("pack", "build", path, "--pipeline", PIPELINE, "--dataset", DATASET, *args)


def test_a_session_on_sim_mcu_then_export_and_deploy_on_sim_linux(tmp_path):
    pack = tmp_path / "mem.kp"
    summary = build(pack, "--learner", "memory", "-L", "per_class=8", "-L", "k=1")
    assert summary["learning"]["learner"] == "memory" and summary["models"] == []
    assert summary["learning"]["options"]["per_class"] == 8
    # Before it learned anything the learner answers no class: scored, not a crash.
    ev0 = cli_json("eval", pack, "-b", "sim-linux", "-d", DATASET, "-o", tmp_path / "e0.json")
    assert ev0["results"]["classification"]["accuracy"] == 0.0
    assert set(ev0["results"]["predicted"]) == {"(none)"}
    session = (
        "learn", "run", pack, "--board", "sim-mcu", "-d", DATASET, "--shots", "4", "--rounds", "2",
        "--seed", "3",
    )  # fmt: skip
    # Learned in RAM only: the running board holds it from one command to the next, as a
    # plugged-in board does, and a reboot loses it.
    log = cli_json(*session, "--out", tmp_path / "ram")["log"]
    assert "saved" not in log
    info = cli_json("learn", "info", "--board", "sim-mcu")
    assert info["samples"] == 32 and not info["saved"] and info["dirty"]
    assert cli_json("reboot", "--board", "sim-mcu")["rebooting"] is True
    assert cli_json("learn", "info", "--board", "sim-mcu")["samples"] == 0
    # --save keeps it across a reboot.
    out = tmp_path / "session"
    log = cli_json(*session, "--save", "--out", out)["log"]
    assert [r["shots_per_class"] for r in log["rows"]] == [0, 4, 8]
    assert log["rows"][-1]["accuracy"] >= 0.9 and log["board"] == "sim-mcu"
    assert log["saved"]["samples"] == 32
    written = json.loads((out / "session.json").read_text())
    assert written["session"] == log["session"] and written["curve"] == log["curve"]
    assert (out / "learning_curve.png").read_bytes().startswith(PNG)
    # session.json is a report input: its rounds, as the log holds them.
    assert written["kind"] == "kpdev-learn-session"
    made = cli_json("report", out / "session.json", "-o", tmp_path / "rep")
    md = Path(made["markdown"]).read_text()
    assert f"## Learning session: sim-mcu / {written['pack']['name']} / {log['session']}" in md
    last = log["rows"][-1]
    assert f"| 2 | 8 | 32 | {last['learn_s']:.3f} |" in md
    cli_json("reboot", "--board", "sim-mcu")
    info = cli_json("learn", "info", "--board", "sim-mcu")
    assert info["restored"] == "saved" and info["samples"] == 32
    assert info["session"] == log["session"] and info["state"]["counts"] == [8, 8, 8, 8]
    exported = tmp_path / "learned.kp"
    meta = cli_json("learn", "export", "--board", "sim-mcu", "--out", exported)
    assert meta["learned"]["session"] == log["session"] and meta["learned"]["board"] == "sim-mcu"
    learned = read_pack(exported)
    assert learned.learning["learned"]["samples"] == 32
    # The learned pack on another board, freshly deployed, scores what the session scored.
    ev = cli_json(
        "eval", exported, "--board", "sim-linux", "-d", DATASET, "--seed", "3",
        "-o", tmp_path / "eval.json",
    )  # fmt: skip
    assert ev["results"]["classification"]["accuracy"] == log["rows"][-1]["accuracy"]
    # The stream of a recording: the learned pack on a device and on the host agree.
    walk = DEMO / "basicmotions_walk.npz"
    device = cli_json("recognize", exported, "--board", "sim-linux", "--signal", walk)
    host = cli_json("recognize", exported, "--platform", "host", "--signal", walk)
    assert [w["class"] for w in device["windows"]] == [w["class"] for w in host["windows"]]
    assert {w["class"] for w in host["windows"]} <= set(learned.learning["classes"])
    # reset: back to the pack's own (empty) learner, saved state gone.
    reset = cli_json("learn", "reset", "--board", "sim-mcu")
    assert reset["samples"] == 0 and not reset["saved"]


@pytest.mark.skipif(importlib.util.find_spec("akida") is None, reason="akida not installed")
def test_class_incremental_session_with_akida_on_sim_linux(tmp_path):
    pack = tmp_path / "ak.kp"
    cli(
        "pack", "build", pack, "--pipeline", BINARY, "--dataset", DATASET, "--learner", "akida",
        "--classes", "Standing,Walking", "--learn-shots", "5",
    )  # fmt: skip
    manifest = read_pack(pack).manifest
    assert manifest["learning"]["input"]["encoding"]["kind"] == "thermometer"
    assert manifest["models"][0]["format"] == "fbz"
    result = cli_json(
        "learn", "run", pack, "--board", "sim-linux", "-d", DATASET, "--new-classes",
        "Running,Badminton", "--shots", "5", "--out", tmp_path / "s",
    )  # fmt: skip
    log = result["log"]
    assert log["labels"] == ["Standing", "Walking", "Running", "Badminton"]
    assert log["new_classes"] == ["Running", "Badminton"]
    end = log["rows"][-1]
    assert end["accuracy"] >= 0.85
    assert min(end["per_class"].values()) >= 0.7
    exported = tmp_path / "ak-learned.kp"
    cli("learn", "export", "--board", "sim-linux", "--out", exported)
    learned = read_pack(exported)
    assert learned.learning["classes"] == log["labels"]
    assert learned.model("learner")["outputs"][0]["shape"][-1] == 4  # neurons added on device


def test_bad_requests_are_one_line_errors(tmp_path):
    pack = tmp_path / "two.kp"
    build(pack, "--learner", "memory", "--classes", "Standing,Walking")
    r = kpdev("learn", "run", pack, "-b", "sim-linux", "-d", DATASET, "--new-classes", "Walking")
    assert "knows 'Walking' already" in one_line_error(r, 2)
    r = kpdev("learn", "run", pack, "-b", "sim-linux", "-d", DATASET, "--classes", "Running")
    assert "does not know 'Running'" in one_line_error(r, 2)
    r = kpdev("learn", "run", pack, "-b", "sim-linux", "-d", DATASET, "--new-classes", "Jumping")
    assert "'Jumping' is not in" in one_line_error(r, 2)
    # A plan the data cannot meet is refused before the device's active pack is replaced.
    other = tmp_path / "other.kp"
    cli("pack", "build", other, "-m", DEMO / "basicmotions_mlp.tflite", "--name", "other",
        "-c", "Standing,Running,Walking,Badminton", "--pipeline", PIPELINE)  # fmt: skip
    cli("deploy", other, "-b", "sim-linux")
    r = kpdev("learn", "run", pack, "-b", "sim-linux", "-d", DATASET, "--shots", "30")
    assert "needs 30" in one_line_error(r, 2)
    with open_session("sim-linux") as c:
        assert c.pack_get()["name"] == "other"
    r = kpdev("learn", "run", DEMO / "nope.kp", "-b", "sim-linux", "-d", DATASET)
    assert "no such file" in one_line_error(r, 2)
    plain = tmp_path / "plain.kp"
    cli("pack", "build", plain, "-m", DEMO / "basicmotions_mlp.tflite", "-c",
        "Standing,Running,Walking,Badminton", "--pipeline", PIPELINE)  # fmt: skip
    r = kpdev("learn", "run", plain, "-b", "sim-linux", "-d", DATASET)
    assert "has no learner" in one_line_error(r, 2)
    r = kpdev("pack", "build", tmp_path / "x.kp", "--learner", "akida", "--pipeline", PIPELINE,
              "--dataset", DATASET)  # fmt: skip
    assert "binary input" in one_line_error(r, 2)
    r = kpdev("pack", "build", tmp_path / "x.kp", "--learner", "memory", "-L", "k=0",
              "--pipeline", PIPELINE, "--dataset", DATASET)  # fmt: skip
    assert "memory learner settings: k must be" in one_line_error(r, 2)
    r = kpdev("learn", "export", "--board", "sim-mcu-64k")
    assert "--pack" in one_line_error(r, 2)
    # The device's own refusal: a pack without a learner deployed, then `learn info`.
    cli("deploy", plain, "--board", "sim-linux")
    r = kpdev("learn", "info", "--board", "sim-linux")
    assert "no learner" in one_line_error(r, 3)
