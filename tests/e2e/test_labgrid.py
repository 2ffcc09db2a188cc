"""Boards of a labgrid lab, on this machine: a real labgrid coordinator and exporter, two
simulated boards served on ptys and exported through ser2net as places tagged with their board
type; kpdev lists, acquires, uses and releases them through host/fleet/labgrid.py."""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from support.cli import kpdev, serve_sim
from support.paths import DATA
from support.reference import reference

from kpdev.host.client.session import open_session
from kpdev.host.errors import BoardError, UsageError
from kpdev.host.fleet import labgrid

BIN = Path(sys.executable).parent
PLACES = {"kpdev-test-mcu": "sim-mcu", "kpdev-test-linux": "sim-linux"}
PATTERN = "kpdev-test-*"
MODEL = DATA / "dense_int8.tflite"
DEMO = DATA.parent.parent / "host" / "demo"


def _tool(name):
    return shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port, proc, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{what} did not listen on port {port} in {timeout} s")


def _stop(proc):
    # Each tool runs in a process group of its own: the exporter's ser2net children go with it.
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # a ser2net left behind
    except ProcessLookupError:
        pass


def _make_places(address, ports):
    """The places of the lab, made as `labgrid-client create / add-match / set-tags` make them
    (the same coordinator calls, in this process: six labgrid-client runs take ~9 s)."""
    import asyncio

    from labgrid.remote.client import ensure_event_loop, start_session
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

    # On labgrid's loop for this thread, which kpdev's sessions use as well (grpc.aio stays
    # bound to the loop it first ran on: it is not closed).
    loop = ensure_event_loop()
    asyncio.set_event_loop(loop)
    session = start_session(address, loop=loop)
    try:
        for name, board in PLACES.items():
            for call, request in (
                (session.stub.AddPlace, pb2.AddPlaceRequest(name=name)),
                (
                    session.stub.AddPlaceMatch,
                    pb2.AddPlaceMatchRequest(
                        placename=name, pattern=f"kpdev-lab/{name}/NetworkSerialPort"
                    ),
                ),
                (
                    session.stub.SetPlaceTags,
                    pb2.SetPlaceTagsRequest(placename=name, tags={"board": board}),
                ),  # fmt: skip
            ):
                session.loop.run_until_complete(call(request))
        session.loop.run_until_complete(session.sync_with_coordinator())
    finally:
        session.loop.run_until_complete(session.stop())
        session.loop.run_until_complete(session.close())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A coordinator and an exporter on localhost (free ports, a temporary directory), two
    simulated boards on ptys exported as places: the coordinator's address."""
    pytest.importorskip("labgrid", reason="labgrid is not installed: pip install 'kpdev[fleet]'")
    for tool in ("labgrid-coordinator", "labgrid-exporter"):
        if not _tool(tool):
            pytest.skip(f"{tool} not found (pip install 'kpdev[fleet]')")
    if not (shutil.which("ser2net") or os.path.exists("/usr/sbin/ser2net")):
        pytest.skip("ser2net not found: apt-get install ser2net (labgrid's exporter serves ports)")
    root = tmp_path_factory.mktemp("lab")
    sims, procs = [], []
    try:
        # Both boards start at once (sim-mcu's first start stages its agent: the slow part).
        def serve(board):
            proc, pty = serve_sim(board, "--listen", "pty")
            sims.append(proc)
            return pty

        with ThreadPoolExecutor(2) as pool:
            ptys = dict(zip(PLACES, pool.map(serve, PLACES.values()), strict=True))
        port = _free_port()
        address = f"127.0.0.1:{port}"
        log = open(root / "coordinator.log", "w")
        coord = subprocess.Popen(
            [_tool("labgrid-coordinator"), "--listen", address],
            cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        procs.append(coord)
        _wait_listening(port, coord, "labgrid-coordinator")
        config = root / "exporter.yaml"
        config.write_text(
            "".join(
                f"{name}:\n  RawSerialPort:\n    port: {pty}\n    speed: 115200\n"
                for name, pty in ptys.items()
            )
        )
        log = open(root / "exporter.log", "w")
        exporter = subprocess.Popen(
            [_tool("labgrid-exporter"), "--coordinator", address, "--name", "kpdev-lab",
             "--hostname", "127.0.0.1", str(config)],
            cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        procs.append(exporter)
        _make_places(address, ptys)
        deadline = time.monotonic() + 20
        while True:  # until the exporter has published both ports
            found = labgrid.places([PATTERN], address)
            if len(found) == 2 and all(p.speed for p in found):
                break
            assert time.monotonic() < deadline, (found, (root / "exporter.log").read_text())
            time.sleep(0.2)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)
        for proc in sims:
            proc.terminate()
            proc.wait(10)


@pytest.fixture
def user(monkeypatch):
    """Who this test is to labgrid ($LG_HOSTNAME/$LG_USERNAME, as labgrid-client reads them)."""

    def be(name):
        monkeypatch.setenv("LG_HOSTNAME", "testhost")
        monkeypatch.setenv("LG_USERNAME", name)
        return f"testhost/{name}"

    return be


def owners(address):
    return {p.name: p.owner for p in labgrid.places([PATTERN], address)}


def test_places_lists_them_free_with_their_board_tags(lab):
    found = labgrid.places([PATTERN], lab)
    assert [(p.name, p.board, p.owner, p.speed) for p in found] == [
        ("kpdev-test-linux", "sim-linux", None, 115200),
        ("kpdev-test-mcu", "sim-mcu", None, 115200),
    ]
    # ser2net starts, and so has a port, only for an acquired place.
    assert all(p.url is None for p in found)
    assert [p.name for p in labgrid.places(["kpdev-test-mcu", PATTERN], lab)] == [
        "kpdev-test-mcu",
        "kpdev-test-linux",
    ]


def test_acquired_places_answer_over_rfc2217_and_are_released(lab, user):
    alice = user("alice")
    model = MODEL.read_bytes()
    x = np.arange(16, dtype=np.int8).reshape(1, 16)
    with labgrid.acquired([PATTERN], lab) as held:
        assert {p.name: p.owner for p in held} == dict.fromkeys(PLACES, alice)
        assert owners(lab) == dict.fromkeys(PLACES, alice)
        for p in held:
            assert p.url.startswith("rfc2217://127.0.0.1:"), p.url
            with open_session(port=p.url, timeout=20) as client:
                assert client.info()["board"] == p.board == PLACES[p.name]
                client.upload("lg", model, "tflite")
                (y,), _ = client.infer(x, model="lg")
            np.testing.assert_array_equal(y, reference(model, x))

        # Someone else cannot have them while they are held: one clear line naming the owner.
        user("bob")
        with pytest.raises(labgrid.PlaceBusy) as e:
            with labgrid.acquired(["kpdev-test-mcu"], lab):
                pass
        assert str(e.value) == (
            f"place kpdev-test-mcu is acquired by {alice}; wait or ask them to release it "
            "(labgrid-client -p kpdev-test-mcu release)"
        )
        user("alice")
    assert owners(lab) == dict.fromkeys(PLACES)


def test_acquiring_is_all_or_none(lab, user):
    alice = user("alice")
    with labgrid.acquired(["kpdev-test-mcu"], lab):
        user("bob")
        # The free place is not taken either when another one of the selection is held.
        with pytest.raises(labgrid.PlaceBusy, match=f"acquired by {alice}"):
            with labgrid.acquired([PATTERN], lab):
                pass
        assert owners(lab) == {"kpdev-test-mcu": alice, "kpdev-test-linux": None}
        user("alice")
    assert owners(lab) == dict.fromkeys(PLACES)


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_error_inside_releases_the_places(lab, user, error):
    user("alice")
    with pytest.raises(error):
        with labgrid.acquired([PATTERN], lab):
            assert set(owners(lab).values()) == {"testhost/alice"}
            raise error("stop")
    assert owners(lab) == dict.fromkeys(PLACES)


def test_ctrl_c_releases_the_places(lab, tmp_path):
    # A real SIGINT to a program that holds the places, as a user's Ctrl-C.
    script = tmp_path / "hold.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys, time
        from kpdev.host.fleet import labgrid
        with labgrid.acquired([{PATTERN!r}], {lab!r}) as held:
            print(len(held), flush=True)
            time.sleep(60)
        """)
    )
    env = dict(os.environ, LG_USERNAME="carol", LG_HOSTNAME="testhost")
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "2", proc.stderr.read()
        assert owners(lab) == dict.fromkeys(PLACES, "testhost/carol")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "KeyboardInterrupt" in err
    assert owners(lab) == dict.fromkeys(PLACES)


def test_a_place_held_by_this_user_before_is_used_and_left_held(lab, user):
    # As after `labgrid-client -p P acquire`: kpdev uses it and leaves it to the user.
    user("alice")
    with labgrid.acquired(["kpdev-test-linux"], lab):
        with labgrid.acquired([PATTERN], lab) as held:
            assert len(held) == 2
        assert owners(lab) == {"kpdev-test-mcu": None, "kpdev-test-linux": "testhost/alice"}
    assert owners(lab) == dict.fromkeys(PLACES)


def test_many_sessions_in_one_thread_leave_grpc_on_no_closed_loop(lab, caplog):
    # One session per call, as a program that lists and acquires over and over: grpc.aio's
    # poller must never deliver its events to a loop closed by an earlier session (it did, and
    # the next connection now and then failed with "unexpected grpc error").
    caplog.set_level(logging.ERROR, logger="asyncio")
    for _ in range(60):
        assert len(labgrid.places([PATTERN], lab)) == 2
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def test_a_pattern_that_matches_no_place_lists_the_places(lab):
    with pytest.raises(UsageError) as e:
        labgrid.places(["nothing-*"], lab)
    assert str(e.value) == (
        f"place pattern 'nothing-*' matches no place on the labgrid coordinator at {lab}; "
        "its places: kpdev-test-linux, kpdev-test-mcu"
    )


def test_no_coordinator_is_one_clear_line():
    pytest.importorskip("labgrid", reason="labgrid is not installed: pip install 'kpdev[fleet]'")
    address = f"127.0.0.1:{_free_port()}"
    t = time.monotonic()
    with pytest.raises(BoardError) as e:
        labgrid.places(["*"], address)
    assert time.monotonic() - t < 10
    assert str(e.value) == (
        f"cannot reach the labgrid coordinator at {address} (Connection refused); is "
        "labgrid-coordinator running there? (LG_COORDINATOR or kpdev config set "
        "labgrid-coordinator)"
    )


def test_the_coordinator_comes_from_the_option_the_environment_or_the_config(monkeypatch):
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    with pytest.raises(UsageError, match="kpdev config set labgrid-coordinator HOST"):
        labgrid.coordinator()
    r = kpdev("config", "set", "labgrid-coordinator", "lab.example:20408")
    assert r.returncode == 0, r.stderr
    assert labgrid.coordinator() == "lab.example:20408"
    monkeypatch.setenv("LG_COORDINATOR", "other:1")
    assert labgrid.coordinator() == "other:1"
    assert labgrid.coordinator("given:2") == "given:2"


def test_without_labgrid_installed_the_error_says_how_to_install_it(monkeypatch):
    for name in list(sys.modules):
        if name == "labgrid" or name.startswith("labgrid."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "labgrid", None)  # import labgrid raises ImportError
    with pytest.raises(UsageError) as e:
        labgrid.places(["*"], "127.0.0.1:1")
    assert str(e.value) == "labgrid is not installed: pip install 'kpdev[fleet]'"


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    # The fleet branch's `kpdev eval --place ... --shard`: this test runs once both are merged.
    if "--place" not in kpdev("eval", "--help").stdout:
        pytest.skip("kpdev eval has no --place yet: runs once the fleet branch is merged")
    pytest.importorskip("tflite_micro")
    path = tmp_path_factory.mktemp("pack") / "bm.kp"
    r = kpdev(
        "pack", "build", path, "-m", f"main={DEMO / 'basicmotions_mlp.tflite'}",
        "-c", "Standing,Running,Walking,Badminton",
        "--pipeline", DEMO / "basicmotions_pipeline.yml",
        "--dataset", DEMO / "basicmotions.npz", "--name", "basicmotions",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return path


def test_eval_place_shard_acquires_runs_and_releases(lab, pack, tmp_path, user):
    data = DEMO / "basicmotions.npz"
    out = tmp_path / "merged.json"
    env = dict(os.environ, LG_COORDINATOR=lab, LG_USERNAME="alice", LG_HOSTNAME="testhost")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kpdev.host.cli", "eval", str(pack), "--place", PATTERN,
         "--shard", "-d", str(data), "-o", str(out), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while set(owners(lab).values()) != {"testhost/alice"} and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # While the run holds them, another user is refused, by name.
        user("bob")
        with pytest.raises(labgrid.PlaceBusy, match="is acquired by testhost/alice"):
            with labgrid.acquired([PATTERN], lab):
                pass
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert owners(lab) == dict.fromkeys(PLACES)
    doc = json.loads(stdout)
    assert doc["finished"] == 2 and doc["failed"] == 0, doc["members"]
    # Every sample of the split once, over both boards.
    merged = json.loads(out.read_text())["merged"]["results"]
    assert merged["classification"]["n"] == doc["samples"] == len(merged["predicted"])
    assert sum(m["samples"] for m in doc["members"]) == doc["samples"]
