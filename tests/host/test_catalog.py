"""A user's own boards: boards.yml beside the config file and ``kpdev --catalog FILE`` (or
$KPDEV_CATALOG) merged over the shipped catalog; a bad one is one line naming the file."""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from support.cli import kpdev
from support.paths import ROOT

from kpdev.host.boards.catalog import catalog_paths, get_board, load_boards, shipped_catalog_path
from kpdev.host.errors import BoardError

USER = """\
rpi-pico:                      # a known board: only the fields given change
  link: {port: /dev/ttyACM0}   # merged into its serial link (type and baud stay)
  power: {idle_mw: 40}         # merged into its power model
bench-pico:                    # a new board
  name: Pico W on the bench
  runtime: micropython
  mpy_march: armv6m
  link: {type: serial, port: /dev/serial/by-id/usb-MicroPython_Board_in_FS_mode_e66*}
  ram_kb: 264
  storage_kb: 848
  usb: ["2e8a:0005"]
"""


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A config directory of this test's own; no catalog from the environment."""
    d = tmp_path / "conf"
    d.mkdir()
    monkeypatch.setenv("KPDEV_CONFIG", str(d / "config.toml"))
    monkeypatch.delenv("KPDEV_CATALOG", raising=False)
    return d


def test_the_user_catalog_beside_the_config_is_merged_over_the_shipped_one(user_dir):
    shipped = load_boards()
    assert catalog_paths() == [shipped_catalog_path()]
    (user_dir / "boards.yml").write_text(USER)
    assert catalog_paths() == [shipped_catalog_path(), user_dir / "boards.yml"]
    boards = load_boards()
    assert list(boards)[: len(shipped)] == list(shipped)  # nothing lost, order kept
    pico = boards["rpi-pico"]
    assert pico.link == {"type": "serial", "port": "/dev/ttyACM0", "baud": 115200}
    want_power = dict(shipped["rpi-pico"].power, idle_mw=40)
    assert pico.power == want_power and pico.power["active_mw"] == 115
    assert pico.name == shipped["rpi-pico"].name and pico.source == str(user_dir / "boards.yml")
    bench = boards["bench-pico"]
    assert bench.ram_kb == 264 and bench.usb == ("2E8A:0005",) and bench.mpy_march == "armv6m"
    assert boards["sim-mcu"].source == str(shipped_catalog_path())


def test_catalog_option_and_variable_come_last(user_dir, tmp_path, monkeypatch):
    (user_dir / "boards.yml").write_text(USER)
    mine = tmp_path / "mine.yml"
    mine.write_text("bench-pico:\n  storage_kb: 512\n")
    monkeypatch.setenv("KPDEV_CATALOG", str(mine))
    assert get_board("bench-pico").storage_kb == 512
    assert get_board("bench-pico").ram_kb == 264

    env = dict(os.environ)
    del env["KPDEV_CATALOG"]
    r = kpdev("--catalog", mine, "boards", "--json", env=env)
    assert r.returncode == 0, r.stderr
    boards = {b["id"]: b for b in json.loads(r.stdout)}
    assert boards["bench-pico"]["storage_kb"] == 512 and boards["bench-pico"]["catalog"] == str(
        mine
    )
    assert boards["rpi-pico"]["link"]["port"] == "/dev/ttyACM0"
    r = kpdev("boards", "--json", env=env)  # without --catalog: the user's file only
    assert {b["id"]: b for b in json.loads(r.stdout)}["bench-pico"]["storage_kb"] == 848


