"""tflite_int8 on an emulated Cortex-M3: instructions per inference, viper against plain loops.

On the 32-bit board (MicroPython's stock ``ports/qemu`` firmware for QEMU ``mps2-an385``, a
Cortex-M3, built from the MicroPython source with a 2 MB heap by default, ``--heap``, so that
the models fit whole in RAM; see tests/support/qemu_m3.py), under ``-icount shift=0,align=off,
sleep=off``: one guest instruction advances virtual time by 1 ns, so the virtual time an
inference takes is the number of instructions it ran.  Those are INSTRUCTION COUNTS, not cycles
(QEMU models no pipeline, cache or flash wait states).  QEMU's count is exact; successive
inferences of one model differ slightly (the table's spread, about 1% at most: the heap's state
and where the 1 ms SysTick interrupts fall), and the table gives the smallest.  Per model, for
the viper loops (loops_viper32 on this 32-bit word) and the plain-bytecode loops: instructions
per inference, the ratio (target: viper >= 10x fewer on the conv models), multiply-accumulates
counted from the model's CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED shapes and instructions
per MAC, and a projection at a nominal clock (``--mhz``, 1 instruction taken as 1 cycle: a
projection, not a measurement).  Every model and loop kind runs on a freshly started board; the
outputs of both loops on the board are checked against tflite-micro's.

On x64, in the same run: median wall time per inference of the same models under our
interpreter on the MicroPython unix port (viper loops, 64-bit word) and under tflite-micro's
reference kernels called in-process on CPython (``tflite_micro.runtime.Interpreter``, compiled
C), and their ratio.

    python bench/mcu_speed.py [--model PATH ...] [--runs 3] [--plain-runs 1] [--repeat N]
                              [--mhz 120] [--json]

Models: tests/data/{dense_int8,conv_int8,keras_cnn_int8}.tflite and every
tests/data/mlperf_*.tflite.  Needs qemu-system-arm, gcc-arm-none-eabi and a MicroPython
source (``$KPDEV_MICROPYTHON_SRC`` or ../shared/vendor); the firmware is cached under the
caller's $KPDEV_HOME (else ~/.local/share/kpdev).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# The caller's KPDEV_HOME, before _common points it at a private one: the firmware cache lives
# there, as a firmware build takes minutes.
_USER_HOME = os.environ.get("KPDEV_HOME") or os.path.expanduser("~/.local/share/kpdev")

import _common  # noqa: E402  (private KPDEV_HOME; temp folders removed at exit)
from _common import REPO  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "tests"))

import numpy as np  # noqa: E402
from support import qemu_m3  # noqa: E402
from tflite_micro import runtime  # noqa: E402

from kpdev.accelerators.int8.interp import Source  # noqa: E402
from kpdev.accelerators.int8.reader import Model  # noqa: E402
from kpdev.accelerators.tflite_micro import TFLiteMicroBackend  # noqa: E402
from kpdev.host.agent.micropython import micropython_binary, stage_lib  # noqa: E402

MODELS = ["dense_int8", "conv_int8", "keras_cnn_int8"]
HEAP = 2 << 20
SEED = 17

# TFLite builtin operator codes with multiply-accumulates.
_CONV_2D = 3
_DEPTHWISE_CONV_2D = 4
_FULLY_CONNECTED = 9

BOARD_CODE = (
    qemu_m3.CLOCK
    + r"""
import gc
from binascii import hexlify
from kpdev.accelerators.tflite_int8 import TFLiteInt8Backend
from kpdev.protocol.tensors import Tensor

def empty(n):
    # The cost of two clock() readings with nothing between them (subtracted from a count).
    best = None
    for _ in range(n):
        t0 = clock()
        t1 = clock()
        if best is None or t1 - t0 < best:
            best = t1 - t0
    print("E", best)

