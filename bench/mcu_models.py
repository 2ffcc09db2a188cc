"""The MLPerf-Tiny-architecture models on the emulated Cortex-M boards: do they load and run
beside the agent at the issue's heap targets, bit-exact with tflite_micro?

For each model and each QEMU board (Cortex-M3 at 64, 128 and 192 KB of MicroPython heap, and
the Cortex-M7 at the model's target size): start the board, upload the model, run N random int8
inputs through the agent (in pieces when an input is larger than a frame), compare every output
with tflite_micro's on this machine, and read what the board reports: free heap before the
upload and after the model is loaded (INFO), what the loaded model holds and plans (MODEL_INFO),
next to TFLM's arena for the same model (measured here, tflite_micro in-process). The verdict of
a model is PASS when it runs bit-exact on the board of its target size.

    python bench/mcu_models.py [--inputs N] [--json]

Needs qemu-system-arm, the ARM gcc and a MicroPython source (KPDEV_MICROPYTHON_SRC), as the
boards do (docs/qemu-boards.md); the firmware is built on first use and cached.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from _common import REPO  # noqa: F401  (private KPDEV_HOME)

from kpdev.host.boards.catalog import get_board
from kpdev.host.boards.sim import SimBoard
from kpdev.host.client.client import Client
from kpdev.protocol.errors import KpdevError

# model -> the heap (KB) the issue sets as its target on the 32-bit board
TARGETS = {
    "mlperf_ad_autoencoder_int8": 64,
    "mlperf_kws_dscnn_int8": 64,
    "mlperf_ic_resnet8_int8": 128,
    "mlperf_vww_mobilenet_int8": 192,
}
SIZES = (64, 128, 192)


def reference(data: bytes, x: np.ndarray) -> np.ndarray:
    from tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
    interp.set_input(x, 0)
    interp.invoke()
    return interp.get_output(0)


def tflm_arena(path: str) -> int:
    from kpdev.accelerators.tflite_micro import TFLiteMicroBackend

    return int(TFLiteMicroBackend().load(path).info()["arena_used_bytes"])


def inputs(data: bytes, n: int) -> list[np.ndarray]:
    from tflite_micro import runtime

    d = runtime.Interpreter.from_bytes(data, arena_size=1 << 20).get_input_details(0)
    rng = np.random.default_rng(17)
    return [rng.integers(-128, 128, tuple(d["shape"])).astype(d["dtype"]) for _ in range(n)]


def heap_keys(info: dict) -> dict:
    # The figures MODEL_INFO gives about RAM, whatever their names in this version.
    keep = ("heap", "arena", "weights", "mapped", "area", "kernels")
    flat = dict(info)
    flat.update(info.get("details") or {})
    return {k: v for k, v in flat.items() if any(w in k for w in keep)}


def our_arena(path: str) -> int:
    """The arena kpdev's interpreter plans for the model (the same planner as on the board)."""
    from kpdev.accelerators.tflite_int8 import TFLiteInt8Backend

    return int(TFLiteInt8Backend().load(path, {"kernels": "plain"}).info()["arena_size_bytes"])


def run_on(
    board_id: str,
    name: str,
    data: bytes,
    xs: list[np.ndarray],
    want: list,
    arena: int = 0,
    meta: dict | None = None,
) -> dict:
    """One model on one board, from a fresh start of its agent (``--arena``: the block the
    agent sets aside at start for the model's arena, as a firmware sizes TFLM's arena)."""
    sim = SimBoard(get_board(board_id), extra_args=["--arena", str(arena)] if arena else [])
    row: dict = {"board": board_id, "model": name, "arena_reserved": arena, "meta": meta}
    t0 = time.perf_counter()
    link = sim.link()
    client = Client(link, timeout=120)
    try:
        before = client.hello()["memory"].get("heap_free")
        row["heap_free_idle"] = before
        client.upload("m", data, "tflite", meta)
        same = 0
        for x, y in zip(xs, want, strict=True):
            got, us = client.infer(x, "m")
            same += got[0].tobytes() == y.tobytes()
            row.setdefault("device_us", []).append(us)
        row["bit_exact"] = f"{same}/{len(xs)}"
        row["ok"] = same == len(xs)
        row["heap_free_loaded"] = client.info()["memory"].get("heap_free")
        row["model_info"] = heap_keys(client.model_info("m"))
    except KpdevError as e:
        row["ok"] = False
        row["error"] = str(e)
    finally:
        try:
            client.close()
        except (KpdevError, OSError):
            pass
        sim.stop()
    row["wall_s"] = round(time.perf_counter() - t0, 1)
    return row


def _verdict(target: int, smallest: int | None) -> dict:
    return {
        "target_kb": target,
        "smallest_kb": smallest,
        "verdict": "PASS" if smallest is not None and smallest <= target else "MISS",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--models", nargs="*", default=list(TARGETS), help="which of the four")
    ap.add_argument("--no-m7", action="store_true", help="skip the Cortex-M7 runs")
    ap.add_argument("--kernels", default="auto", help="the load option: auto, viper or plain")
    ap.add_argument(
        "--no-reserve",
        action="store_true",
        help="no arena set aside at the agent's start (the model allocates it when it loads)",
    )
    args = ap.parse_args()
    rows = []
    verdicts = {}
    for name in args.models:
        target = TARGETS[name]
        path = os.path.join(REPO, "tests", "data", name + ".tflite")
        data = open(path, "rb").read()
        xs = inputs(data, args.inputs)
        want = [reference(data, x) for x in xs]
        arena = tflm_arena(path)
        reserve = 0 if args.no_reserve else our_arena(path)
        meta = {"kernels": args.kernels}
        smallest = None
        for size in [s for s in SIZES if s >= target]:  # the target, then larger if it fails
            row = run_on(f"qemu-m3-{size}k", name, data, xs, want, reserve, meta)
            row["tflm_arena"] = arena
            row["target_kb"] = target
            rows.append(row)
            if not args.json:
                print(json.dumps(row), flush=True)
            if row["ok"] and smallest is None:
                smallest = size
            if row["ok"]:
                break
        if args.no_m7:
            verdicts[name] = _verdict(target, smallest)
            continue
        m7 = run_on(f"qemu-m7-{target}k", name, data, xs, want, reserve, meta)
        m7["tflm_arena"] = arena
        m7["target_kb"] = target
        rows.append(m7)
        if not args.json:
            print(json.dumps(m7), flush=True)
        verdicts[name] = _verdict(target, smallest)
    if args.json:
        print(json.dumps({"rows": rows, "verdicts": verdicts}, indent=2))
        return
    for name, v in verdicts.items():
        print(
            f"{name:28} target {v['target_kb']} KB, runs bit-exact from "
            f"{v['smallest_kb'] or '-'} KB: {v['verdict']}"
        )


if __name__ == "__main__":
    main()
