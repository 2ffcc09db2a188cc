"""tflite_int8 on the MicroPython unix port: viper kernels against plain bytecode, and RAM
against TFLite Micro's arena.

For each model: load it in one ``micropython -X heapsize=256K`` process (sim-mcu's heap) with
``kernels=viper`` and again with ``kernels=plain``, run the same input N times, and report the
median time per inference of each and their ratio (target: viper at least 10x faster).  RAM:
the arena our planner lays out, the heap the loaded model holds (gc.mem_alloc after load minus
before, code of the interpreter included) and the heap the model needs above that while it runs,
against the arena TFLM's own allocator reports for the same model in this process
(tflite_micro, ``print_allocations``).  Every figure is measured in this run.

    python bench/int8.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile

import _common  # private KPDEV_HOME; temporary folders removed at exit
from _common import REPO

from kpdev.accelerators.tflite_micro import TFLiteMicroBackend
from kpdev.host.agent.micropython import micropython_binary, stage_lib

MODELS = ["dense_int8", "dense_float_io", "conv_int8", "keras_cnn_int8", "keras_mix_float"]

SCRIPT = r"""
import gc, sys, time
from kpdev.accelerators import tflite_int8
from kpdev.protocol.tensors import Tensor
path, kernels, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
gc.collect()
before = gc.mem_alloc()
m = tflite_int8.TFLiteInt8Backend().load(path, {"kernels": kernels})
gc.collect()
held = gc.mem_alloc() - before
spec = m.io_spec()["inputs"][0]
size = 1
for d in spec["shape"]:
    size *= d
item = 4 if spec["dtype"] == "float32" else 1
x = [Tensor(spec["dtype"], spec["shape"], bytes(size * item))]
m.run(x)
times = []
peak = 0
for i in range(n):
    gc.collect()
    base = gc.mem_alloc()
    t0 = time.ticks_us()
    m.run(x)
    times.append(time.ticks_diff(time.ticks_us(), t0))
    peak = max(peak, gc.mem_alloc() - base)
times.sort()
info = m.info()
print("RESULT", times[len(times) // 2], held, peak, info["arena_size_bytes"], info["kernels"])
"""


def run_mp(lib, model, kernels, repeat):
    env = dict(os.environ, MICROPYPATH=f"{lib}:.frozen")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(SCRIPT)
    try:
        out = subprocess.run(
            [micropython_binary(), "-X", "heapsize=256K", f.name, model, kernels, str(repeat)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        os.unlink(f.name)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            us, held, peak, arena, name = line.split()[1:]
            return {
                "us": int(us),
                "held": int(held),
                "run_peak": int(peak),
                "arena": int(arena),
                "kernels": name,
            }
    text = (out.stderr + out.stdout).strip().splitlines()
    return {"error": text[-1] if text else "exit code %d" % out.returncode}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    lib = stage_lib(_common.tempdir("kpdev-bench-lib-"))
    rows = []
    for name in MODELS:
        path = os.path.join(REPO, "tests", "data", name + ".tflite")
        viper = run_mp(lib, path, "viper", args.repeat)
        plain = run_mp(lib, path, "plain", max(3, args.repeat // 2))
        tflm = TFLiteMicroBackend().load(path).info()
        row = {
            "model": name,
            "viper": viper,
            "plain": plain,
            "tflm_arena_used": tflm["arena_used_bytes"],
        }
        if "us" in viper and "us" in plain:
            row["speedup"] = plain["us"] / max(viper["us"], 1)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"{'model':16} {'viper us':>9} {'plain us':>9} {'speedup':>8} {'verdict':>7}  "
        f"{'arena':>6} {'TFLM arena':>10} {'held':>7} {'run peak':>8}"
    )
    for r in rows:
        v, p = r["viper"], r["plain"]
        if "us" not in v or "us" not in p:
            print(f"{r['model']:16} error: {v.get('error') or p.get('error')}")
            continue
        verdict = "PASS" if r["speedup"] >= 10 else "MISS"
        print(
            f"{r['model']:16} {v['us']:9d} {p['us']:9d} {r['speedup']:7.1f}x {verdict:>7}  "
            f"{v['arena']:6d} {r['tflm_arena_used']:10d} {v['held']:7d} {v['run_peak']:8d}"
        )


if __name__ == "__main__":
    main()