def test_a_users_simulated_board_serves_device_commands(user_dir, tmp_path):
    # A catalog entry is all a new simulated board needs; the agent reports its id.
    (user_dir / "boards.yml").write_text(
        "sim-big:\n  name: A bigger simulated Linux board\n  runtime: linux\n"
        "  simulated: true\n  link: {type: sim}\n  ram_kb: 2097152\n  storage_kb: 131072\n"
    )
    r = kpdev("info", "--board", "sim-big", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["board"] == "sim-big" and info["storage"]["quota"] == 131072 * 1024


@pytest.mark.parametrize(
    "text, problem",
    [
        ("x:\n  name: [\n", "not valid YAML at line 3, column 1"),
        ("- a\n- b\n", "expected board ids, each with its fields (a mapping), not a list"),
        ("x: 3\n", "board x must be a mapping of fields"),
        ("rpi-pico:\n  ram_KB: 3\n", "board rpi-pico has unknown field(s) ram_KB; fields: name"),
        ("x:\n  name: X\n", "board x needs runtime, link, ram_kb, storage_kb"),
        ("rpi-pico:\n  ram_kb: lots\n", "rpi-pico: ram_kb must be a whole number of KB"),
        ("rpi-pico:\n  link: {type: tcp}\n", "board rpi-pico: a tcp link needs host"),
        ("rpi-pico:\n  usb: [2E8A-0005]\n", "usb is a list of VID:PID in hex"),
        ("rpi-pico:\n  runtime: zephyr\n", "runtime must be one of micropython, linux"),
    ],
)
def test_a_bad_user_catalog_is_one_line_naming_the_file(user_dir, text, problem):
    bad = user_dir / "boards.yml"
    bad.write_text(text)
    with pytest.raises(BoardError) as e:
        load_boards()
    assert str(e.value).startswith(f"board catalog {bad}: ") and problem in str(e.value)
    assert "\n" not in str(e.value)
    r = kpdev("boards")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and problem in lines[0], r.stderr


def test_a_missing_catalog_file_is_named(user_dir, tmp_path):
    r = kpdev("--catalog", tmp_path / "nope.yml", "boards", "--json")
    assert r.returncode == 2
    assert json.loads(r.stdout)["error"]["code"] == "board"
    assert f"board catalog {tmp_path / 'nope.yml'}: no such file" in r.stderr


def test_the_readme_example_catalog_is_the_one_shipped_and_it_loads(user_dir, monkeypatch):
    root = ROOT
    readme = (root / "README.md").read_text()
    section = readme[readme.index("**Your own boards.**") :]
    block = re.search(r"```yaml\n(.+?)\n```", section, re.S).group(1)
    example = root / "docs" / "my-boards.yml"
    assert yaml.safe_load(block) == yaml.safe_load(example.read_text())
    shipped = load_boards()
    monkeypatch.setenv("KPDEV_CATALOG", str(example))
    boards = load_boards()
    assert len(boards) == len(shipped) + 2 == 18  # as the README says
    assert boards["sim-linux-2g"].simulated and boards["bench-pico"].usb == ("2E8A:0005",)
    assert boards["rpi-pico"].link["port"] == "/dev/ttyACM0"


def test_a_parsed_catalog_is_kept_and_a_changed_one_is_read_again(user_dir, tmp_path, monkeypatch):
    # A JSON copy of each parsed catalog file serves while the file's text is the same: a
    # command then reads the catalog without importing PyYAML.
    home = tmp_path / "home"
    monkeypatch.setenv("KPDEV_HOME", str(home))
    mine = user_dir / "boards.yml"
    mine.write_text(USER)
    first = load_boards()
    kept = sorted((home / "cache").glob("catalog-*.json"))
    assert len(kept) == 2  # the shipped catalog and this one
    assert load_boards() == first
    probe = "import sys; from kpdev.host.boards.catalog import load_boards; b = load_boards(); "
    probe += "print(b['bench-pico'].ram_kb, 'yaml' in sys.modules)"
    env = dict(os.environ, KPDEV_HOME=str(home), KPDEV_CONFIG=str(user_dir / "config.toml"))
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert r.stdout.split() == ["264", "False"], r.stderr
    # The same size, another text (as an editor's save within one timestamp tick): read again.
    mine.write_text(USER.replace("ram_kb: 264", "ram_kb: 265"))
    assert load_boards()["bench-pico"].ram_kb == 265
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env)
    assert r.stdout.split() == ["265", "False"], r.stderr
    # A broken copy is parsed over; a document JSON would change (an int key) is not kept.
    for path in kept:
        path.write_text("{not json")
    assert load_boards() == load_boards() and load_boards()["bench-pico"].ram_kb == 265
    mine.write_text(USER + "  flash_kb: 2048\n" + "  sim: {1: one}\n")
    before = {p: p.read_text() for p in (home / "cache").glob("catalog-*.json")}
    assert load_boards()["bench-pico"].flash_kb == 2048
    assert {p: p.read_text() for p in (home / "cache").glob("catalog-*.json")} == before
