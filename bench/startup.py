"""What one command costs on a simulated board: warm background board vs the per-command board.

Until background boards, every ``kpdev ... --board sim-linux`` started a new agent process, whose
first HELLO imported every optional backend.  Now the first command starts the board's server
(cold) and later commands reach the running agent (warm), which imports a backend only when a
model needs it.  The baseline is the real earlier kpdev: its source at ``--baseline REV`` (the
last revision with per-command boards) is exported from git into a temporary folder and run with
the same Python, on the same machine, in the same run, rounds alternating.

Figures: wall time of the whole command (``kpdev info --board B --json``) as a user sees it,
best and median of the rounds; ``kpdev --version`` is the floor (the CLI's own start-up).

Run: python bench/startup.py [--rounds N] [--baseline REV] [BOARD ...]
     (boards: default sim-linux sim-mcu)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import _common

BASELINE = "bc0d770"  # the last revision whose simulated boards lived for one command
_RUN = (
    "import sys; sys.path.insert(0, %r); sys.argv[0] = 'kpdev'; "
    "from kpdev.host.cli import main; main()"
)


def _timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv[-4:])} failed: {proc.stderr.strip()[-400:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("boards", nargs="*", default=["sim-linux", "sim-mcu"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", default=BASELINE)
    args = parser.parse_args()
    print(_common.machine())
    tmp = _common.tempdir("kpdev-bench-startup-")
    old_src = _common.export_rev(args.baseline, tmp)
    old_home = os.path.join(tmp, "old-home")
    new_env = dict(os.environ, KPDEV_SIM_IDLE="600")
    # PYTHONPATH too: the old CLI starts its agent with `python -m kpdev.device`, which must be
    # the old agent as well, not the installed one.
    old_env = dict(os.environ, KPDEV_HOME=old_home, PYTHONPATH=old_src)
    new_cli = [sys.executable, "-m", "kpdev.host.cli"]
    old_cli = [sys.executable, "-c", _RUN % old_src]
    # The baseline really is the old code: its kpdev comes from the exported folder.
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, %r); import kpdev.host.cli as c; "
         "print(c.__file__)" % old_src],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert probe.startswith(old_src), probe
    floor = [_timed([*new_cli, "--version"], new_env) for _ in range(args.rounds)]
    print(f"kpdev --version (the CLI's own start-up): best {min(floor):.3f} s")
    for board in args.boards:
        info = ["info", "--board", board, "--json"]
        _timed([*old_cli, *info], old_env)  # first run: the old agent lib staged once
        old, cold, warm = [], [], []
        for _ in range(args.rounds):
            old.append(_timed([*old_cli, *info], old_env))
            _timed([*new_cli, "sim", "stop", board], new_env)
            cold.append(_timed([*new_cli, *info], new_env))
            warm.append(_timed([*new_cli, *info], new_env))
        _timed([*new_cli, "sim", "stop", board], new_env)
        rows = []
        for name, xs in (
            ("per-command board (%s)" % args.baseline, old),
            ("cold: starts the background board", cold),
            ("warm: the board is running", warm),
        ):
            rows.append((name, "%.3f" % min(xs), "%.3f" % statistics.median(xs)))
        _common.table(("kpdev info --board %s" % board, "best s", "median s"), rows)
        ratio = min(warm) / min(old)
        _common.verdict(
            "RATIO",
            f"startup_warm_vs_per_command_{board}",
            ratio,
            "x",
            0.5,
            note="warm %.3f s / per-command %.3f s; cold %.3f s"
            % (min(warm), min(old), min(cold)),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
