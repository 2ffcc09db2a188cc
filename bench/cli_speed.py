"""How long a user waits for a command that needs no board, and for one against a running board.

Issue 19, item 1: every command paid ~0.8 s of imports before it did anything.  Targets:
``kpdev --help`` and ``kpdev boards --json`` <= 4x ``python -c pass``; ``kpdev info --board
sim-linux`` against a running (warm) simulated board <= 0.35 s, whole process.

Before and after are both real code run the same way in the same run: the source at ``--before``
(default ``main``) and at ``--after`` (default ``HEAD``, this branch) exported from git into a
temporary folder each, run with the same Python through ``kpdev.host.cli.main``, each with its own
KPDEV_HOME (removed at the end with the folders, the boards stopped).  Rounds alternate: in each
round every command of both versions runs once.  The timed commands are pinned to one CPU; the
background boards (started by an untimed first ``info``) are not.  Figures: median of the rounds,
and the spread (min, max) as a share of it; a verdict is "noisy" when the target lies inside the
spread of the per-round values instead of beside all of them.

Run: python bench/cli_speed.py [--rounds N] [--before REV] [--after REV]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import _common

_RUN = "import sys; sys.argv[0] = 'kpdev'; from kpdev.host.cli import main; main()"
COMMANDS = (
    ("python -c pass", None),
    ("kpdev --help", ["--help"]),
    ("kpdev boards --json", ["boards", "--json"]),
    ("kpdev info --board sim-linux (warm)", ["info", "--board", "sim-linux"]),
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


def _verdict(name: str, per_round: list[float], unit: str, target: float) -> str:
    med = statistics.median(per_round)
    lo, hi = min(per_round), max(per_round)
    word = "noisy" if lo <= target < hi else ("PASS" if med <= target else "MISS")
    line = "%s %.2f%s (target <= %g%s; rounds %.2f-%.2f) %s" % (
        name, med, unit, target, unit, lo, hi, word
    )  # fmt: skip
    print(line)
    return line


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--before", default="0c8039f")  # main before the lazy imports
    parser.add_argument("--after", default="HEAD")
    args = parser.parse_args()
    if args.rounds < 7:
        raise SystemExit("at least 7 rounds: a median of fewer does not repeat")
    print(_common.machine())
    print("timed commands pinned to CPU %d" % _common.HOST_CPU if _common.PIN else "not pinned")
    print("load average at start: %.2f %.2f %.2f" % os.getloadavg())
    tmp = tempfile.mkdtemp(prefix="kpdev-bench-cli-")
    versions = {}
    try:
        for label, rev in (("before", args.before), ("after", args.after)):
            src = _common.export_rev(rev, os.path.join(tmp, label))
            env = dict(os.environ, KPDEV_HOME=os.path.join(tmp, label, "home"), PYTHONPATH=src)
            env.pop("KPDEV_BOARD", None)
            env["KPDEV_SIM_IDLE"] = "600"
            probe = subprocess.run(
                [sys.executable, "-c", "import kpdev.host.cli as c; print(c.__file__)"],
                env=env, capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            assert probe.startswith(src), probe  # the version really is the exported code
            versions[label] = (rev, env)
            # Untimed: start the background board (and stage its agent), so `info` is warm.
            _timed([sys.executable, "-c", _RUN, "info", "--board", "sim-linux"], env, pin=False)
        times = {(v, c): [] for v in versions for c, _ in COMMANDS}
        for _ in range(args.rounds):
            for label, (_, env) in versions.items():
                for name, cmd in COMMANDS:
                    argv = [sys.executable, "-c", "pass"] if cmd is None else [
                        sys.executable, "-c", _RUN, *cmd
                    ]  # fmt: skip
                    times[(label, name)].append(_timed(argv, env))
    finally:
        for _, env in versions.values():
            subprocess.run(
                [sys.executable, "-c", _RUN, "sim", "stop", "--all"], env=env, capture_output=True
            )
        shutil.rmtree(tmp, ignore_errors=True)
    print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
    rows = []
    for name, _ in COMMANDS:
        row = [name]
        for label in versions:
            xs = times[(label, name)]
            row += ["%.3f" % statistics.median(xs), _common.spread(xs)]
        rows.append(row)
    head = ["%d rounds, whole process, s" % args.rounds]
    for label, (rev, _) in versions.items():
        head += ["%s %s median" % (label, rev), "spread"]
    _common.table(head, rows)
    print()
    for label in versions:
        base = times[(label, "python -c pass")]
        for name in ("kpdev --help", "kpdev boards --json"):
            ratios = [t / b for t, b in zip(times[(label, name)], base, strict=True)]
            _verdict("RATIO %s %s / python -c pass:" % (label, name), ratios, "x", 4)
        _verdict("TIME %s kpdev info --board sim-linux (warm):" % label,
                 times[(label, COMMANDS[-1][0])], " s", 0.35)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
