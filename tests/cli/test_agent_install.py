"""`kpdev agent build` and `kpdev agent install`: a board's file tree, booted as a board boots.

A board here is the MicroPython unix port run from the tree: its cwd is the board's flash root
(the unix port's filesystem is the host's) and MICROPYPATH holds the tree's lib only (a board's
/lib).  For `install`, ``FakeBoard`` puts that on a pty the way a board's USB serial appears: its
REPL serves mpremote's raw REPL (the unix port has one), and it imitates the two things a board
does that the unix port does not: running main.py at boot (``micropython -i main.py`` falls back
to the REPL when main.py returns) and coming back after a soft reset (the unix port exits on
Ctrl-D; the harness prints "soft reboot" and starts it again).
"""

import json
import shutil
import subprocess
import sys
import time

import pytest
from support.boards import FakeBoard, board_env
from support.cli import kpdev, runner

from kpdev import accelerators
from kpdev.host.cli.app import app
from kpdev.host.client.client import Client
from kpdev.host.errors import AuthError
from kpdev.host.link.transport import PipeLink, open_url
from kpdev.protocol import ops

KEY = bytes(range(32))


def mpremote(port, *args, timeout=10):
    """Run mpremote on ``port`` without its soft reset (which ends the unix port)."""
    return subprocess.run(
        [sys.executable, "-m", "mpremote", "connect", port, "resume", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def sim_tree(tmp_path_factory, micropython):
    """`kpdev agent build --board sim-mcu --out D --json`: the directory and the report."""
    out = tmp_path_factory.mktemp("tree") / "sim-mcu"
    result = runner.invoke(
        app,
        ["agent", "build", "--board", "sim-mcu", "--out", str(out), "--json"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def _module_file(module):
    # "kpdev.accelerators.x" -> "lib/kpdev/accelerators/x": a module (.mpy) or a package (dir).
    return "lib/" + module.replace(".", "/")


def test_build_lays_out_compiled_device_code_and_main(sim_tree):
    out, report = sim_tree
    paths = {f["path"] for f in report["files"]}
    on_disk = {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and "-state" not in str(p)
    }
    assert paths == on_disk
    assert "main.py" in paths
    lib = paths - {"main.py"}
    assert lib and all(p.startswith("lib/kpdev/") and p.endswith(".mpy") for p in lib)
    for p in lib:  # real mpy-cross output: 'M', .mpy version 6
        assert (out / p).read_bytes()[:2] == b"M\x06", p
    assert {"lib/kpdev/device/agent.mpy", "lib/kpdev/protocol/framing.mpy"} <= lib
    assert not any("/host/" in p for p in lib), "host code on a board"
    # Every backend the board's runtime can use is there; one for another runtime is not.
    for entry in accelerators.BACKENDS.values():
        f = _module_file(entry.module)
        present = f + ".mpy" in lib or f + "/__init__.mpy" in lib
        assert present == (entry.runtime in (None, "micropython")), entry.module
    assert not any("tflite_micro" in p for p in lib)
    assert not any("power_akida" in p or "ndarray" in p for p in lib), "CPython-only code"
    assert "lib/kpdev/device/power_ina.mpy" in lib
    assert report["march"] == "x64" and report["bytes"] == sum(f["size"] for f in report["files"])
    main = (out / "main.py").read_text()
    assert "'--board', 'sim-mcu'" in main and "'--quota', '1048576'" in main
    # The board's power settings from the catalog, as the simulated board gets them.
    assert '\'--power\', \'{"source":"estimate"' in main
    assert "'--max-payload', '2048'" in main and "--key" not in main.split("ARGS =")[1]


def test_build_refuses_a_linux_board(tmp_path):
    r = kpdev("agent", "build", "--board", "sim-linux", "--out", tmp_path / "t")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "sim-linux" in lines[0] and "CPython" in lines[0]
    assert not (tmp_path / "t").exists()


def test_build_source_copies_the_py_files_and_a_key(tmp_path):
    r = kpdev("agent", "build", "-b", "rpi-pico", "-o", tmp_path, "--source", "--key", KEY.hex())
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "lib/kpdev/device/agent.py").is_file()
    assert not (tmp_path / "lib/kpdev/device/agent.py").is_symlink()  # it leaves this machine
    assert not list(tmp_path.rglob("*.mpy"))
    assert KEY.hex() in (tmp_path / "main.py").read_text()


def boot(micropython, root, heap="256K"):
    """Start a board from ``root`` the way a board boots: main.py, on stdin/stdout."""
    return subprocess.Popen(
        [micropython, "-X", f"heapsize={heap}", "main.py"],
        cwd=root,
        env=board_env(root),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )


@pytest.mark.parametrize("heap", ["256K", "64K"])
def test_the_tree_boots_the_agent_like_a_board(sim_tree, micropython, tmp_path, heap):
    root = tmp_path / "board"
    shutil.copytree(sim_tree[0], root)
    proc = boot(micropython, root, heap)
    try:
        client = Client(PipeLink(proc), timeout=10)
        info = client.hello()
        assert info["board"] == "sim-mcu" and info["runtime"] == "micropython"
        assert info["storage"]["quota"] == 1024 * 1024 and info["max_payload"] == 2048
        assert not info["auth"]
        t0 = time.perf_counter()
        assert 0 < client.ping(b"x") <= time.perf_counter() - t0
        assert client.request(ops.POWER_FLOOR)["estimated"] is True  # main.py passed --power
        assert (root / "kpdev-state").is_dir()  # its models live on the board's flash
        # Two Ctrl-C alone end the agent: main.py returns and the board's REPL would follow.
        proc.stdin.write(b"\x03\x03")
        assert proc.wait(10) == 0
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_keyed_tree_serves_the_key_holder_only(micropython, tmp_path):
    r = kpdev("agent", "build", "-b", "sim-mcu-64k", "-o", tmp_path / "tree", "--key", KEY.hex())
    assert r.returncode == 0, r.stderr
    roots = [shutil.copytree(tmp_path / "tree", tmp_path / name) for name in ("b1", "b2")]
    procs = [boot(micropython, root, "64K") for root in roots]  # two boards, two flashes
    try:
        info = Client(PipeLink(procs[0]), KEY, timeout=10).hello()
        assert info["auth"] and info["board"] == "sim-mcu-64k"
        with pytest.raises(AuthError):
            Client(PipeLink(procs[1]), None, timeout=10).hello()
    finally:
        for p in procs:
            p.kill()
            p.wait()


# -- a board on a serial port, for mpremote ---------------------------------------------------
@pytest.fixture
def fake_board(micropython, tmp_path):
    root = tmp_path / "flash"
    root.mkdir()
    board = FakeBoard(micropython, root)
    yield board
    board.close()


def hello(port, key=None):
    client = Client(open_url(port), key, timeout=10)
    try:
        return client.hello()
    finally:
        client.close()


def test_install_puts_the_agent_on_a_board_and_it_answers(fake_board):
    port, root = fake_board.port, fake_board.root
    r = kpdev("agent", "install", "--board", "sim-mcu", "--port", port, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["agent"]["board"] == "sim-mcu" and data["agent"]["runtime"] == "micropython"
    assert data["runtime"]["implementation"] == "micropython" and data["runtime"]["arch"] == "x64"
    assert fake_board.boots == 2  # the soft reset restarted it, main.py started the agent
    copied = {p.relative_to(root).as_posix() for p in (root / "lib").rglob("*") if p.is_file()}
    assert copied == {f["path"] for f in data["files"]} - {"main.py"}
    assert (root / "main.py").is_file() and not any("tflite_micro" in p for p in copied)
    # The regular commands reach it by its port.
    r = kpdev("info", "--port", port, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["board"] == "sim-mcu"

    # Again, over the running agent, now with a key: install stops the agent itself.
    r = kpdev("agent", "install", "-b", "sim-mcu", "-p", port, "--key", KEY.hex(), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["agent"]["auth"] and fake_board.wait_boots(3) == 3
    assert hello(port, KEY)["auth"]


def test_mpremote_needs_agent_stop_to_reach_the_repl(fake_board, sim_tree):
    shutil.copytree(sim_tree[0], fake_board.root, dirs_exist_ok=True)
    fake_board.proc.kill()  # reboot: main.py starts the agent
    assert fake_board.wait_boots(2) == 2
    port = fake_board.port
    assert hello(port)["board"] == "sim-mcu"
    # mpremote's interrupt is CR + one Ctrl-C (mpremote 1.29): the agent takes it as noise and
    # mpremote never sees the raw REPL.  It would give up after 10 s; 2 s are plenty.
    with pytest.raises(subprocess.TimeoutExpired):
        mpremote(port, "exec", "print(6 * 7)", timeout=2)
    assert hello(port)["board"] == "sim-mcu"  # still serving
    # Older mpremote and pyboard.py send CR + two Ctrl-C in one write: not alone, no stop either.
    link = open_url(port)
    link.write(b"\r\x03\x03")
    time.sleep(0.5)
    link.close()
    assert hello(port)["board"] == "sim-mcu"
    r = kpdev("agent", "stop", "--port", port)
    assert r.returncode == 0, r.stderr
    r = mpremote(port, "exec", "print(6 * 7)")
    assert r.returncode == 0 and r.stdout.strip() == "42", r.stderr


def test_install_refuses_a_board_of_another_cpu_before_copying(fake_board):
    r = kpdev("agent", "install", "--board", "rpi-pico", "--port", fake_board.port)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]  # after the progress lines: one line for the error
    assert last.startswith("kpdev: board error:") and "x64" in last and "armv6m" in last
    assert not (fake_board.root / "lib").exists() and not (fake_board.root / "main.py").exists()


def test_install_says_how_to_look_when_the_agent_does_not_answer(micropython, tmp_path):
    root = tmp_path / "flash"
    root.mkdir()
    board = FakeBoard(micropython, root, heap="24K")  # too little heap for the agent
    try:
        r = kpdev("agent", "install", "-b", "sim-mcu", "-p", board.port, "--timeout", "1.5")
    finally:
        board.close()
    assert r.returncode == 4, r.stderr
    assert "did not answer" in r.stderr and f"mpremote connect {board.port} repl" in r.stderr


def test_install_errors_and_dry_run(tmp_path):
    r = kpdev("agent", "install", "-b", "rpi-pico", "-p", tmp_path / "ttyACM9")
    assert r.returncode == 4 and "no such port" in r.stderr and "mpremote devs" in r.stderr
    r = kpdev("agent", "install", "-b", "sim-mcu")
    assert r.returncode == 2 and "simulated" in r.stderr
    r = kpdev("agent", "install", "-b", "sim-mcu-64k", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["dry_run"] and data["port"] is None
    assert data["files"][-1]["path"] == "main.py"
    assert all(f["dest"] == ":" + f["path"] for f in data["files"])
