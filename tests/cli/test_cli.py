"""The kpdev CLI as a user runs it: in-process through Typer's CliRunner, and as a subprocess."""

import json
import os
import re

import cbor2
import numpy as np
import pytest
from support.agents import free_port, replies
from support.cli import cli, cli_json, kpdev, serve_sim
from support.paths import DATA, read_data

from kpdev.host.client.client import Client
from kpdev.host.link.transport import open_url
from kpdev.protocol import ops

MODEL = DATA / "dense_int8.tflite"


def reference(x):
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(read_data("dense_int8.tflite"))
    interp.set_input(x, 0)
    interp.invoke()
    return interp.get_output(0)


def test_boards_lists_the_simulated_and_real_boards():
    boards = {b["id"]: b for b in cli_json("boards")}
    assert {"sim-mcu", "sim-mcu-64k", "sim-linux", "rpi-pico", "esp32-s3"} <= set(boards)
    assert boards["sim-mcu-64k"]["ram_kb"] == 64 and boards["sim-mcu-64k"]["storage_kb"] == 256
    assert boards["sim-linux"]["runtime"] == "linux" and boards["sim-mcu"]["simulated"]
    assert "sim-mcu" in cli("boards").stdout


def test_deploy_models_infer_stats_on_sim_linux(tmp_path):
    b = ["--board", "sim-linux"]
    up = cli_json("deploy", MODEL, "--name", "dense", *b)
    assert up["name"] == "dense" and up["active"] and up["backend"] == "tflite_micro"
    assert up["io"]["inputs"][0]["shape"] == [1, 16]
    listed = cli_json("models", *b)
    assert [m["name"] for m in listed["models"]] == ["dense"] and listed["active"] == "dense"

    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, size=(1, 16), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    res = cli_json("infer", "--model", "dense", "--input", tmp_path / "x.npy", *b)
    assert np.array_equal(np.array(res["outputs"][0], dtype=np.int8), reference(x))

    # A batch along axis 0 is pipelined; the saved outputs match the reference row by row.
    xs = rng.integers(-128, 128, size=(5, 1, 16), dtype=np.int8)
    np.save(tmp_path / "xs.npy", xs)
    cli("infer", "-i", tmp_path / "xs.npy", "-o", tmp_path / "ys.npy", *b)
    ys = np.load(tmp_path / "ys.npy")
    assert ys.shape == (5, 1, 4)
    for xi, yi in zip(xs, ys, strict=True):
        assert np.array_equal(yi, reference(xi))

    st = cli_json("stats", *b)  # each command is its own agent session: counts start over
    assert st["frames_in"] >= 1 and st["errors"] == {}
    info = cli_json("model", "info", "dense", *b)
    assert info["sha256"] == up["sha256"] and info["io"]["outputs"][0]["shape"] == [1, 4]
    assert "tflite_micro" in cli("model", "info", *b).stdout


def test_stats_counts_inferences_within_one_session(tmp_path):
    from kpdev.host.client.session import open_session

    with open_session("sim-linux") as c:
        c.upload("s", read_data("dense_int8.tflite"), "tflite")
        for _ in range(3):
            c.infer(np.zeros((1, 16), np.int8), "s")
        st = c.stats(reset=True)
        assert st["models"]["s"]["count"] == 3
        assert 0 < st["models"]["s"]["min_us"] <= st["models"]["s"]["p50_us"]
        assert st["models"]["s"]["p50_us"] <= st["models"]["s"]["max_us"]
        assert c.stats()["models"] == {}


def test_stats_shows_link_errors_since_start_and_of_this_connection(agents):
    # Each command is a new TCP connection: a noisy earlier session's errors must still show.
    port = free_port()
    agent = agents.start("sim-linux", link="tcp://127.0.0.1:%d" % port)
    agent.wait_log(r"listening on tcp://127\.0\.0\.1:%d" % port)
    url = "socket://127.0.0.1:%d" % port
    noisy = Client(open_url(url), timeout=10)
    noisy.hello()
    for rid in (0x6300, 0x6301):
        bad = bytearray(noisy.writer.pack(ops.PING, rid, cbor2.dumps({"data": b"abc"})))
        bad[-2] ^= 0xFF
        assert replies(noisy, bytes(bad), [rid])[rid][1]["code"] == ops.E_BAD_CRC
    noisy.close()

    st = cli_json("stats", "--port", url)
    assert st["link"]["crc_errors"] == 2
    assert st["link_connection"]["crc_errors"] == 0
    shown = cli("stats", "--port", url).stdout
    assert re.search(r"crc errors\s*│\s*2 since start or reset, 0 this connection", shown), shown


def test_models_persist_across_commands_like_flash():
    cli("deploy", MODEL, "--name", "keep", "--board", "sim-mcu")
    names = [m["name"] for m in cli_json("models", "--board", "sim-mcu")["models"]]
    assert "keep" in names
    cli("model", "delete", "keep", "--board", "sim-mcu")
    names = [m["name"] for m in cli_json("models", "--board", "sim-mcu")["models"]]
    assert "keep" not in names


