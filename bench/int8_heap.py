"""The heap tflite_int8 models hold and need on the MicroPython unix port, per weights mode.

For each model and each ``weights`` load option (ram, file, mapped), in a MicroPython process
that runs the device code from a ROMFS image mapped outside the heap (as a board runs it from
flash, ``host/agent/romfs.py``) and, for "mapped", with a model area mapped the same way
(``--model-area mem:ADDR:SIZE``, a board's flash partition for models):

- held: live heap after the load less before it (gc.mem_alloc after gc.collect; the backend's
  code and objects, the arena, and whatever weights are in RAM), measured at a 4 MB heap;
- invoke: what one inference allocates on top (gc.mem_alloc after it less before it);
- least heap: the smallest ``-X heapsize`` (4 KB steps, binary search) in which the model loads
  and runs one inference on zeros.

``--baseline REV`` measures a revision of the tree the same way (its device code, exported
from git), for a before/after table.  Runs on 64-bit x64: pointers and heap blocks are twice a
Cortex-M's, so these figures are upper bounds of a 32-bit board's.

    python bench/int8_heap.py [--models a.tflite ...] [--modes ram,file,mapped] [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import _common  # private KPDEV_HOME; temporary folders removed at exit
from _common import REPO

MODELS = ["dense_int8", "conv_int8", "keras_cnn_int8"]
BIG = 4096  # KB: the heap the held figures are measured in

SCRIPT = r"""
import gc, os, sys
from kpdev.accelerators import tflite_int8
from kpdev.protocol.tensors import Tensor
path, weights = sys.argv[1], sys.argv[2]
meta = {"weights": weights}
if weights == "mapped":
    from kpdev.accelerators.modelarea import open_area
    meta["_area"] = open_area(os.getenv("KPDEV_MODEL_AREA"))
gc.collect()
before = gc.mem_alloc()
free0 = gc.mem_free()
m = tflite_int8.TFLiteInt8Backend().load(path, meta)
gc.collect()
held = gc.mem_alloc() - before
spec = m.io_spec()["inputs"][0]
size = 1
for d in spec["shape"]:
    size *= d
item = 4 if spec["dtype"] == "float32" else 1
x = [Tensor(spec["dtype"], spec["shape"], bytes(size * item))]
gc.collect()
base = gc.mem_alloc()
m.run(x)
run = gc.mem_alloc() - base
info = m.info()
print("RESULT", held, run, info["arena_size_bytes"], info["weights"], info["weights_in_ram_bytes"],
      info.get("heap_held_bytes", -1), info["kernels"])
"""


def _lib(tree: str | None, dest: str) -> str:
    # The device code of ``tree`` (a folder holding kpdev/; None: this tree) staged and
    # compiled as a board's /lib, then a ROMFS image of it.
    code = "from kpdev.host.agent.micropython import stage_lib; stage_lib(%r)" % dest
    if tree is not None:
        code = "import sys; sys.path.insert(0, %r); " % tree + code
    subprocess.run([sys.executable, "-c", code], check=True)
    from kpdev.host.agent.romfs import write_image

    return write_image(dest, dest + ".romfs")


def run_one(image: str, model: str, weights: str, heap_kb: int, area: str) -> dict:
    """One load and inference in a fresh MicroPython process; the RESULT fields or the error."""
    from kpdev.host.agent.romfs import MOUNT, command

    if os.path.exists(area):
        os.remove(area)  # every run places the model afresh
    env = dict(os.environ, KPDEV_MODEL_AREA_FILE=area + ":%d" % (4 << 20))
    argv = command(image, "%dK" % heap_kb, [model, weights], MOUNT + SCRIPT)
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT"):
            f = line.split()[1:]
            return {
                "held": int(f[0]),
                "invoke": int(f[1]),
                "arena": int(f[2]),
                "weights": f[3],
                "weights_in_ram": int(f[4]),
            }
    text = (out.stderr + out.stdout).strip().splitlines()
    return {"error": text[-1] if text else "exit code %d" % out.returncode}


def least_heap(image: str, model: str, weights: str, area: str, lo: int = 8, hi: int = 1024):
    """Smallest heap (KB, 4 KB steps) in which the model loads and runs, or None above ``hi``."""
    if "error" in run_one(image, model, weights, hi, area):
        return None
    while hi - lo > 4:
        mid = (lo + hi) // 2 // 4 * 4
        if "error" in run_one(image, model, weights, mid, area):
            lo = mid
        else:
            hi = mid
    return hi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", help="model files (default: tests/data models)")
    ap.add_argument("--modes", default="ram,file,mapped")
    ap.add_argument("--baseline", help="a git revision to measure too (its device code)")
    ap.add_argument("--max-kb", type=int, default=1024, help="largest heap the search tries")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    models = args.models or [os.path.join(REPO, "tests", "data", m + ".tflite") for m in MODELS]
    work = _common.tempdir("kpdev-bench-heap-")
    area = os.path.join(work, "area.bin")
    trees = {"this tree": None}
    if args.baseline:
        base = os.path.join(work, "base", "kpdev")
        os.makedirs(base)
        archive = subprocess.run(
            ["git", "-C", REPO, "archive", args.baseline], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", base], input=archive, check=True)
        trees = {args.baseline: os.path.dirname(base), **trees}
    rows = []
    for label, tree in trees.items():
        image = _lib(tree, os.path.join(work, label.replace(" ", "-")))
        for model in models:
            for weights in args.modes.split(","):
                if label != "this tree" and weights == "mapped":
                    continue  # the baseline has no model area
                row = {"tree": label, "model": os.path.basename(model), "weights": weights}
                row.update(run_one(image, model, weights, 4096, area))
                if "error" not in row:
                    row["least_heap_kb"] = least_heap(image, model, weights, area, hi=args.max_kb)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| tree | model | weights | held B | invoke B | arena B | least heap |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        if "error" in r:
            print(f"| {r['tree']} | {r['model']} | {r['weights']} | {r['error']} | | | |")
            continue
        least = r["least_heap_kb"]
        print(
            f"| {r['tree']} | {r['model']} | {r['weights']} | {r['held']} | {r['invoke']} | "
            f"{r['arena']} | {'>%dK' % args.max_kb if least is None else '%dK' % least} |"
        )


if __name__ == "__main__":
    main()
