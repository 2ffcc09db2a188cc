"""The emulated Cortex-M boards (docs/qemu-boards.md): firmware built and cached by kpdev, the
agent on a 32-bit MCU under QEMU answering as sim-mcu does, flash that survives restarts, a
reset that keeps the board, and one line saying what to install when something is missing."""

import os
import subprocess
import time

import numpy as np
import pytest
from support.agents import QEMU_BOARD, qemu_unavailable
from support.cli import cli, cli_json, kpdev, one_line_error, serve_sim
from support.paths import DATA

from kpdev.host.boards import qemu, simserver
from kpdev.host.boards.catalog import get_board
from kpdev.host.errors import LinkTimeout
from kpdev.protocol import ops

WHY = qemu_unavailable()
needs_qemu = pytest.mark.skipif(WHY is not None, reason=str(WHY))
DENSE = DATA / "dense_int8.tflite"
CONV = DATA / "conv_int8.tflite"


def _env(**changes):
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


# --- without QEMU or the source: one line saying what to do -----------------------------------


def test_a_build_without_the_source_says_which_option_to_pass(tmp_path):
    r = kpdev(
        "firmware",
        "build",
        "qemu-m3-64k",
        env=_env(KPDEV_MICROPYTHON_SRC=None, KPDEV_FIRMWARE_CACHE=str(tmp_path)),
    )
    line = one_line_error(r, 2)
    assert "--source" in line and qemu.SOURCE_ENV in line


