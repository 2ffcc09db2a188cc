"""A command imports what it needs when it needs it (issue 19): starting the CLI, printing its
help or listing the catalog loads no numpy, no device client, no agent builder, no progress bars;
the root help imports no command module and no Rich; a command imports its own module only.

Checked by which modules a fresh interpreter holds, not by timing (the speed itself is measured by
bench/cli_speed.py): a top-level import that brings one of these back fails here."""

import json
import os
import subprocess
import sys

import pytest
import typer.main
from support.cli import kpdev

from kpdev.host.cli.app import COMMANDS, app
from kpdev.host.cli.lazy import reflow, target

# Heavy for a start (numpy alone is ~0.1-0.3 s), and needed only by the commands that use them.
HEAVY = (
    "numpy",
    "pydantic",
    "tarfile",
    "rich.progress",
    "rich.live",
    "rich.table",
    "kpdev.host.agent.build",
    "kpdev.host.client.client",
    "kpdev.host.client.session",
    "kpdev.host.boards.simserver",
    "kpdev.host.packs.pack",
    "kpdev.host.evaluation.metrics",
    "kpdev.host.doctor",
)

# Run a command in a fresh interpreter through main(), then print the heavy modules it loaded.
PROBE = """
import json, sys
heavy = json.loads(sys.argv[1])
args = sys.argv[2:]
if args:
    from kpdev.host.cli.app import main
    try:
        main(args)
    except SystemExit:
        pass
else:
    import kpdev.host.cli.app
sys.stderr.write("LOADED " + json.dumps(sorted(m for m in heavy if m in sys.modules)) + "\\n")
"""


def loaded(tmp_path, *args, heavy=HEAVY):
    env = dict(os.environ, KPDEV_HOME=str(tmp_path))
    env.pop("KPDEV_BOARD", None)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(heavy)), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    line = [x for x in proc.stderr.splitlines() if x.startswith("LOADED ")]
    assert line, proc.stderr
    return json.loads(line[-1][len("LOADED ") :])


def test_importing_the_cli_loads_nothing_heavy(tmp_path):
    assert loaded(tmp_path) == []


# Every command module, and Rich: the root help lists the commands from app.COMMANDS.
MODULES = sorted({"kpdev.host.cli." + t.split(":")[0] for _, rows in COMMANDS for _, t, _ in rows})
RICH = ("rich", "rich.console", "typer.rich_utils", "rich.markdown")


def test_help_loads_nothing_heavy(tmp_path):
    assert loaded(tmp_path, "--help") == []
    # Nor any command's module, nor Rich (Typer's Rich help formatter alone is several times
    # `python -c pass`: the help is Click's, with the panels as sections).
    assert loaded(tmp_path, "--help", heavy=(*MODULES, *RICH)) == []
    assert loaded(tmp_path, heavy=(*MODULES, *RICH)) == []


def test_boards_json_loads_no_numpy_nor_client(tmp_path):
    # The catalog needs yaml; no tensors, bars, builds, other commands' modules, nor Rich
    # (nothing is drawn: --json writes plain JSON).  pydantic is Typer's: Typer 0.29 checks the
    # value of every option that is not a flag (--key, --catalog) with a pydantic TypeAdapter.
    heavy = [m for m in (*HEAVY, *MODULES, *RICH) if m != "pydantic"]
    got = loaded(tmp_path, "boards", "--json", heavy=heavy)
    assert got == ["kpdev.host.cli.boards"], got


@pytest.mark.parametrize(
    "args", [["pack", "--help"], ["model", "activate", "--help"], ["info", "--help"]]
)
def test_a_command_imports_its_own_module_only(tmp_path, args):
    own = "kpdev.host.cli." + dict(info="device").get(args[0], args[0])
    got = loaded(tmp_path, *args, heavy=MODULES)
    # The device and model commands run on several boards through the fleet module's helpers.
    assert own in got and set(got) <= {own, "kpdev.host.cli.fleet"}, got


def _real(name, spec):
    """Command ``name`` as Typer makes it when it runs (lazy.run_command's holder)."""
    obj = target(spec)
    holder = typer.Typer(add_completion=False)
    if isinstance(obj, typer.Typer):
        holder.add_typer(obj, name=name)
        return typer.main.get_command(holder).commands[name]
    holder.command(name=name)(obj)
    return typer.main.get_command(holder)


