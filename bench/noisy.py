"""A noisy line, figure R2 of issue 16: the stock CLI gets a 1 MB model and 1,000 inferences
through by itself.

For each board, ``kpdev sim BOARD --listen tcp://127.0.0.1:0`` serves a fresh simulated board
(a private KPDEV_HOME), and ``tests/support/noisyproxy.py`` sits in front of it: in both
directions it flips one byte in 10,000 (1e-4) and drops one in 100,000 (1e-5), seeded.  Through
the proxy, with the stock CLI as a user runs it (``python -m kpdev.host.cli``, no wrapper, no
outside retries):

1. ``kpdev deploy`` of a ~1 MB int8 model (``modelgen.dense_int8(1024, 1000, 10)``, 1,039,312
   bytes: it fits sim-mcu's 1,048,576-byte store) with ``--keep-unloadable``: the sha256 the
   device reports must be the file's.  sim-mcu stores it but its heap cannot load it (the
   deploy says so, exit 3); sim-linux loads it.
2. ``kpdev deploy`` of ``tests/data/dense_int8.tflite`` and ``kpdev infer`` of 1,000 seeded
   inputs (pipelined within the agent's window): every output must equal the device's own int8
   interpreter run here, in order, 1,000 of them.

It prints, per board: bytes flipped and dropped by the proxy, the seconds each command took, and
what recovery took (the CLI's ``link`` object: retries, resends, upload rewinds, duplicate
replies dropped; the agent's count of requests answered from its reply cache).

Run: python bench/noisy.py [--flip N] [--drop M] [--samples K] [--seed S] [BOARD ...]
     (default: 1 in 10000, 1 in 100000, 1000 samples, seed 16, sim-linux and sim-mcu)
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

sys.path.insert(0, os.path.join(_common.REPO, "tests"))
from support.cli import serve_sim  # noqa: E402
from support.noisyproxy import NoisyProxy  # noqa: E402

from kpdev.accelerators.ndarray import Tensor  # noqa: E402
from kpdev.accelerators.tflite_int8 import TFLiteInt8Backend  # noqa: E402
from kpdev.host.runtime import modelgen  # noqa: E402


def kpdev(*args):
    """``kpdev ARGS --json`` as a user runs it -> (exit code, JSON document, seconds, stderr)."""
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "kpdev.host.cli", *map(str, args), "--json"],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    doc = json.loads(r.stdout) if r.stdout.strip() else {}
    return r.returncode, doc, time.perf_counter() - t0, r.stderr.strip()


def reference(model, x):
    """The device's own int8 interpreter, run in this process: the outputs, bit for bit."""
    loaded = TFLiteInt8Backend().load(model, {})
    return np.array(
        [
            np.frombuffer(
                bytes(loaded.run([Tensor("int8", [1, 16], r.tobytes())])[0].data), np.int8
            )
            for r in x
        ]  # fmt: skip
    )


def run_board(board, args, tmp):
    big = modelgen.dense_int8(inputs=1024, hidden=1000, outputs=10)
    big_path = os.path.join(tmp, "noisy1m.tflite")
    with open(big_path, "wb") as f:
        f.write(big)
    small = open(_common.SMALL_MODEL, "rb").read()
    x = np.random.default_rng(args.seed).integers(-128, 128, (args.samples, 16), dtype=np.int8)
    x_path = os.path.join(tmp, "x.npy")
    np.save(x_path, x)
    want = reference(small, x)
    proc, port = serve_sim(board, "--listen", "tcp://127.0.0.1:0")
    row = {"board": board}
    try:
        target = int(port.rsplit(":", 1)[1])
        with NoisyProxy(target, args.flip, args.drop, args.seed) as proxy:
            code, doc, secs, err = kpdev(
                "deploy", big_path, "-n", "big", "--keep-unloadable", "--port", proxy.url
            )
            up = doc if code == 0 else (doc.get("error") or {}).get("detail") or {}
            row["deploy_exit"] = code
            row["deploy_note"] = "" if code == 0 else err
            row["sha256_exact"] = up.get("sha256") == hashlib.sha256(big).hexdigest()
            row["deploy_s"] = secs
            row["deploy_link"] = up.get("link")
            code, doc, secs, err = kpdev("deploy", _common.SMALL_MODEL, "-n", "small", "--port",
                                         proxy.url)  # fmt: skip
            assert code == 0, err
            code, got, secs, err = kpdev("infer", "-i", x_path, "--port", proxy.url)
            assert code == 0, err
            row["infer_s"] = secs
            row["infer_link"] = got.get("link")
            outputs = np.array(got["outputs"][0], np.int8).reshape(len(x), -1)
            row["results"] = got["count"]
            row["results_correct"] = int(
                sum(np.array_equal(a, b) for a, b in zip(outputs, want, strict=True))
            )
            row["proxy"] = dict(proxy.counts)
        code, stats, _, err = kpdev("stats", "--port", port)
        row["agent_duplicates"] = stats.get("duplicates")
        row["agent_link"] = stats.get("link")
    finally:
        proc.terminate()
        proc.wait(10)
    return row


def main():
    ap = argparse.ArgumentParser(description="kpdev through a noisy line (issue 16, R2)")
    ap.add_argument("boards", nargs="*", default=["sim-linux", "sim-mcu"])
    ap.add_argument("--flip", type=int, default=10000, help="flip one byte in N")
    ap.add_argument("--drop", type=int, default=100000, help="drop one byte in M")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args()
    print(_common.machine())
    print("proxy: flip 1 in %d, drop 1 in %d, both directions, seed %d; %d inferences"
          % (args.flip, args.drop, args.seed, args.samples))  # fmt: skip
    rows = []
    for board in args.boards:
        rows.append(run_board(board, args, _common.HOME))
        print(json.dumps(rows[-1], indent=1), flush=True)
    headers = ["board", "sha256", "deploy s", "retries/resends/rewinds", "results", "infer s",
               "retries/resends", "dup. dropped", "agent cache hits"]  # fmt: skip
    table = []
    for r in rows:
        dl, il = r["deploy_link"] or {}, r["infer_link"] or {}
        table.append([
            r["board"],
            "exact" if r["sha256_exact"] else "WRONG",
            "%.1f" % r["deploy_s"],
            "%s/%s/%s" % (dl.get("retries"), dl.get("resends"), dl.get("rewinds")),
            "%d/%d correct, in order" % (r["results_correct"], r["results"]),
            "%.1f" % r["infer_s"],
            "%s/%s" % (il.get("retries"), il.get("resends")),
            str(il.get("duplicates")),
            str(r["agent_duplicates"]),
        ])  # fmt: skip
    _common.table(headers, table)
    ok = all(r["sha256_exact"] and r["results_correct"] == args.samples for r in rows)
    print("verdict:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