def test_a_missing_qemu_or_toolchain_names_the_packages(tmp_path):
    tree = tmp_path / "mp"
    (tree / "ports" / "qemu").mkdir(parents=True)
    (tree / "ports" / "qemu" / "Makefile").write_text("all:\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    env = _env(PATH=str(empty), KPDEV_FIRMWARE_CACHE=str(tmp_path / "fw"))
    r = kpdev("firmware", "build", "qemu-m7-64k", "--source", tree, env=env)
    line = one_line_error(r, 2)
    assert "qemu-system-arm" in line and "arm-none-eabi-gcc" in line
    assert "apt-get install qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi" in line
    # Running the board says the same, and starts nothing.
    r = kpdev("info", "--board", "qemu-m7-64k", env=dict(env, KPDEV_MICROPYTHON_SRC=str(tree)))
    assert "qemu-system-arm" in one_line_error(r, 2)
    assert not simserver.status(get_board("qemu-m7-64k")).get("running")


def test_a_board_that_is_not_emulated_has_no_firmware_to_build():
    r = kpdev("firmware", "build", "sim-mcu")
    assert "not an emulated Cortex-M board" in one_line_error(r, 2)


# --- with QEMU ------------------------------------------------------------------------------


@needs_qemu
def test_firmware_is_cached_by_source_and_settings():
    first = cli_json("firmware", "build", QEMU_BOARD)  # built now or by an earlier test
    again = cli_json("firmware", "build", QEMU_BOARD)
    assert again["cached"] is True and again["firmware"] == first["firmware"]
    assert os.path.getsize(again["firmware"]) > 100_000
    # Another heap size is another firmware (the heap is a static array in it); same CPU: only
    # main.c is compiled again.
    other = get_board("qemu-m3-64k")
    digest = qemu.source_hash(qemu.find_source())
    assert qemu.firmware_key(other, digest) != first["key"]
    built = cli_json("firmware", "build", other.id)
    assert built["firmware"] != first["firmware"]
    assert cli_json("firmware", "build", other.id)["cached"] is True


def _repl(board_id, code, timeout=30):
    # The firmware with no agent options at its address boots to the REPL, as a board whose
    # main.py is gone: run ``code`` there and return what it printed.
    board = get_board(board_id)
    firmware = qemu.ensure_firmware(board)
    argv = [
        qemu.QEMU,
        "-M",
        qemu.machine(board).name,
        "-nographic",
        "-monitor",
        "none",
        "-semihosting",
        "-serial",
        "stdio",
        "-kernel",
        str(firmware),
    ]
    lines = "".join(line + "\r" for line in code.splitlines())
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        time.sleep(0.5)
        proc.stdin.write(lines.encode() + b"\r")
        proc.stdin.flush()
        out = b""
        deadline = time.monotonic() + timeout
        while b"kpdev-done" not in out and time.monotonic() < deadline:
            out += os.read(proc.stdout.fileno(), 4096)
        return out.decode(errors="replace")
    finally:
        proc.kill()
        proc.wait()


@needs_qemu
@pytest.mark.parametrize("board", ["qemu-m3-64k", "qemu-m7-64k"])
def test_the_board_is_a_32_bit_mcu_whose_ticks_us_never_go_back(board):
    code = (
        "import sys, time, os\n"
        "t = time.ticks_us\n"
        "p = t(); back = 0\n"
        "for i in range(20000):\n"
        " n = t(); back += time.ticks_diff(n, p) < 0; p = n\n"
        "\n"
        "r = len(set(os.urandom(8) for i in range(20)))\n"
        "print('maxsize', sys.maxsize, 'back', back, 'rand', r)\n"
        "print('kpdev' + '-done')\n"
    )
    out = _repl(board, code)
    assert "maxsize 2147483647 back 0 rand 20" in out, out


def _infer(board, model, x, tmp_path):
    out = tmp_path / f"{board}-{model.stem}.npy"
    cli("deploy", model, "--name", model.stem, "--board", board)
    cli("infer", "--board", board, "-m", model.stem, "-i", x, "-o", out)
    return np.load(out)


@needs_qemu
def test_deploy_and_infer_give_what_sim_mcu_gives_and_files_survive_a_restart(tmp_path):
    rng = np.random.default_rng(7)
    xd = tmp_path / "xd.npy"
    np.save(xd, rng.integers(-128, 128, (12, 1, 16)).astype(np.int8))
    xc = tmp_path / "xc.npy"
    np.save(xc, rng.integers(-128, 128, (1, 1, 16, 16, 1)).astype(np.int8))
    for model, x in ((DENSE, xd), (CONV, xc)):
        want = _infer("sim-mcu", model, x, tmp_path)
        got = _infer(QEMU_BOARD, model, x, tmp_path)
        assert got.dtype == want.dtype and np.array_equal(got, want), model.stem
    info = cli_json("info", "--board", QEMU_BOARD)
    assert info["platform"] == "qemu" and info["runtime"] == "micropython"
    assert info["memory"]["heap_total"] <= get_board(QEMU_BOARD).ram_kb * 1024
    # The flash is a file in the board's state directory: models stay when QEMU stops.
    cli("sim", "stop", QEMU_BOARD)
    names = [m["name"] for m in cli_json("models", "--board", QEMU_BOARD)["models"]]
    assert sorted(names) == ["conv_int8", "dense_int8"]
    # A reboot is a reset of the emulated board: RAM cleared, the board (and its pipes) kept.
    time.sleep(2.0)
    before = cli_json("stats", "--board", QEMU_BOARD)
    assert cli_json("reboot", "--board", QEMU_BOARD)["rebooting"] is True
    after = cli_json("stats", "--board", QEMU_BOARD)
    # HELLO and STATS, and maybe HELLO once more: sent again while the board was booting.
    assert after["uptime_ms"] < before["uptime_ms"] and after["frames_in"] <= 3
    st = simserver.status(get_board(QEMU_BOARD))
    assert st["reboots"] == 1 and st["agent_starts"] == 2
    assert len(cli_json("models", "--board", QEMU_BOARD)["models"]) == 2


@needs_qemu
def test_a_reset_with_no_supervisor_restarts_qemu_on_the_same_pipes(agents):
    # An agent on its own pipes (not a background board): REBOOT resets the board through
    # machine.reset(), and the host-side process starts QEMU again with the same stdin/stdout.
    agent = agents.start(QEMU_BOARD)
    client = agent.client()
    client.upload("m", DENSE.read_bytes(), "tflite")
    time.sleep(2.0)  # longer than a reset and boot take, so that the uptime shows the reset
    up = client.stats()["uptime_ms"]
    assert client.request(ops.REBOOT, {})["rebooting"] is True
    client.timeout = 3.0  # a HELLO sent while the board resets is lost: ask again
    deadline = time.monotonic() + 30
    while True:
        try:
            info = client.hello()
            break
        except LinkTimeout:
            assert time.monotonic() < deadline, agent.log()
    assert agent.alive() and info["uptime_ms"] < up
    assert [m["name"] for m in client.models()["models"]] == ["m"]
    assert "reset" in agent.log()
    client.close()
    assert agent.stop() == 0


@needs_qemu
def test_served_on_a_pty_as_a_usb_board_appears():
    proc, port = serve_sim(QEMU_BOARD, "--listen", "pty")
    try:
        info = cli_json("info", "--port", port)
        assert info["board"] == QEMU_BOARD and info["platform"] == "qemu"
    finally:
        proc.terminate()
        proc.wait(10)


@needs_qemu
def test_deterministic_mode_labels_times_as_instruction_counts(tmp_path):
    board = "qemu-m3-192k-icount"
    x = tmp_path / "x.npy"
    np.save(x, np.arange(32, dtype=np.int8).reshape(2, 1, 16))
    cli("deploy", DENSE, "--name", "d", "--board", board)
    clock = {"kind": "icount", "ns_per_instruction": 32}
    assert cli_json("info", "--board", board)["clock"] == clock
    doc = cli_json("infer", "--board", board, "-m", "d", "-i", x)
    assert doc["clock"] == clock and len(doc["device_us"]) == 2
    text = " ".join(cli("infer", "--board", board, "-m", "d", "-i", x).stdout.split())
    assert "instructions" in text and "virtual" in text and "not measured" in text
    stats = cli_json("stats", "--board", board)
    assert stats["clock"] == clock and stats["models"]["d"]["count"] == 4
    assert "µs of virtual time" in " ".join(cli("stats", "--board", board).stdout.split())
    # A board on a measured clock says nothing of the kind.
    assert "clock" not in cli_json("info", "--board", QEMU_BOARD)
