"""Issue 18: ``kpdev eval --shard`` of the demo pack over 1, 2 and 4 simulated boards of one kind.

For each fleet size N (instances ``BOARD*N``), after one warm-up run that starts the boards and
deploys the pack, the same command runs ``--rounds`` times as a user runs it (a ``kpdev``
process of its own) and the best round is kept.  Per round:

- throughput: samples over the command's wall time (process start to exit: loading the data,
  connecting, checking the pack, evaluating), and over the evaluation itself (the fleet
  document's ``wall_s``);
- host CPU per sample: the kpdev process's own CPU time over the evaluation (its
  ``process_time``, all its threads, which the fleet document records), over the samples; and
  the whole command's (``RUSAGE_CHILDREN`` of this script, which runs nothing else meanwhile:
  interpreter start, imports and loading the data included); the agents' CPU from
  ``/proc/PID/stat`` of every board's agent process and its background server;
- per-sample link bytes and the agents' own time per inference (device clock), from the fleet
  document.

Then a projection, labelled so, of 100 boards on 115200-baud UARTs (8N1: 10 bits a byte) from
the measured bytes and times: each board's time per sample is its UART time plus its agent
time (no overlap assumed), and the host needs the measured host CPU per sample times the
fleet's aggregate rate.

The demo's test split has 40 windows; the script evaluates them repeated ``--repeat`` times (a
dataset file it writes in its temporary KPDEV_HOME), so a round is long enough to time.

Run: python bench/fleet.py [--board sim-mcu] [--sizes 1,2,4] [--repeat 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (a private KPDEV_HOME)
import numpy as np

from kpdev.host.boards import simserver
from kpdev.host.boards.catalog import get_board, instance_id

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "host" / "demo"
HOME = Path(os.environ["KPDEV_HOME"])
UART_BAUD = 115200
BITS_PER_BYTE = 10  # 8N1
PROJECT_BOARDS = 100


def demo_pack() -> Path:
    from kpdev.host.cli.demo import _build

    return _build(HOME)


def repeated_dataset(times: int) -> Path:
    """basicmotions.npz with its TEST fold repeated ``times`` times (TRAIN as it is)."""
    d = np.load(DEMO / "basicmotions.npz", allow_pickle=False)
    out = {k: d[k] for k in d.files}
    test = d["fold"] == 1
    for k in ("x", "y", "fold"):
        out[k] = np.concatenate([d[k][~test]] + [d[k][test]] * times)
    path = HOME / f"basicmotions-test-x{times}.npz"
    np.savez(path, **out)
    return path


def cpu_of(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 when it is gone)."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def board_pids(board: str, n: int) -> list[int]:
    pids = []
    for i in range(1, n + 1):
        st = simserver.status(get_board(instance_id(board, i)))
        pids += [p for p in (st.get("agent_pid"), st.get("pid")) if p]
    return pids


def run(pack: Path, data: Path, board: str, n: int, out: Path) -> dict:
    argv = [sys.executable, "-m", "kpdev.host.cli", "eval", str(pack), "--dataset", str(data),
            "--board", f"{board}*{n}", "--shard", "--json", "-o", str(out), "--force"]  # fmt: skip
    pids = board_pids(board, n)
    agents0 = sum(cpu_of(p) for p in pids)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"kpdev eval failed: {r.stderr[-2000:]}")
    doc = json.loads(r.stdout)
    agents = sum(cpu_of(p) for p in board_pids(board, n)) - agents0
    host = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    samples = doc["samples"]
    assert doc["shard"]["missing_samples"] == 0 and doc["finished"] == n
    members = [m["results"] for m in doc["members"]]
    link = sum(m["link"]["bytes_out"] + m["link"]["bytes_in"] for m in members)
    device_s = sum(m["throughput"]["device_s"] for m in members)
    return {
        "n": n,
        "samples": samples,
        "command_wall_s": wall,
        "eval_wall_s": doc["wall_s"],
        "per_s_command": samples / wall,
        "per_s_eval": samples / doc["wall_s"],
        "host_cpu_s": host,
        # the kpdev process's CPU over the evaluation (its own process_time, all its threads)
        "host_cpu_ms_per_sample": doc["host_cpu_s"] * 1000 / samples,
        "agents_cpu_ms_per_sample": agents * 1000 / samples,
        "bytes_per_sample": link / samples,
        "agent_us_per_sample": device_s * 1e6 / samples,
        "split": [m["samples"] for m in members],
        "accuracy": doc["merged"]["results"]["classification"]["accuracy"],
        "predicted": doc["merged"]["results"]["predicted"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--board", default="sim-mcu")
    ap.add_argument("--sizes", default="1,2,4")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    pack = demo_pack()
    data = repeated_dataset(args.repeat)
    print(f"# {args.board}, demo pack, {40 * args.repeat} samples a run; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")  # fmt: skip
    results = {}
    for n in sizes:
        run(pack, data, args.board, n, HOME / "warm.json")  # start the boards, deploy the pack
        rounds = [run(pack, data, args.board, n, HOME / f"r{n}.json") for _ in range(args.rounds)]
        best = max(rounds, key=lambda r: r["per_s_eval"])
        results[n] = best
        print(
            f"N={n}: {best['per_s_eval']:.1f} samples/s over the evaluation "
            f"({best['per_s_command']:.1f}/s over the whole command, {best['command_wall_s']:.2f}"
            f" s); host CPU {best['host_cpu_ms_per_sample']:.3f} ms/sample over the evaluation "
            f"({best['host_cpu_s']:.2f} s for the whole command), agents "
            f"{best['agents_cpu_ms_per_sample']:.3f} ms/sample; {best['bytes_per_sample']:.0f} "
            f"B/sample; agent time {best['agent_us_per_sample']:.0f} µs/sample; split "
            f"{best['split']}; accuracy {best['accuracy']:.3f}"
        )
    base = results[sizes[0]]
    for n in sizes:
        r = results[n]
        assert r["predicted"] == base["predicted"], "merged predictions differ between fleets"
        print(f"RATIO fleet_throughput_{n}_boards {r['per_s_eval'] / base['per_s_eval']:.2f}x "
              f"of {sizes[0]} board(s)  # note: reported")  # fmt: skip
    # Projection to 100 boards on 115200-baud UARTs (labelled projected, from the figures above).
    one = results[sizes[-1]]
    uart_s = one["bytes_per_sample"] * BITS_PER_BYTE / UART_BAUD
    agent_s = base["agent_us_per_sample"] / 1e6
    per_board = 1.0 / (uart_s + agent_s)
    rate = PROJECT_BOARDS * per_board
    host_cores = rate * min(r["host_cpu_ms_per_sample"] for r in results.values()) / 1000
    print(
        f"PROJECTED {PROJECT_BOARDS} boards at {UART_BAUD} baud: UART {uart_s * 1000:.1f} ms + "
        f"agent {agent_s * 1000:.1f} ms a sample -> {per_board:.1f} samples/s a board, "
        f"{rate:.0f} samples/s in all; host CPU {host_cores:.2f} cores at the measured "
        "host CPU per sample  # note: projected, not measured"
    )
    print("JSON " + json.dumps({str(k): {kk: vv for kk, vv in v.items() if kk != "predicted"}
                                for k, v in results.items()}))  # fmt: skip
    for n in sizes:
        for i in range(1, n + 1):
            simserver.stop(get_board(instance_id(args.board, i)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