def test_each_mounted_line_is_the_commands_own_help():
    root = typer.main.get_command(app)
    ctx = root.make_context("kpdev", ["boards"])
    names = []
    for _, rows in COMMANDS:
        for name, spec, line in rows:
            command = _real(name, spec)
            text = command.short_help or (command.help or "").split("\n\n")[0]
            assert line == " ".join(text.split()), name
            assert root.get_command(ctx, name).hidden  # listed by the epilog, by panel
            names.append(name)
    assert root.list_commands(ctx) == names and len(set(names)) == len(names)


def test_a_mistyped_command_gets_a_suggestion_without_loading_every_module(tmp_path):
    assert loaded(tmp_path, "deplyo", heavy=MODULES) == []


def test_a_device_command_on_a_running_simulated_board_loads_only_its_path(tmp_path):
    # What `kpdev info --board sim-linux` imports to reach a running board's server: no fleet
    # runner, no agent staging or ROMFS, no pyserial (only a port or a real board needs it).
    probe = (
        "import sys, kpdev.host.cli.device, kpdev.host.client.session; "
        "print(' '.join(sorted(m for m in sys.argv[1:] if m in sys.modules)))"
    )
    skip = ("kpdev.host.cli.fleet", "kpdev.host.fleet.runner", "kpdev.host.agent.micropython",
            "kpdev.host.agent.romfs", "kpdev.host.link.transport", "serial", "numpy")  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", probe, *skip],
        capture_output=True,
        text=True,
        env=dict(os.environ, KPDEV_HOME=str(tmp_path)),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [], proc.stdout


def test_reflow_joins_a_paragraphs_lines_and_keeps_examples_and_verbatim_blocks():
    text = """First line.

    A paragraph wrapped
    at some width.

    Examples:

      kpdev deploy a.kp \\
        --board sim-mcu

    \b
    kept
    as written"""
    assert reflow(text) == (
        "First line.\n\nA paragraph wrapped at some width.\n\nExamples:\n\n"
        "  kpdev deploy a.kp \\\n    --board sim-mcu\n\n\b\nkept\nas written"
    )


@pytest.mark.parametrize("width", ["80", "200"])
def test_a_commands_help_wraps_at_the_terminals_width_not_the_docstrings(tmp_path, width):
    # The docstring of `kpdev profile` is wrapped at 96 columns; its help at 80 or 200 must be
    # wrapped by the terminal's width only.
    env = dict(os.environ, KPDEV_HOME=str(tmp_path), COLUMNS=width, TERM="dumb")
    r = kpdev("profile", "--help", env=env)
    assert r.returncode == 0, r.stderr
    lines = [line.strip() for line in r.stdout.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("Runs the pack's"))
    end = lines.index("", start)
    paragraph = lines[start:end]
    assert " ".join(paragraph).endswith("so the shares add up to 100 %. Feature stages are "
                                        "named feature:GENERATOR (feature:std is the time of "
                                        "the std feature). MicroPython and CPython expose no "
                                        "cycle counter here: times are in µs.")  # fmt: skip
    # Every line but the last is filled to the width: a line ending early, where the docstring
    # broke it, leaves room for the next line's first word.
    for line, after in zip(paragraph, paragraph[1:], strict=False):
        assert len(line) + 1 + len(after.split()[0]) > int(width) - 4, (line, after)
    if width == "200":
        assert len(paragraph) <= 3


def test_a_bare_double_dash_reaches_the_command(tmp_path):
    # `--` ends the options, so a value may start with a dash; the lazily mounted command must
    # see it as typed (the stand-in's own parse used to drop it: "No such option: -x").
    env = dict(os.environ, KPDEV_HOME=str(tmp_path), KPDEV_CONFIG=str(tmp_path / "c.toml"))
    r = kpdev("config", "set", "labgrid-coordinator", "--", "-x:20408", env=env)
    assert r.returncode == 0, r.stderr
    r = kpdev("config", "get", "labgrid-coordinator", env=env)
    assert r.stdout.strip() == "-x:20408"
    # Without the `--`, the same words are an unknown option, as for any Click command.
    r = kpdev("config", "set", "labgrid-coordinator", "-x:20408", env=env)
    assert r.returncode == 2 and "No such option: -x" in r.stderr
