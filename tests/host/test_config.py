"""The user's config file and the default board: where the file is, kpdev config, and which
board a command uses when none is named (and that it says so)."""

import json
import os
import subprocess
import sys

import pytest
from support.cli import kpdev
from typer.testing import CliRunner

from kpdev.host import config
from kpdev.host.cli.app import app
from kpdev.host.client.session import resolve_board
from kpdev.host.errors import BoardError, ConfigError

runner = CliRunner()

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """A config file of this test's own (not there yet), and no KPDEV_BOARD."""
    path = tmp_path / "conf" / "config.toml"
    monkeypatch.setenv("KPDEV_CONFIG", str(path))
    monkeypatch.delenv("KPDEV_BOARD", raising=False)
    return path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_config_file_location(tmp_path, monkeypatch):
    monkeypatch.delenv("KPDEV_CONFIG", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.config_path() == tmp_path / "home" / ".config" / "kpdev" / "config.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config.config_path() == tmp_path / "xdg" / "kpdev" / "config.toml"
    assert config.user_catalog_path() == tmp_path / "xdg" / "kpdev" / "boards.yml"
    monkeypatch.setenv("KPDEV_CONFIG", str(tmp_path / "mine.toml"))
    assert config.config_path() == tmp_path / "mine.toml"
    assert config.user_catalog_path() == tmp_path / "boards.yml"


def test_config_set_get_unset_path(cfg):
    r = invoke("config", "path")
    assert r.exit_code == 0 and r.stdout.strip() == str(cfg)
    assert json.loads(invoke("config", "path", "--json").stdout)["exists"] is False
    r = kpdev("config", "get", "board")
    assert r.returncode == 1 and "board is not set" in r.stderr and r.stdout == ""

    r = invoke("config", "set", "board", "sim-linux", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) == {
        "path": str(cfg),
        "key": "board",
        "value": "sim-linux",
    }
    assert cfg.exists() and oct(cfg.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    if tomllib is not None:  # what kpdev writes is TOML
        assert tomllib.loads(cfg.read_text()) == {"board": "sim-linux"}
    assert invoke("config", "get", "board").stdout == "sim-linux\n"
    got = json.loads(invoke("config", "get", "--json").stdout)
    assert got == {"path": str(cfg), "exists": True, "settings": {"board": "sim-linux"}}

    r = invoke("config", "unset", "board", "--json")
    assert json.loads(r.stdout)["removed"] is True
    assert json.loads(invoke("config", "unset", "board", "--json").stdout)["removed"] is False
    assert config.read_config() == {}


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize(
    "args, words",
    [
        (["set", "board", "no-such-board"], "unknown board 'no-such-board'; known boards: sim"),
        (["set", "colour", "blue"], "unknown config key 'colour'; kpdev knows board"),
        (["get", "colour"], "unknown config key 'colour'"),
    ],
)
def test_config_refuses_what_it_cannot_keep_in_one_line(cfg, args, words):
    r = kpdev("config", *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert not cfg.exists()


def test_a_broken_config_file_is_one_line_naming_it(cfg):
    cfg.parent.mkdir(parents=True)
    cfg.write_text("board = sim-mcu\n")  # not quoted: not TOML
    r = kpdev("info")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(cfg) in lines[0] and "TOML" in lines[0], r.stderr
    cfg.write_text('bord = "sim-mcu"\n')
    with pytest.raises(ConfigError, match="unknown key 'bord'; kpdev knows board"):
        config.read_config()
    cfg.write_text("board = 3\n")
    with pytest.raises(ConfigError, match="board must be a string"):
        config.read_config()


def test_the_fallback_reader_reads_what_kpdev_writes(cfg, monkeypatch):
    # Python 3.10 has no tomllib: config.py reads its own key = "value" lines then.
    config.set_value("board", "sim-mcu")
    written = config.read_config()
    monkeypatch.setattr(config, "tomllib", None)
    assert config.read_config() == written == {"board": "sim-mcu"}
    hand = '# a comment\n\n  board = "sim-\\"x\\"" # trailing\n'
    cfg.write_text(hand)
    assert config.read_config() == {"board": 'sim-"x"'}
    if tomllib is not None:
        assert tomllib.loads(hand) == {"board": 'sim-"x"'}
    cfg.write_text("board = [1]\n")
    with pytest.raises(ConfigError, match=r"line 1: write it as key = \"value\""):
        config.read_config()


def test_resolve_board_order(cfg, monkeypatch):
    with pytest.raises(BoardError, match="kpdev config set board NAME"):
        resolve_board(None, None)
    assert resolve_board(None, "/dev/ttyACM0") is None
    config.set_value("board", "sim-mcu-64k")
    assert resolve_board(None, None).id == "sim-mcu-64k"
    monkeypatch.setenv("KPDEV_BOARD", "sim-linux")
    assert resolve_board(None, None).id == "sim-linux"
    assert resolve_board("sim-mcu", None).id == "sim-mcu"
    assert resolve_board(None, "socket://127.0.0.1:1") is None


def test_without_a_board_a_command_says_how_to_choose_one(cfg):
    for args in (["info"], ["models", "--json"], ["stats"]):
        r = kpdev(*args)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        for words in ("--board", "KPDEV_BOARD", "kpdev config set board NAME"):
            assert words in lines[0]
    assert "sim-mcu" not in r.stderr  # no silent fallback to a simulated board


def test_the_default_board_is_named_on_stderr_only(cfg):
    config.set_value("board", "sim-linux")
    r = kpdev("ping", "-n", "1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["count"] == 1  # stdout: the JSON document and nothing else
    assert r.stderr.strip() == f"using board sim-linux (from {cfg})"

    env = dict(os.environ, KPDEV_BOARD="sim-mcu")
    r = kpdev("info", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["board"] == "sim-mcu"
    assert r.stderr.strip() == "using board sim-mcu (from KPDEV_BOARD)"


def test_a_named_board_or_a_port_takes_no_default(cfg):
    env = dict(os.environ, KPDEV_BOARD="sim-mcu")
    r = kpdev("info", "--board", "sim-linux", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["board"] == "sim-linux"
    assert "using board" not in r.stderr
    # A port is the device, whatever KPDEV_BOARD says.
    for args in (["info", "--port", "/dev/does-not-exist"], ["ping", "-p", "/dev/does-not-exist"]):
        r = kpdev(*args, env=env)
        assert r.returncode == 4, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot open /dev/does-not-exist" in lines[0], r.stderr


def test_board_ids_complete_in_the_shell(cfg):
    env = dict(
        os.environ,
        _KPDEV_COMPLETE="complete_bash",
        COMP_WORDS="kpdev info --board sim-mc",
        COMP_CWORD="3",
    )
    r = subprocess.run(
        [sys.executable, "-c", "from kpdev.host.cli import main; main()"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.split()) == {"sim-mcu", "sim-mcu-64k"}
