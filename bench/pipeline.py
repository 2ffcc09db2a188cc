"""The device feature pipeline per window on sim-mcu's MicroPython, and kpdev eval on sim-linux.

Issue 19, item 4.  Targets: the pipeline >= 5x faster per window on sim-mcu (MicroPython, the
demo's int16 pipeline: 6 axes x 100 samples, 8 generators, standard scaling, int8 output), with
bit-identical features; ``kpdev eval`` on sim-linux >= 0.5x the speed of the host's in-process
path on the same pack and split.

(a) MicroPython.  Before and after are both real code: the source at ``--before`` (default
``main``) and at ``--after`` (default ``HEAD``) exported from git, each compiled by its own
``stage_lib`` as sim-mcu's agent is (mpy-cross for sim-mcu's CPU), run by the same micropython
binary with sim-mcu's heap, pinned to one CPU.  One process a round and a side, rounds
alternating (bench/_common.py ``Rounds``); each process runs the demo's first ``--windows`` test
windows ``--reps`` times after a warm-up and reports each stage's median per window: ``unpack``
(``columns()``, timed around the call: main reports it as no stage), each feature generator,
``scale`` and ``quantize``, and the whole ``transform()``.  Each process also hashes the feature
doubles and the model inputs it made: before, after and the host's numpy twin must give the same
bytes, or the script fails.

(b) sim-linux.  The demo pack is built once; each round runs ``kpdev eval demo.kp --board
sim-linux`` (the board started by an untimed warm-up round and kept running) and takes the
classification loop's ``wall_s`` from its measurements, the same with ``--before``'s kpdev (its
own home and board, the agent run from the exported source), and runs the host's in-process path
on the same test split: the host's numpy pipeline (``transform_batch``) and the pack's model in the
host reference runtime, window by window.  The ratio is host time / sim-linux time (1.0: as fast
as in-process).

Run: python bench/pipeline.py [--rounds N] [--before REV] [--after REV] [--skip-eval]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

import _common
import numpy as np

DEMO = os.path.join(_common.REPO, "host", "demo")
DATA = os.path.join(DEMO, "basicmotions.npz")
SPEC = os.path.join(DEMO, "basicmotions_pipeline.yml")
MODEL = os.path.join(DEMO, "basicmotions_mlp.tflite")
CLASSES = "Standing,Running,Walking,Badminton"
SPEEDUP = 5.0
EVAL_RATIO = 0.5

# Run by micropython: argv[1] is the folder with spec.json and windows.bin.  Uses the pipeline's
# public API only (columns, features, output, transform), which main has too.
DRIVER = r"""
import hashlib, json, struct, sys
from time import ticks_diff, ticks_us
from kpdev.device.pipeline import Pipeline
from kpdev.protocol.tensors import Tensor

d = sys.argv[1]
reps = int(sys.argv[2])
with open(d + "/spec.json") as f:
    spec = json.load(f)
with open(d + "/windows.bin", "rb") as f:
    data = f.read()
