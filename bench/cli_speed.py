"""How long a user waits for a command that needs no board, and for one against a running board.

Issue 19, item 1: every command paid ~0.8 s of imports before it did anything.  Targets:
``kpdev --help`` and ``kpdev boards --json`` <= 4x ``python -c pass``; ``kpdev info --board
sim-linux`` against a running (warm) simulated board <= 0.35 s, whole process.

Every version is real code run the same way in the same run: the source at ``--before``
(default 0c8039f, main before the lazy imports), at ``--main`` (default ``main``) and at
``--after`` (default ``HEAD``, this branch), each exported from git into a temporary folder and
run with the same Python through ``kpdev.host.cli.main``, each with its own KPDEV_HOME (removed
at the end with the folders, the boards stopped, also when the script is killed).  Bytecode is
written and used as an installed kpdev's is (PYTHONDONTWRITEBYTECODE is dropped, and each
command runs once untimed first), so no round pays for compiling kpdev's sources.  Rounds
alternate (``_common.Rounds``: every case once a round, the order reversed every other round);
the timed commands are pinned to one CPU, the background boards (started by the untimed first
``info``) are not.  Verdicts (``_common.judge``): per-round ratios to ``python -c pass`` of the
same round, and the per-round times of the warm ``info``; NOISY when the target lies inside
the interquartile range.  One more case, ``python -c "import typer, typer._adapters"``, is the
floor under any command with an option that is not a flag (Typer 0.29 checks such a value with
a pydantic TypeAdapter): printed as a ratio, not judged.

Run: python bench/cli_speed.py [--rounds N] [--before REV] [--main REV] [--after REV]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import _common

_RUN = "import sys; sys.argv[0] = 'kpdev'; from kpdev.host.cli import main; main()"
FLOOR = "import typer, typer._adapters"
COMMANDS = (
    ("--help", ["--help"]),
    ("boards --json", ["boards", "--json"]),
    ("info --board sim-linux (warm)", ["info", "--board", "sim-linux"]),
)


def _pinned():
    if _common.PIN:
        os.sched_setaffinity(0, {_common.HOST_CPU})


def _timed(argv: list[str], env: dict[str, str], pin: bool = True) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, preexec_fn=_pinned if pin else None
    )
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv[-4:])} failed: {proc.stderr.strip()[-400:]}")
    return seconds


def _kpdev(env: dict[str, str], args: list[str]):
    return lambda: _timed([sys.executable, "-c", _RUN, *args], env)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--before", default="0c8039f")  # main before the lazy imports
    parser.add_argument("--main", default="1d9b520")  # main before the second pass
    parser.add_argument("--after", default="HEAD")
    args = parser.parse_args()
    if args.rounds < _common.MIN_ROUNDS:
        raise SystemExit("at least %d rounds: a median of fewer does not repeat" % 7)
    print(_common.machine())
    print("timed commands pinned to CPU %d" % _common.HOST_CPU if _common.PIN else "not pinned")
    _common.load_line("start")
    tmp = _common.tempdir("kpdev-bench-cli-")
    versions = {}
    try:
        for label, rev in (("before", args.before), ("main", args.main), ("after", args.after)):
            sha = subprocess.run(
                ["git", "-C", _common.REPO, "rev-parse", "--short", rev],
                check=True, capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
            src = _common.export_rev(rev, os.path.join(tmp, label))
            env = dict(os.environ, KPDEV_HOME=os.path.join(tmp, label, "home"), PYTHONPATH=src)
            for name in ("KPDEV_BOARD", "KPDEV_KEY", "PYTHONDONTWRITEBYTECODE"):
                env.pop(name, None)
            env["KPDEV_SIM_IDLE"] = "600"
            probe = subprocess.run(
                [sys.executable, "-c", "import kpdev.host.cli as c; print(c.__file__)"],
                env=env, capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            assert probe.startswith(src), probe  # the version really is the exported code
            versions[label] = (f"{label} {sha}", env)
            # Untimed: start the background board (and stage its agent), so `info` is warm, and
            # write the bytecode of every module the timed commands import.
            for _, cmd in reversed(COMMANDS):
                _timed([sys.executable, "-c", _RUN, *cmd], env, pin=False)
        cases = {
            "python -c pass": lambda: _timed([sys.executable, "-c", "pass"], os.environ),
            # The floor of any command with an option that is not a flag: Typer 0.29 checks
            # such an option's value with a pydantic TypeAdapter (typer._adapters).
            FLOOR: lambda: _timed([sys.executable, "-c", FLOOR], os.environ),
        }
        for label, (_, env) in versions.items():
            for name, cmd in COMMANDS:
                cases[f"{label} {name}"] = _kpdev(env, cmd)
        rounds = _common.Rounds(cases).run(
            args.rounds, progress=lambda r, n: print("round %d/%d" % (r, n), flush=True)
        )
    finally:
        for _, env in versions.values():
            subprocess.run(
                [sys.executable, "-c", _RUN, "sim", "stop", "--all"], env=env, capture_output=True
            )
    _common.load_line("end")
    rows = [[name, "%.3f" % rounds.median(name), _common.spread(rounds.values[name])]
            for name in ("python -c pass", FLOOR)]  # fmt: skip
    for label, (title, _) in versions.items():
        for name, _ in COMMANDS:
            xs = rounds.values[f"{label} {name}"]
            rows.append(
                [f"{title}: kpdev {name}", "%.3f" % _common.median(xs), _common.spread(xs)]
            )
    _common.table(["%d rounds, whole process" % args.rounds, "median s", "spread"], rows)
    floor = rounds.ratio(FLOOR, "python -c pass")
    q1, med, q3 = _common.quartiles(floor)
    print("\n%s / python -c pass: %.2fx (IQR %.2f..%.2f; not a target: what Typer itself costs)"
          % (FLOOR, med, q1, q3))  # fmt: skip
    print()
    for label, (title, _) in versions.items():
        for name in ("--help", "boards --json"):
            _common.judge(
                "RATIO",
                f"{title} kpdev {name} / python -c pass:",
                rounds.ratio(f"{label} {name}", "python -c pass"),
                "x",
                4,
            )
        _common.judge(
            "TIME",
            f"{title} kpdev info --board sim-linux (warm):",
            rounds.values[f"{label} {COMMANDS[-1][0]}"],
            " s",
            0.35,
            fmt="%.3f",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