def test_infer_on_a_board_without_the_memory_says_so_in_one_line(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 16), np.int8))
    b = ["--board", "sim-mcu-64k"]
    r = kpdev("deploy", MODEL, "--name", "dense", "--keep-unloadable", *b, "--json")
    # Under --json a failure is one error object on stdout, with the upload's result in it.
    error = json.loads(r.stdout)["error"]
    assert r.returncode == 3 and error["code"] == 23 and error["exit"] == 3
    assert error["detail"]["load_error"]["code"] == 23 and error["detail"]["size"] > 0
    assert "dense cannot run on sim-mcu-64k: not enough memory to load" in r.stderr
    r = kpdev("infer", "--board", "sim-mcu-64k", "-m", "dense", "-i", tmp_path / "x.npy")
    assert r.returncode == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not enough memory to load" in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["deploy", "/nonexistent/model.tflite", "-b", "sim-linux"], 2, "cannot read"),
        (
            ["deploy", DATA.parent.parent / "pyproject.toml", "-b", "sim-linux"],
            2,
            "not a model file",
        ),
        (["info", "--board", "no-such-board"], 2, "unknown board 'no-such-board'"),
        (["info", "--port", "/dev/does-not-exist"], 4, "cannot open /dev/does-not-exist"),
        (["sim", "rpi-pico"], 2, "real board"),
        (["sim", "sim-linux", "--listen", "tcp://0.0.0.0:0"], 2, "without a key"),
        (["info", "-b", "sim-linux", "--key", "zz"], 2, "hex"),
        (["model", "activate", "ghost", "-b", "sim-linux"], 3, "no model 'ghost'"),
    ],
)
def test_bad_input_gets_one_line_and_a_nonzero_exit(args, code, words):
    r = kpdev(*args)
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert lines[0].startswith("kpdev: ")


def test_wrong_shape_input_is_refused_clearly(tmp_path):
    cli("deploy", MODEL, "--name", "dense", "-b", "sim-linux")
    np.save(tmp_path / "bad.npy", np.zeros((3, 7), np.int8))
    r = kpdev("infer", "-b", "sim-linux", "-m", "dense", "-i", tmp_path / "bad.npy")
    assert r.returncode == 2 and "does not fit the model's input [1, 16]" in r.stderr
    np.save(tmp_path / "f.npy", np.zeros((1, 16), np.float32))
    r = kpdev("infer", "-b", "sim-linux", "-m", "dense", "-i", tmp_path / "f.npy")
    assert r.returncode == 3 and "expected dtype int8, got float32" in r.stderr, r.stderr


def test_debug_variable_shows_the_traceback():
    r = kpdev("info", "--board", "no-such-board", env=dict(os.environ, KPDEV_DEBUG="1"))
    assert r.returncode != 0 and "Traceback" in r.stderr


@pytest.mark.parametrize("board", ["sim-linux", "sim-mcu"])
@pytest.mark.parametrize("listen", ["pty", "tcp://127.0.0.1:0"])
def test_sim_serves_a_board_that_commands_reach_by_port(board, listen):
    proc, port = serve_sim(board, "--listen", listen)
    try:
        if listen == "pty":
            assert re.match(r"/dev/pts/\d+$", port)
        else:
            assert re.match(r"socket://127\.0\.0\.1:\d+$", port)
        info = cli_json("info", "--port", port)
        assert info["board"] == board
        assert info["runtime"] == ("linux" if board == "sim-linux" else "micropython") or info[
            "runtime"
        ] in ("cpython", "micropython")
        up = cli_json("deploy", MODEL, "--name", "viaport", "--port", port)
        assert up["size"] == MODEL.stat().st_size
        assert "viaport" in [m["name"] for m in cli_json("models", "--port", port)["models"]]
        assert cli_json("ping", "-n", "2", "--port", port)["count"] == 2
    finally:
        proc.terminate()
        proc.wait(10)


def test_authenticated_sim_refuses_a_client_without_the_key():
    key = "11" * 32
    # A running board keeps the key it started with: serving it with another one is refused.
    cli("info", "--board", "sim-linux")
    r = kpdev("sim", "sim-linux", "--listen", "tcp://127.0.0.1:0", "--key", key)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "running without a key" in r.stderr and "kpdev sim stop" in r.stderr
    cli("sim", "stop", "sim-linux")
    proc, port = serve_sim("sim-linux", "--listen", "tcp://127.0.0.1:0", "--key", key)
    try:
        assert cli_json("info", "--port", port, "--key", key)["auth"] is True
        r = kpdev("info", "--port", port, "--timeout", "3")
        assert r.returncode == 5 and "authentic" in r.stderr, r.stderr
        r = kpdev("info", "--port", port, "--key", "22" * 32, "--timeout", "3")
        assert r.returncode == 5, r.stderr
    finally:
        proc.terminate()
        proc.wait(10)
        cli("sim", "stop", "sim-linux")  # the next test's board has no key


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_repl_has_the_agent_and_the_boards_files(board):
    cli("deploy", MODEL, "--name", "inrepl", "--board", board)
    r = kpdev(
        "repl",
        "--board",
        board,
        input="print([m['name'] for m in repl.models()])\nprint(repl.stats()['uptime_ms'] > 0)\n",
    )
    assert r.returncode == 0, r.stderr
    assert "inrepl" in r.stdout and "True" in r.stdout


def test_every_command_offers_json():
    r = cli("--help")
    commands = re.findall(r"^    (\w+)\s{2,}", r.stdout, re.MULTILINE)
    assert {"boards", "sim", "info", "deploy", "infer", "stats", "repl", "demo"} <= set(commands)
    assert {"pack", "eval", "recognize", "profile", "report"} <= set(commands)
    for command in commands:
        if command == "model":
            for sub in ("info", "activate", "delete"):
                assert "--json" in cli("model", sub, "--help").stdout
            continue
        if command == "pack":
            for sub in ("build", "inspect"):
                assert "--json" in cli("pack", sub, "--help").stdout
            continue
        if command == "fleet":
            for sub in ("add", "list", "remove"):
                assert "--json" in cli("fleet", sub, "--help").stdout, sub
            continue
        if command == "firmware":
            assert "--json" in cli("firmware", "build", "--help").stdout
            continue
        if command == "learn":
            for sub in ("run", "info", "save", "reset", "enable", "disable", "export"):
                assert "--json" in cli("learn", sub, "--help").stdout, sub
            continue
        assert "--json" in cli(command, "--help").stdout, command