def count(path, inp, kernels, runs, warm):
    gc.collect()
    m = TFLiteInt8Backend().load(path, {"kernels": kernels})
    spec = m.io_spec()["inputs"][0]
    with open(inp, "rb") as f:
        x = [Tensor(spec["dtype"], spec["shape"], f.read())]
    if warm:
        out = m.run(x)
    ns = []
    for _ in range(runs):
        gc.collect()
        t0 = clock()
        out = m.run(x)
        t1 = clock()
        ns.append(t1 - t0)
    print("R", m.info()["kernels"], ",".join([str(v) for v in ns]),
          str(hexlify(out[0].data), "ascii"))
    m = None
    gc.collect()
"""
)

UNIX_SCRIPT = r"""
import gc, sys, time
from kpdev.accelerators.tflite_int8 import TFLiteInt8Backend
from kpdev.protocol.tensors import Tensor
from binascii import hexlify
path, inp, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
m = TFLiteInt8Backend().load(path, {"kernels": "viper"})
spec = m.io_spec()["inputs"][0]
with open(inp, "rb") as f:
    x = [Tensor(spec["dtype"], spec["shape"], f.read())]
out = m.run(x)
times = []
for i in range(n):
    gc.collect()
    t0 = time.ticks_us()
    out = m.run(x)
    times.append(time.ticks_diff(time.ticks_us(), t0))
