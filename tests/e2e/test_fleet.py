"""Fleets of simulated boards as a user runs them: ``sim-mcu*2`` + ``sim-linux`` evaluating the
demo pack --each and --shard, checked against single-board runs of the same samples, and a board
whose agent is killed (SIGKILL) in the middle of a sharded run."""

import json
import os
import signal
import threading
from pathlib import Path

import pytest
from support.cli import kpdev

from kpdev.host.boards import simserver
from kpdev.host.boards.catalog import get_board
from kpdev.host.cli.demo import DEMO, _build

DATA = str(DEMO / "basicmotions.npz")
FLEET = ["--board", "sim-mcu*2", "--board", "sim-linux"]


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("fleet-pack"))


def run_json(*args, timeout=240):
    r = kpdev(*args, "--json", timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def single(pack, tmp_path_factory):
    """One-board runs of the same test split, on each kind of board of the fleet."""
    out = tmp_path_factory.mktemp("single")
    return {
        board: run_json(
            "eval", pack, "--dataset", DATA, "--board", board, "-o", out / f"{board}.json"
        )
        for board in ("sim-mcu", "sim-linux")
    }


def test_each_gives_every_board_the_single_board_results(pack, single, tmp_path):
    doc = run_json("eval", pack, "--dataset", DATA, *FLEET, "--each", "-o", tmp_path / "f.json")
    assert doc["kind"] == "kpdev-fleet" and doc["mode"] == "each"
    assert [m["member"] for m in doc["members"]] == ["sim-mcu", "sim-mcu#2", "sim-linux"]
    assert doc["finished"] == 3 and doc["failed"] == 0
    for m in doc["members"]:
        run = m["measurements"]
        # each instance is its own agent, reporting its own id
        assert run["board"]["name"] == m["member"]
        alone = single[m["member"].split("#")[0]]["results"]
        assert run["results"]["predicted"] == alone["predicted"]
        assert run["results"]["classification"] == alone["classification"]
    # the second instance keeps its own storage, apart from the first
    states = {simserver.status(get_board(b))["state"] for b in ("sim-mcu", "sim-mcu#2")}
    assert len(states) == 2
    assert json.loads((tmp_path / "f.json").read_text())["members"][1]["status"] == "ok"


def test_shard_merges_every_sample_once_in_order(pack, single, tmp_path):
    doc = run_json(
        "eval", pack, "--dataset", DATA, *FLEET, "--shard", "--chunk", "4", "-o", tmp_path / "s"
    )
    n = doc["samples"]
    merged = doc["merged"]["results"]
    alone = single["sim-mcu"]["results"]
    assert merged["predicted"] == alone["predicted"]
    assert merged["classification"] == alone["classification"]
    assert len(merged["latency_samples_us"]) == n and None not in merged["latency_samples_us"]
    # every sample by exactly one member, and the members' counts add up to the split
    assert None not in merged["by_member"] and len(merged["by_member"]) == n
    assert sum(m["samples"] for m in doc["members"]) == n
    assert doc["shard"]["missing_samples"] == 0 and doc["shard"]["done_samples"] == n


@pytest.mark.parametrize(
    "sig, why",
    [
        (signal.SIGKILL, "simulated sim-mcu#2 stopped"),
        (signal.SIGSTOP, "no reply from the device"),
    ],
    ids=["killed", "hung"],
)
def test_a_board_killed_mid_shard_hands_its_chunk_on(pack, single, tmp_path, sig, why):
    # In-process, so the signal lands at a known point: after sim-mcu#2 finished its first
    # chunk, its agent process gets SIGKILL (the link breaks on the next request) or SIGSTOP (it
    # stops answering: the request times out).
    from kpdev.host.evaluation.evaluate import test_split
    from kpdev.host.evaluation.report import write_report
    from kpdev.host.fleet.evaluate import Job, eval_shard
    from kpdev.host.fleet.runner import Watch
    from kpdev.host.fleet.select import selection
    from kpdev.host.packs.pack import read_pack

    p = read_pack(pack)
    ds, test = test_split(DATA, None, None, 0, p.manifest["pipeline"])
    job = Job(
        pack=p,
        target=Path(pack),
        ds=ds,
        test=test,
        skipped={},
        inputs={"dataset": DATA, "seed": 0},
    )
    killed = {}
    gone = threading.Event()

    class KillAfterFirstChunk(Watch):
        def progress(self, member, done, total):
            if member.name == "sim-mcu#2" and not killed:
                pid = simserver.status(get_board("sim-mcu#2"))["agent_pid"]
                os.kill(pid, sig)
                killed["pid"] = pid
                gone.set()
            elif member.name != "sim-mcu#2":
                # the others pause after a chunk until the kill, so sim-mcu#2 gets one
                gone.wait(60)

    members = selection(["sim-mcu*2", "sim-linux"]).members
    try:
        doc = eval_shard(members, job, chunk=2, timeout=2.0, watch=KillAfterFirstChunk())
    finally:
        if sig == signal.SIGSTOP and killed:
            os.kill(killed["pid"], signal.SIGCONT)
    assert killed, "sim-mcu#2 never finished a chunk"
    rows = {m["member"]: m for m in doc["members"]}
    assert rows["sim-mcu#2"]["status"] == "failed"
    assert why in rows["sim-mcu#2"]["reason"]
    assert rows["sim-mcu"]["status"] == rows["sim-linux"]["status"] == "ok"
    assert doc["shard"]["requeued"] >= 1 and doc["shard"]["missing_samples"] == 0
    # what it finished before the kill stays counted once; nothing is lost or doubled
    n = len(test)
    merged = doc["merged"]["results"]
    assert rows["sim-mcu#2"]["samples"] == 2
    assert sum(r["samples"] for r in rows.values()) == n
    assert None not in merged["by_member"]
    assert merged["predicted"] == single["sim-mcu"]["results"]["predicted"]
    # the report names the failed board and why
    f = tmp_path / "fleet.json"
    f.write_text(json.dumps(doc))
    made = write_report([json.loads(f.read_text())], tmp_path / "report")
    text = Path(made["markdown"]).read_text()
    assert "Fleet:" in text and f"sim-mcu#2: {why}" in text


def test_bad_selection_is_one_clear_line(pack):
    r = kpdev("eval", pack, "--dataset", DATA, "--board", "rpi-pico*2", "--json")
    assert r.returncode == 2 and "only simulated boards have instances" in r.stderr
    r = kpdev("eval", pack, "--dataset", DATA, "--fleet", "nosuch", "--json")
    assert r.returncode == 2 and "no fleet named 'nosuch'" in r.stderr


def test_each_reports_a_board_that_fails_and_goes_on(pack, single, tmp_path):
    doc = run_json("eval", pack, "--dataset", DATA, "--board", "sim-linux", "--port",
                   tmp_path / "no-such-tty", "-o", tmp_path / "f.json")  # fmt: skip
    rows = {m["member"]: m for m in doc["members"]}
    bad = rows[str(tmp_path / "no-such-tty")]
    assert bad["status"] == "failed" and "no-such-tty" in bad["reason"]
    assert bad["measurements"] is None and bad["missing"] == doc["samples"]
    good = rows["sim-linux"]["measurements"]["results"]
    assert good["predicted"] == single["sim-linux"]["results"]["predicted"]
    # no board finished: one line and a non-zero exit
    r = kpdev("eval", pack, "--dataset", DATA, "-p", tmp_path / "a", "-p", tmp_path / "b",
              "-o", tmp_path / "g.json")  # fmt: skip
    assert r.returncode == 2 and "no board of the fleet finished" in r.stderr
