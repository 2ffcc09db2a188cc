"""Free heap on the MicroPython boards: this tree against a baseline revision, in one run.

A refactoring of the device code must not cost a small board RAM: MicroPython keeps every
imported module's code in the heap.  For each simulated MicroPython board of the catalog, and
for the baseline's code and this tree's, the board starts from empty state and ``kpdev info``
reads its free heap (the agent collects garbage first):

- idle: after HELLO, nothing loaded;
- learner pack: ``learn.kp`` (memory learner on the demo's pipeline) deployed;
- demo pack: the demo's pack (pipeline + int8 MLP) deployed;
- int8 model: ``tests/data/dense_int8.tflite`` uploaded and loaded by ``tflite_int8``.

A deploy the board refuses (too little heap, a request over its payload limit) is reported as
refused; the heap is read after the refusal.

One reading is not a figure.  What stays allocated after a deploy moves by kilobytes with things
as unrelated as the length of the state folder's path (seen here: the same code and pack,
112.8 KB free with one ``KPDEV_HOME``, 102.5 KB with a longer one), most likely because
MicroPython's collector is conservative: a stale word on the C stack that looks like a pointer
keeps a dead block alive.  So each case is read ``--samples`` times, each time with a state
folder whose path has another length, and the table gives the median and the range.  The
verdict counts the cases this tree makes clearly worse: every one of its readings below the
baseline's median.

The packs are built once, with this tree's ``kpdev pack build``; the baseline reads the same
files.  The baseline's source is exported from git and run with ``PYTHONPATH`` pointed at it,
so its agent is the old agent too.

Run: python bench/heap.py [--baseline REV] [--samples N] [BOARD ...]
     (default: every MicroPython simulated board of the catalog, 5 samples)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import _common

BASELINE = "3a31f10"  # the last revision before host/ and the device code were reorganised
_RUN = "import sys; sys.path.insert(0, %r); from kpdev.host.cli import main; main()"
DEMO = os.path.join(_common.REPO, "host", "demo")


def _kpdev(cli: list[str], env: dict[str, str], *args: str, check: bool = True):
    proc = subprocess.run([*cli, *args], env=env, capture_output=True, text=True)
    if check and proc.returncode:
        raise SystemExit(f"kpdev {' '.join(args)} failed: {proc.stderr.strip()[-400:]}")
    return proc


def _packs(tmp: str) -> dict[str, str]:
    cli = [sys.executable, "-m", "kpdev.host.cli"]
    env = dict(os.environ)
    demo = os.path.join(tmp, "demo.kp")
    learn = os.path.join(tmp, "learn.kp")
    data = os.path.join(DEMO, "basicmotions.npz")
    pipeline = os.path.join(DEMO, "basicmotions_pipeline.yml")
    _kpdev(cli, env, "pack", "build", demo, "-m", os.path.join(DEMO, "basicmotions_mlp.tflite"),
           "--classes", "Standing,Running,Walking,Badminton", "--pipeline", pipeline,
           "--dataset", data, "--json")  # fmt: skip
    _kpdev(cli, env, "pack", "build", learn, "--learner", "memory", "--pipeline", pipeline,
           "--dataset", data, "--json")  # fmt: skip
    return {"learner pack": learn, "demo pack": demo, "int8 model": _common.SMALL_MODEL}


def _free(cli, env, board, target) -> tuple[int, bool]:
    _kpdev(cli, env, "sim", "stop", board, check=False)
    state = os.path.join(env["KPDEV_HOME"], "boards")
    subprocess.run(["rm", "-rf", state], check=True)
    refused = False
    if target is not None:
        extra = ["--name", "model"] if target.endswith(".tflite") else []
        refused = _kpdev(cli, env, "deploy", target, *extra, "--board", board, check=False)
        refused = refused.returncode != 0
    info = json.loads(_kpdev(cli, env, "info", "--board", board, "--json").stdout)
    _kpdev(cli, env, "sim", "stop", board, check=False)
    return info["memory"]["heap_free"], refused


def _span(values: list[int]) -> str:
    return "%d (%d..%d)" % (_common.median(values), min(values), max(values))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("boards", nargs="*")
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    print(_common.machine())
    from kpdev.host.boards.catalog import load_boards

    boards = args.boards or [
        b.id for b in load_boards().values() if b.simulated and b.runtime == "micropython"
    ]
    tmp = _common.tempdir("kpdev-bench-heap-")
    old_src = _common.export_rev(args.baseline, tmp)
    targets = _packs(tmp)
    clis = {
        args.baseline: ([sys.executable, "-c", _RUN % old_src], {"PYTHONPATH": old_src}),
        "this tree": ([sys.executable, "-m", "kpdev.host.cli"], {}),
    }
    worse = 0
    for board in boards:
        rows = []
        for what, target in [("idle", None), *targets.items()]:
            got = {}
            for label, (cli, extra) in clis.items():
                reads = []
                for n in range(args.samples):
                    # Another path length each time (see the docstring); same for both trees.
                    home = os.path.join(tmp, "home-%s-%s" % ("x" * (1 + 7 * n), len(got)))
                    env = dict(os.environ, KPDEV_HOME=home, **extra)
                    reads.append(_free(cli, env, board, target))
                got[label] = reads
            old, new = ([free for free, _ in got[k]] for k in clis)
            refused = [any(r for _, r in got[k]) for k in clis]
            note = "refused" if refused[1] else ""
            if refused[0] != refused[1]:
                note = "refused by %s only" % (args.baseline if refused[0] else "this tree")
            change = _common.median(new) - _common.median(old)
            worse += max(new) < _common.median(old)  # clearly worse, not a stale word
            rows.append((what, _span(old), _span(new), "%+d" % change, note))
        _common.table(
            (
                f"{board}: free heap, bytes",
                f"{args.baseline}: median (range)",
                "this tree: median (range)",
                "change",
                "",
            ),
            rows,
        )
    _common.verdict(
        "COUNT",
        "heap_cases_clearly_worse_than_baseline",
        worse,
        "",
        0,
        note="boards x cases: %d" % (len(boards) * (1 + len(targets))),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