times.sort()
print("RESULT", m.info()["kernels"], times[len(times) // 2], str(hexlify(out[0].data), "ascii"))
"""


def macs(data: bytes) -> int:
    """Multiply-accumulates of one inference: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED."""
    model = Model(Source(data=data))
    total = 0
    for op in model.ops:
        if op.code not in (_CONV_2D, _DEPTHWISE_CONV_2D, _FULLY_CONNECTED):
            continue
        out = model.tensors[op.outputs[0]].shape
        w = model.tensors[op.inputs[1]].shape
        n_out = 1
        for d in out:
            n_out *= d
        if op.code == _CONV_2D:  # filter [out_c, f_h, f_w, in_c / groups]
            total += n_out * w[1] * w[2] * w[3]
        elif op.code == _DEPTHWISE_CONV_2D:  # filter [1, f_h, f_w, out_c]
            total += n_out * w[1] * w[2]
        else:  # weights [units, inputs]
            total += n_out * w[-1]
    return total


def make_input(data: bytes, rng) -> tuple[bytes, np.ndarray]:
    """A random input for the model's first input: its bytes (little-endian) and array."""
    model = Model(Source(data=data))
    t = model.tensors[model.inputs[0]]
    dtype = {"int8": np.int8, "uint8": np.uint8, "float32": np.float32}[t.dtype]
    if dtype is np.float32:
        x = rng.standard_normal(t.shape).astype(np.float32)
    else:
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max + 1, size=t.shape, dtype=dtype)
    return x.astype(x.dtype.newbyteorder("<")).tobytes(), x


def tflm(data: bytes, x: np.ndarray, repeat: int) -> dict:
    """tflite-micro's reference kernels in this process: median time of invoke(), output."""
    arena = TFLiteMicroBackend().load(data).info()["arena_size_bytes"]
    interp = runtime.Interpreter.from_bytes(data, arena_size=arena)
    interp.set_input(x, 0)
    interp.invoke()
    times = []
    for _ in range(repeat):
        interp.set_input(x, 0)
        t0 = time.perf_counter()
        interp.invoke()
        times.append(time.perf_counter() - t0)
    out = interp.get_output(0)
    return {"us": statistics.median(times) * 1e6, "out": np.ascontiguousarray(out).tobytes().hex()}


def unix_viper(lib: str, path: str, inp: str, repeat: int) -> dict:
    """Our interpreter on the x64 unix port, viper loops: median time per inference, output."""
    env = dict(os.environ, MICROPYPATH=lib)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(UNIX_SCRIPT)
    try:
        r = subprocess.run(
            [micropython_binary(), "-X", "heapsize=8M", f.name, path, inp, str(repeat)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        os.unlink(f.name)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT"):
            _, kernels, us, out = line.split()
            return {"kernels": kernels, "us": int(us), "out": out}
    text = (r.stderr + r.stdout).strip().splitlines()
    return {"error": text[-1] if text else "exit code %d" % r.returncode}


def board_counts(fw: str, rom: str, names: list[str], runs: dict, progress) -> dict:
    """Instructions per inference on the Cortex-M3 for each model and loop kind (``runs``:
    counted runs per kind; more than one: after a warm-up run, else the first run counted).
    Each model and kind runs on a freshly started board, so one's heap is not fragmented by
    the one before."""
    result = {}
    with qemu_m3.Board(fw, rom, icount=0) as b:
        b.exec(BOARD_CODE)
        overhead = int(b.exec("empty(5)").split()[1])
    result["_overhead"] = overhead
    for name in names:
        for kernels in ("viper", "plain"):
            progress("%s %s on the Cortex-M3" % (name, kernels))
            n = runs[kernels]
            code = "count('/rom/m/%s.tflite', '/rom/m/%s.in', %r, %d, %d)" % (
                name,
                name,
                kernels,
                n,
                n > 1,
            )
            try:
                with qemu_m3.Board(fw, rom, icount=0) as b:
                    b.exec(BOARD_CODE)
                    out = b.exec(code, timeout=3600).split()
            except qemu_m3.BoardError as e:
                result[(name, kernels)] = {"error": str(e).splitlines()[-1]}
                continue
            counts = [int(v) - overhead for v in out[2].split(",")]
            result[(name, kernels)] = {"kernels": out[1], "counts": counts, "out": out[3]}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="a .tflite file (default: see above)")
    ap.add_argument("--repeat", type=int, default=20, help="x64 runs per model (median)")
    ap.add_argument("--runs", type=int, default=3, help="counted viper runs per model (board)")
    ap.add_argument(
        "--plain-runs", type=int, default=1, help="counted plain runs per model (board)"
    )
    ap.add_argument("--mhz", type=float, default=120.0, help="nominal clock for projections")
    ap.add_argument(
        "--heap", type=int, default=HEAP, help="the board's MicroPython heap, bytes (max 3 MB)"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    why = qemu_m3.missing()
    if why:
        sys.exit("bench/mcu_speed.py: " + why)
    paths = args.model or [os.path.join(REPO, "tests", "data", m + ".tflite") for m in MODELS]
    if not args.model:
        paths += sorted(glob.glob(os.path.join(REPO, "tests", "data", "mlperf_*.tflite")))

    def progress(msg):
        if not args.json:
            print("..", msg, file=sys.stderr, flush=True)

    progress("firmware (stock AN385, %d KB heap; built once, cached)" % (args.heap >> 10))
    fw = qemu_m3.firmware(os.path.join(_USER_HOME, "firmware"), heap=args.heap)
    work = _common.tempdir("kpdev-mcu-speed-")
    try:
        rng = np.random.default_rng(SEED)
        root = os.path.join(work, "rom")
        progress("device code for ARMv7-M and x64")
        stage_lib(os.path.join(root, "lib"), march="armv7m", standalone=True)
        lib64 = stage_lib(os.path.join(work, "lib64"), march="x64", standalone=True)
        os.makedirs(os.path.join(root, "m"))
        models = []
        for path in paths:
            name = os.path.splitext(os.path.basename(path))[0]
            with open(path, "rb") as f:
                data = f.read()
            raw, x = make_input(data, rng)
            for d in (os.path.join(root, "m"), work):
                shutil.copyfile(path, os.path.join(d, name + ".tflite"))
                with open(os.path.join(d, name + ".in"), "wb") as f:
                    f.write(raw)
            models.append((name, data, x))
        rom = qemu_m3.romfs_image(root, os.path.join(work, "rom.img"))
        runs = {"viper": args.runs, "plain": args.plain_runs}
        counts = board_counts(fw, rom, [m[0] for m in models], runs, progress)
        rows = []
        for name, data, x in models:
            progress("%s on x64" % name)
            ref = tflm(data, x, args.repeat)
            mp = unix_viper(
                lib64,
                os.path.join(work, name + ".tflite"),
                os.path.join(work, name + ".in"),
                args.repeat,
            )
            row = {"model": name, "macs": macs(data), "tflm_x64_us": ref["us"]}
            for kernels in ("viper", "plain"):
                c = counts[(name, kernels)]
                if "error" in c:
                    row[kernels] = {"error": c["error"]}
                    continue
                row[kernels] = {
                    "kernels": c["kernels"],
                    "instructions": c["counts"],
                    "spread": (max(c["counts"]) - min(c["counts"])) / min(c["counts"]),
                    "matches_tflite_micro": c["out"] == ref["out"],
                }
            if "error" in mp:
                row["unix_viper_x64"] = {"error": mp["error"]}
            else:
                row["unix_viper_x64"] = {
                    "kernels": mp["kernels"],
                    "us": mp["us"],
                    "matches_tflite_micro": mp["out"] == ref["out"],
                }
            v, p = row["viper"], row["plain"]
            if "instructions" in v and "instructions" in p:
                row["ratio_plain_over_viper"] = min(p["instructions"]) / min(v["instructions"])
            rows.append(row)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meta = {
        "board": "QEMU %s (Cortex-M3), stock MicroPython firmware, %d-byte heap"
        % (qemu_m3.MACHINE, args.heap),
        "icount": "shift=0,align=off,sleep=off: 1 instruction = 1 ns of virtual time",
        "clock_overhead_subtracted": counts["_overhead"],
        "projection_mhz": args.mhz,
    }
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=2))
        return
    report(rows, meta, args.mhz)


def report(rows, meta, mhz) -> None:
    print("# %s" % meta["board"])
    print("# -icount %s; instruction counts, not cycles" % meta["icount"])
    print(
        "%-26s %9s %12s %13s %6s %8s %8s %8s %10s %6s"
        % (
            "model",
            "MACs",
            "viper instr",
            "plain instr",
            "ratio",
            "vip i/MAC",
            "pln i/MAC",
            "proj ms",
            "exact(v,p)",
            "spread",
        )
    )
    for r in rows:
        v, p = r["viper"], r["plain"]
        if "instructions" not in v:
            print("%-26s viper error: %s" % (r["model"], v["error"]))
            continue
        vi = min(v["instructions"])
        macs_ = max(r["macs"], 1)
        if "instructions" in p:
            pi = min(p["instructions"])
            plain = ("%13d" % pi, "%5.1fx" % r["ratio_plain_over_viper"], "%8.1f" % (pi / macs_))
            exact = "%s,%s" % (v["matches_tflite_micro"], p["matches_tflite_micro"])
            spread = max(v["spread"], p["spread"])
        else:
            plain = ("%13s" % "-", "%6s" % "-", "%8s" % "-")
            exact = "%s,-" % v["matches_tflite_micro"]
            spread = v["spread"]
        print(
            "%-26s %9d %12d %s %s %8.1f %s %8.1f %10s %6s"
            % (
                r["model"],
                r["macs"],
                vi,
                plain[0],
                plain[1],
                vi / macs_,
                plain[2],
                vi / (mhz * 1e3),
                exact,
                "%.2f%%" % (100 * spread),
            )
        )
        if "error" in p:
            print("%-26s plain error: %s" % ("", p["error"]))
    print("# proj ms: viper instructions at a nominal %g MHz, 1 instruction = 1 cycle" % mhz)
    print()
    print(
        "%-26s %14s %14s %8s %6s" % ("model (x64)", "unix viper us", "TFLM C us", "ratio", "exact")
    )
    for r in rows:
        u = r["unix_viper_x64"]
        if "us" not in u:
            print("%-26s error: %s" % (r["model"], u["error"]))
            continue
        print(
            "%-26s %14d %14.1f %7.1fx %6s"
            % (
                r["model"],
                u["us"],
                r["tflm_x64_us"],
                u["us"] / max(r["tflm_x64_us"], 1e-3),
                u["matches_tflite_micro"],
            )
        )


if __name__ == "__main__":
    main()