p = Pipeline(spec)
fmt = {"int8": "b", "uint8": "B", "int16": "h", "uint16": "H", "float32": "f"}[p.input_dtype]
wb = p.size * p.n_axes * struct.calcsize(fmt)
windows = [
    Tensor(p.input_dtype, (p.size, p.n_axes), data[i * wb : (i + 1) * wb])
    for i in range(len(data) // wb)
]
hf = hashlib.sha256()
hx = hashlib.sha256()
for w in windows:  # warm-up, and the bytes to compare
    f = p.features(p.columns(w))
    hf.update(struct.pack("<%dd" % len(f), *f))
    hx.update(bytes(p.output(f).data))
stages = {}
whole = []
for r in range(reps):
    for w in windows:
        t0 = ticks_us()
        cols = p.columns(w)
        timings = [("unpack", ticks_diff(ticks_us(), t0))]
        p.output(p.features(cols, timings), timings)
        for name, us in timings:
            stages.setdefault(name, []).append(us)
        t0 = ticks_us()
        p.transform(w)
        whole.append(ticks_diff(ticks_us(), t0))


def med(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


# A generator named twice in the spec would be summed: the demo names each once.
out = {"stages": [[k, med(v)] for k, v in stages.items()], "whole": med(whole)}
out["f"] = "".join("%02x" % b for b in hf.digest())
out["x"] = "".join("%02x" % b for b in hx.digest())
out["loops"] = getattr(p, "loops", "plain")
print(json.dumps(out))
"""


def _stage(src_root: str, dest: str, march: str) -> str:
    # The tree's own stage_lib compiles the tree's own device code.
    code = "import sys; from kpdev.host.agent.micropython import stage_lib; "
    code += "stage_lib(sys.argv[1], march=sys.argv[2])"
    env = dict(os.environ, PYTHONPATH=src_root)
    subprocess.run([sys.executable, "-c", code, dest, march], env=env, check=True)
    return dest


def _host_digests(spec: dict, windows: np.ndarray) -> dict[str, str]:
    from kpdev.host import features

    hf = hashlib.sha256()
    hx = hashlib.sha256()
    f = features.features_batch(spec, windows)
    x = features.transform_batch(spec, windows)
    for k in range(len(windows)):
        hf.update(f[k].astype("<f8").tobytes())
        hx.update(x[k].tobytes())
    return {"f": hf.hexdigest(), "x": hx.hexdigest()}


def micropython_rounds(args, tmp: str) -> None:
    from kpdev.host.agent.micropython import micropython_binary
    from kpdev.host.boards.catalog import get_board
    from kpdev.host.evaluation.evaluate import test_split
    from kpdev.host.features import load_spec, raw_input

    board = get_board("sim-mcu")
    binary = micropython_binary()
    spec = load_spec(SPEC)
    _, test = test_split(DATA, None, None, 0, spec)
    windows = raw_input(spec, test.x[: args.windows])
    work = os.path.join(tmp, "work")
    os.makedirs(work)
    with open(os.path.join(work, "spec.json"), "w") as f:
        json.dump(spec, f)
    with open(os.path.join(work, "windows.bin"), "wb") as f:
        f.write(np.ascontiguousarray(windows).tobytes())
    with open(os.path.join(work, "driver.py"), "w") as f:
        f.write(DRIVER)
    libs = {}
    for side, rev in (("before", args.before), ("after", args.after)):
        src = _common.export_rev(rev, os.path.join(tmp, side))
        libs[side] = _stage(src, os.path.join(tmp, side, "lib"), board.mpy_march)
    heap = board.sim["heapsize"]
    details: dict[str, list[dict]] = {"before": [], "after": []}
    digests = {"host": _host_digests(spec, windows)}

    def run(side):
        env = dict(os.environ, MICROPYPATH=libs[side] + ":.frozen")
        argv = [binary, "-X", "heapsize=" + heap, os.path.join(work, "driver.py"), work]
        argv.append(str(args.reps))
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, preexec_fn=_pin, timeout=120
        )
        if proc.returncode:
            raise SystemExit("%s: micropython failed: %s" % (side, proc.stderr[-800:]))
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        details[side].append(out)
        got = {"f": out["f"], "x": out["x"]}
        if digests.setdefault(side, got) != got:
            raise SystemExit("%s: the features changed from one round to the next" % side)
        return float(out["whole"])

    print(
        "(a) sim-mcu: micropython -X heapsize=%s, %d demo windows (%s, %d x %d) x %d reps a "
        "process"
        % (heap, len(windows), spec["input_dtype"], windows.shape[1], windows.shape[2], args.reps),
        flush=True,
    )
    rounds = _common.Rounds({"before": lambda: run("before"), "after": lambda: run("after")})
    rounds.run(args.rounds)
    # The device's features are the host's, bit for bit; the model inputs are also main's (main's
    # std of integer samples was a two-pass float sum, a few ulps away).
    if digests["after"] != digests["host"]:
        raise SystemExit("the device's features differ from the host's: %r" % digests)
    if digests["before"]["x"] != digests["after"]["x"]:
        raise SystemExit("the model inputs differ from main's: %r" % digests)
    print(
        "bit-identical: after and host, the feature doubles and the model inputs of all %d "
        "windows (sha256 %s..., %s...); main's model inputs too (features: %s); loops after: %s"
        % (
            len(windows),
            digests["host"]["f"][:12],
            digests["host"]["x"][:12],
            "the same" if digests["before"]["f"] == digests["host"]["f"] else "std differs",
            details["after"][0]["loops"],
        )
    )
    names = []
    for d in details["before"] + details["after"]:
        for name, _ in d["stages"]:
            if name not in names:
                names.append(name)
    rows = []
    for name in names:
        per = {}
        for side in ("before", "after"):
            per[side] = [dict(d["stages"]).get(name, 0.0) for d in details[side]]
        ratio = [
            b / a if a else float("inf") for b, a in zip(per["before"], per["after"], strict=True)
        ]
        rows.append(_row(name, per["before"], per["after"], ratio))
    rows.append(
        _row(
            "transform (whole)",
            rounds.values["before"],
            rounds.values["after"],
            rounds.ratio("before", "after"),
        )
    )
    _common.table(["µs a window", "before", "after", "before/after"], rows)
    _common.judge(
        "RATIO",
        "pipeline per window on sim-mcu, before/after",
        rounds.ratio("before", "after"),
        "x",
        SPEEDUP,
        at_most=False,
        note="before %s, after %s; µs: before %.0f, after %.0f"
        % (args.before, args.after, rounds.median("before"), rounds.median("after")),
    )


def _spread_text(values, fmt):
    q1, med, q3 = _common.quartiles(values)
    return (fmt + " (" + fmt + ".." + fmt + ")") % (med, q1, q3)


def _row(name, before, after, ratio):
    return [
        name,
        _spread_text(before, "%.0f"),
        _spread_text(after, "%.0f"),
        _spread_text(ratio, "%.1fx"),
    ]


def _pin():
    if _common.PIN:
        os.sched_setaffinity(0, {_common.PEER_CPU})


def eval_rounds(args, tmp: str) -> None:
    from kpdev.host.evaluation.evaluate import known_only, test_split
    from kpdev.host.features import raw_input, transform_batch
    from kpdev.host.packs.pack import read_pack
    from kpdev.host.runtime.reference import load_reference

    cli = [sys.executable, "-m", "kpdev.host.cli"]
    pack_path = os.path.join(tmp, "demo.kp")
    build = cli + ["pack", "build", pack_path, "-m", MODEL, "--classes", CLASSES]
    build += ["--pipeline", SPEC, "--dataset", DATA, "--json"]
    subprocess.run(build, check=True, capture_output=True)
    pack = read_pack(pack_path)
    pipeline = pack.manifest["pipeline"]
    _, test = test_split(DATA, None, None, 0, pipeline)
    test, _ = known_only(test, pack.classes())
    root = pack.root()
    ref = load_reference(root["format"], pack.model_bytes(root["id"]))
    classes = root["classes"]
    n = len(test)

    def host():
        t0 = time.perf_counter()
        xs = transform_batch(pipeline, raw_input(pipeline, test.x))
        for x in xs:
            y = ref.run([x.reshape(pipeline["output"]["shape"])])
            classes[int(np.argmax(y[0]))]
        return time.perf_counter() - t0

    # main's kpdev (and so its sim-linux agent, started by it) from the exported source, with a
    # home of its own: the pure-Python pipeline the numpy loops replace.
    before_src = _common.export_rev(args.before, os.path.join(tmp, "eval-before"))
    before_home = os.path.join(tmp, "eval-before", "home")
    os.makedirs(before_home)
    sides = {
        "after": dict(os.environ),
        "before": dict(os.environ, PYTHONPATH=before_src, KPDEV_HOME=before_home),
    }

    device_us: dict[str, list[float]] = {"after": [], "before": []}

    def device(side):
        out = os.path.join(tmp, "eval-%s.json" % side)
        argv = cli + ["eval", pack_path, "--board", "sim-linux", "--dataset", DATA]
        argv += ["-o", out, "--force", "--json"]
        proc = subprocess.run(
            argv, capture_output=True, text=True, preexec_fn=_pin_host, env=sides[side]
        )
        if proc.returncode:
            raise SystemExit("kpdev eval (%s) failed: %s" % (side, proc.stderr[-800:]))
        with open(out) as f:
            doc = json.load(f)
        samples = doc["results"]["latency_samples_us"]  # the device's own µs a window
        device_us[side].append(sum(samples) / len(samples))
        return float(doc["results"]["wall_s"])

    print(
        "(b) sim-linux: kpdev eval of the demo pack, %d test windows, against the host's "
        "in-process path (numpy pipeline + reference runtime); before: %s's kpdev and agent"
        % (n, args.before),
        flush=True,
    )
    # Each side's board started now on the peer's CPU (the agent inherits it), the kpdev
    # commands on the host's: as a board is a processor of its own.
    for env in sides.values():
        subprocess.run(
            cli + ["sim", "start", "sim-linux"], capture_output=True, env=env, preexec_fn=_pin
        )
    cases = {"host": host, "after": lambda: device("after"), "before": lambda: device("before")}
    try:
        rounds = _common.Rounds(cases)
        rounds.run(args.rounds)
    finally:
        for env in sides.values():
            subprocess.run(cli + ["sim", "stop", "sim-linux"], capture_output=True, env=env)

    def ms(name):
        return _spread_text([v * 1e3 for v in rounds.values[name]], "%.1f")

    rows = [
        ["host in-process (ms), %d windows" % n, ms("host")],
        ["kpdev eval on sim-linux, after (ms)", ms("after")],
        ["kpdev eval on sim-linux, before (ms)", ms("before")],
        # the warm-up round's figure is left out, as Rounds leaves out its value
        [
            "  device µs a window (pipeline + model), after",
            _spread_text(device_us["after"][1:], "%.0f"),
        ],
        [
            "  device µs a window (pipeline + model), before",
            _spread_text(device_us["before"][1:], "%.0f"),
        ],
        ["host / sim-linux after", _spread_text(rounds.ratio("host", "after"), "%.2fx")],
        ["host / sim-linux before", _spread_text(rounds.ratio("host", "before"), "%.2fx")],
    ]
    _common.table(["", "median (IQR)"], rows)
    _common.judge(
        "RATIO",
        "kpdev eval on sim-linux vs the host in-process",
        rounds.ratio("host", "after"),
        "x",
        EVAL_RATIO,
        at_most=False,
        note="%d windows; the eval's classification loop (wall_s), the board warm" % n,
    )


def _pin_host():
    if _common.PIN:
        os.sched_setaffinity(0, {_common.HOST_CPU})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=_common.MIN_ROUNDS)
    parser.add_argument("--before", default="1d9b520")  # main before the viper and numpy pipelines
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--skip-mcu", action="store_true")
    args = parser.parse_args()
    _common.pin_host()
    print(_common.machine())
    _common.load_line("start")
    tmp = _common.tempdir("kpdev-bench-pipeline-")
    if not args.skip_mcu:
        micropython_rounds(args, tmp)
    if not args.skip_eval:
        eval_rounds(args, tmp)
    _common.load_line("end")


if __name__ == "__main__":
    main()
