"""A command imports what it needs when it needs it (issue 19): starting the CLI, printing its
help or listing the catalog loads no numpy, no device client, no agent builder, no progress bars.

Checked by which modules a fresh interpreter holds, not by timing (the speed itself is measured by
bench/cli_speed.py): a top-level import that brings one of these back fails here."""

import json
import os
import subprocess
import sys

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


def test_help_loads_nothing_heavy(tmp_path):
    # Typer's own help formatter draws the command panels with rich.table.
    assert loaded(tmp_path, "--help") in ([], ["rich.table"])


def test_boards_json_loads_no_numpy_nor_client(tmp_path):
    # The catalog needs yaml, and the key check the session module; no tensors, bars or builds.
    got = loaded(tmp_path, "boards", "--json")
    assert not {"numpy", "kpdev.host.agent.build", "rich.progress", "tarfile"} & set(got), got
