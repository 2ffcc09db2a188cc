"""Model upload: throughput over a pty against raw writes, and a small MCU's heap while uploading.

(a) Throughput (issue 19 P3: at least 90% of raw).  Each case on a pty of its own in raw mode,
the process on the master side (stdin = stdout = master), the host on the slave path through
``open_url`` (pyserial), as ``kpdev sim --listen pty`` sets it up.  ``upload``: ``Client.upload``
of a ~1 MB model (``modelgen.dense_int8(1024, 1000, 10)``) to a sim-linux agent, then deleted.
``raw``: the same number of bytes as the upload puts on the wire, written in pieces of the
upload's frame size, to a reader process that drains them into one buffer and answers with an
8-byte acknowledgement.  ``before_upload``: the upload to the agent of ``--before`` (exported
from git, on ``PYTHONPATH``), same host client.  ``_common.Rounds`` alternates the cases for
``--rounds`` rounds after a warm-up; each case's figure for a round is the median of PER_ROUND
transfers; the verdict judges the per-round ratios (median, IQR, NOISY when the IQR crosses it).

(b) Heap on sim-mcu-64k (target: the upload needs under 32 KB).  The board's agent command with
its storage quota raised to 4 MB, so a 1 MB model fits.  First the agent's own figures from STATS
``memory`` before and after one upload; then, independently of them, the smallest
``-X heapsize`` (4 KB steps) at which the agent starts and answers, and the smallest at which it
completes the whole upload.  In that smallest heap the upload ran within ``heap_total`` bytes,
starting from ``heap_used`` at idle: their difference is an upper bound of what the upload itself
needs (and 4 KB less heap was not enough).

Run: python bench/upload.py            (both parts)
     python bench/upload.py pty        (a) only  [--rounds 9] [--before REV | --no-before]
     python bench/upload.py heap       (b) only
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
import tty

import _common

from kpdev.host.client.client import Client
from kpdev.host.link.transport import PipeLink, open_url
from kpdev.host.runtime import modelgen
from kpdev.protocol import ops

THROUGHPUT_TARGET = 0.90
HEAP_TARGET = 32 * 1024
PER_ROUND = 3  # transfers per case and round (their median is the round's figure)
BEFORE = "2ae08a6"  # main before issue 19's upload work
MCU_BOARD = "sim-mcu-64k"
MCU_QUOTA = 4000000
HEAP_LO_K, HEAP_HI_K, HEAP_STEP_K = 16, 256, 4
FILLED_MARGIN = 4096  # less than this free at heap_peak: the heap filled up


def model_1mb():
    """The ~1 MB model both parts upload."""
    return modelgen.dense_int8(inputs=1024, hidden=1000, outputs=10)


# -- (a) throughput over a pty ------------------------------------------------------------------
class Pty:
    """A pty in raw mode: a process on the master side (stdin = stdout), the host on the slave
    path through ``open_url`` (pyserial), as ``kpdev sim --listen pty`` sets it up."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.link = open_url(os.ttyname(self.slave), timeout=10.0)
        self.proc = None

    def start(self, argv, env):
        self.log = open(os.path.join(_common.HOME, "pty-%d.log" % self.master), "wb")
        self.proc = subprocess.Popen(
            argv, stdin=self.master, stdout=self.master, stderr=self.log, env=env
        )
        self.proc.log_path = self.log.name
        _common.pin_peer(self.proc.pid)
        return self.proc

    def close(self):
        if self.proc is not None:
            _terminate(self.proc)
            self.log.close()
        self.link.close()
        os.close(self.slave)
        os.close(self.master)


def _terminate(proc):
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Uploader:
    """A sim-linux agent on a pty of its own, and the host ``Client`` uploading to it."""

    def __init__(self, label, model, env=None):
        self.label = label
        self.model = model
        self.pty = Pty()
        argv, agent_env = _common.agent_argv("sim-linux")
        state = os.path.join(_common.HOME, "state-" + label)
        argv[argv.index("--state") + 1] = state
        if env:
            agent_env.update(env)
        self.proc = self.pty.start(argv, agent_env)
        self.client = Client(self.pty.link, timeout=30.0)
        self.client.hello()
        self.names = iter(range(1000000))
        self.cpu = 0.0
        self.count = 0
        b0 = self.client.bytes_out
        self.upload()  # warm-up; its bytes on the wire are what the raw baseline writes
        self.wire = self.client.bytes_out - b0

    def upload(self):
        """One upload of the model (then deleted); returns its seconds."""
        name = "m%d" % next(self.names)
        c0 = _common.cpu_seconds(self.proc.pid)
        t0 = time.perf_counter()
        self.client.upload(name, self.model, "tflite")
        t = time.perf_counter() - t0
        self.cpu += _common.cpu_seconds(self.proc.pid) - c0
        self.count += 1
        self.client.delete(name)
        return t

    def rate(self):
        """MB/s of model bytes: the median of PER_ROUND uploads."""
        return len(self.model) / _common.median([self.upload() for _ in range(PER_ROUND)]) / 1e6

    def steps(self):
        """The upload Client.upload makes, step by step, timed: where the time goes."""
        client, model = self.client, self.model
        name = "s%d" % next(self.names)
        t0 = time.perf_counter()
        sha = hashlib.sha256(model).digest()
        t1 = time.perf_counter()
        body = {"name": name, "format": "tflite", "size": len(model), "sha256": sha, "meta": {}}
        client.request(ops.MODEL_BEGIN, body)
        t2 = time.perf_counter()
        chunk = max(64, client.max_payload - 96 - len(name))  # as Client.upload sizes chunks
        view = memoryview(model)
        requests = (
            (ops.MODEL_CHUNK, {"name": name, "offset": at, "data": bytes(view[at : at + chunk])})
            for at in range(0, len(model), chunk)
        )
        for _reply in client.pipeline(requests):
            pass
        t3 = time.perf_counter()
        client.request(ops.MODEL_COMMIT, {"name": name, "activate": True})
        t4 = time.perf_counter()
        client.delete(name)
        return t1 - t0, t2 - t1, t3 - t2, t4 - t3

    def close(self):
        self.pty.close()


class Raw:
    """The baseline: the same bytes written in pieces of the frame size through pyserial to a
    reader process on the master side, which drains them into one buffer and acknowledges."""

    def __init__(self, total, piece):
        self.total, self.piece = total, piece
        self.pty = Pty()
        self.proc = _common.start_drain(total, self.pty.master)
        self.data = memoryview(bytes(total))
        self.cpu = 0.0
        self.count = 0
        self.write()  # warm-up

    def write(self):
        port = self.pty.link
        c0 = _common.cpu_seconds(self.proc.pid)
        t0 = time.perf_counter()
        for at in range(0, self.total, self.piece):
            port.write(self.data[at : at + self.piece])
        ack = b""
        while len(ack) < 8:
            more = port.read(8 - len(ack))
            if not more:
                raise RuntimeError("the drain reader did not acknowledge")
            ack += more
        t = time.perf_counter() - t0
        self.cpu += _common.cpu_seconds(self.proc.pid) - c0
        self.count += 1
        if int.from_bytes(ack, "little") != self.total:
            raise RuntimeError("the drain reader got %d bytes" % int.from_bytes(ack, "little"))
        return t

    def rate(self):
        return self.total / _common.median([self.write() for _ in range(PER_ROUND)]) / 1e6

    def close(self):
        _terminate(self.proc)
        self.pty.close()


def bench_pty(model, rounds, before_rev):
    print("(a) upload over a pty: sim-linux agent vs raw writes on the same kind of pyserial port")
    _common.load_line("start")
    parts = []
    try:
        after = Uploader("after", model)
        parts.append(after)
        raw = Raw(after.wire, after.client.max_payload)
        parts.append(raw)
        cases = {"upload": after.rate, "raw": raw.rate}
        before = None
        if before_rev:
            src = _common.export_rev(before_rev, _common.tempdir("kpdev-bench-up-"))
            before = Uploader("before", model, {"PYTHONPATH": src})
            parts.append(before)
            cases["before_upload"] = before.rate
        r = _common.Rounds(cases).run(rounds)
        steps = {u.label: [u.steps() for _ in range(5)] for u in (after, before) if u}
    except Exception:
        for u in parts:
            if isinstance(u, Uploader):
                print("%s agent log: %s" % (u.label, _common.log_tail(u.proc)))
        raise
    finally:
        for u in parts:
            u.close()
    _common.load_line("end")
    print(
        "model %d bytes; the upload puts %d bytes on the wire (frames of up to %d B payload);"
        " the baseline writes those bytes raw" % (len(model), after.wire, raw.piece)
    )
    print(
        "%d rounds, each case the median of %d transfers a round%s"
        % (
            rounds,
            PER_ROUND,
            "; before: agent of %s, same host client" % before_rev if before else "",
        )
    )
    rows = []
    for name, who in (("upload", after), ("raw", raw), ("before_upload", before)):
        if who is None:
            continue
        q1, med, q3 = _common.quartiles(r.values[name])
        rows.append(
            [
                name,
                "%.1f" % med,
                "%.1f..%.1f" % (q1, q3),
                "%.2f" % (len(model) / med / 1e3),
                "%.1f" % (who.cpu / who.count * 1e3),
            ]
        )
    _common.table(
        ["case", "median MB/s", "IQR MB/s", "ms per upload", "agent/reader CPU ms"], rows
    )
    print("(MB/s: model bytes for an upload, bytes written for raw; CPU: 10 ms ticks, all runs)")
    labels = ("host sha256", "MODEL_BEGIN", "MODEL_CHUNKs", "MODEL_COMMIT")
    for label, st in steps.items():
        print(
            "one upload step by step, %s (median of 5, ms): " % label
            + ", ".join(
                "%s %.2f" % (labels[k], _common.median([x[k] for x in st]) * 1e3) for k in range(4)
            )
        )
    if before is not None:
        _common.judge(
            "RATIO",
            "upload_pty_after_vs_before",
            r.ratio("upload", "before_upload"),
            "x",
            1.0,
            at_most=False,
            note="for the record: MB/s of this tree's agent over %s's" % before_rev,
        )
    return _common.judge(
        "RATIO",
        "upload_pty_throughput",
        r.ratio("upload", "raw"),
        "x",
        THROUGHPUT_TARGET,
        at_most=False,
        note="upload MB/s / raw MB/s, per round",
    )


# -- (b) heap on the small MCU ------------------------------------------------------------------
def _mcu(heap_k=None):
    heap = "%dK" % heap_k if heap_k else None
    return _common.start_agent(MCU_BOARD, quota=MCU_QUOTA, heap=heap)


def _run_mcu(heap_k, model, upload):
    """One agent run: HELLO, STATS (reset), the upload if asked, STATS again.

    Returns (ok, why, before, after, seconds): the memory figures before and after (after is
    None when the agent could not answer any more).
    """
    # A fresh "flash" each run: a part file left by a failed run would be resumed, not re-sent.
    shutil.rmtree(os.path.join(_common.HOME, "boards", MCU_BOARD), ignore_errors=True)
    proc = _mcu(heap_k)
    client = Client(PipeLink(proc, timeout=1.0), timeout=10.0)
    before = after = None
    seconds = 0.0
    try:
        try:
            client.hello()
            before = client.stats(reset=True)["memory"]
            if not upload:
                return True, "", before, before, 0.0
            t0 = time.perf_counter()
            result = client.upload("big", model, "tflite")
            seconds = time.perf_counter() - t0
            if result.get("size") != len(model):
                raise RuntimeError("commit reported %r" % result)
            ok, why = True, ""
        except Exception as e:
            tail = _common.log_tail(proc, 1)
            ok, why = False, "%s: %s%s" % (type(e).__name__, e, " | log: " + tail if tail else "")
        try:
            after = client.stats()["memory"]
        except Exception:
            after = None
        return ok, why, before, after, seconds
    finally:
        client.close()
        _common.stop(proc)


def _smallest_heap(model, upload, first_guess=None):
    """Smallest heap in K (HEAP_STEP_K steps) that works, by binary search.

    Returns (K or None, [(K, ok)...], (before, after) memory figures of the run at that K).
    """
    lo, hi = HEAP_LO_K, HEAP_HI_K  # lo is taken to fail, hi is checked to work
    ok, why, before, after, _s = _run_mcu(hi, model, upload)
    tried = [(hi, ok)]
    if not ok:
        print("  even %dK fails: %s" % (hi, why))
        return None, tried, None
    best = before, after
    while hi - lo > HEAP_STEP_K:
        if first_guess and lo < first_guess < hi:
            mid, first_guess = first_guess, None
        else:
            mid = (lo + hi) // 2
        mid -= mid % HEAP_STEP_K
        ok, why, before, after, _s = _run_mcu(mid, model, upload)
        tried.append((mid, ok))
        if ok:
            hi, best = mid, (before, after)
        else:
            lo = mid
    return hi, tried, best


def _sysinfo_doc():
    """What the agent's memory fields mean: the docstring of device/sysinfo.py's memory()."""
    from kpdev.device import sysinfo

    try:
        with open(sysinfo.__file__) as f:
            text = f.read()
    except OSError:
        return ""
    i = text.find("def memory")
    j = text.find('"""', i)
    k = text.find('"""', j + 3)
    if i < 0 or j < 0 or k < 0:
        return ""
    return " ".join(text[j + 3 : k].split())


def _board_heap_k():
    from kpdev.host.boards.catalog import get_board

    return int(str(get_board(MCU_BOARD).sim.get("heapsize", "256K")).rstrip("Kk"))


def _agent_figures(model, heap_k):
    """The agent's own heap figures around one upload at ``heap_k``.

    Returns (ok, filled, idle, peak, live_peak); the figures are None when not reported.
    """
    ok, why, before, after, seconds = _run_mcu(heap_k, model, True)
    print(
        "\nthe agent's own figures at -X heapsize=%dK: upload %s"
        % (
            heap_k,
            "completed in %.2f s (%.2f MB/s over pipes)" % (seconds, len(model) / seconds / 1e6)
            if ok
            else "FAILED: " + why,
        )
    )
    if before is None or after is None:
        return ok, False, None, None, None
    keys = sorted(set(before) | set(after))
    _common.table(
        ["field (bytes)", "idle, before", "after upload"],
        [[k, before.get(k, "-"), after.get(k, "-")] for k in keys],
    )
    idle = before.get("heap_used")
    peak = after.get("heap_peak")
    live = after.get("heap_live_peak")
    total = after.get("heap_total")
    if idle is None or peak is None or total is None:
        print("no heap_peak reported")
        return ok, False, None, None, None
    if peak > total:
        print("heap_peak is larger than the whole heap: not a high-water mark; ignored")
        return ok, False, None, None, None
    filled = total - peak < FILLED_MARGIN
    print(
        "idle heap in use %d B; heap_peak %d B (peak - idle = %d B); heap_live_peak %s B%s"
        % (idle, peak, peak - idle, live, " (live - idle = %d B)" % (live - idle) if live else "")
    )
    if filled:
        print(
            "the heap filled up (less than %d B free at the peak): MicroPython collected during "
            "requests, so heap_peak is no upper bound here" % FILLED_MARGIN
        )
    return ok, filled, idle, peak, live


def bench_heap(model):
    board_k = _board_heap_k()
    print(
        "\n(b) heap on %s (-X heapsize=%dK) while uploading %d bytes (quota raised to %d)"
        % (MCU_BOARD, board_k, len(model), MCU_QUOTA)
    )
    argv, _env = _common.agent_argv(MCU_BOARD, quota=MCU_QUOTA)
    print("agent: " + " ".join([os.path.basename(argv[0])] + argv[1:]))
    doc = _sysinfo_doc()
    if doc:
        print("device/sysinfo.py memory(): " + doc)
    ok, filled, idle, peak, live = _agent_figures(model, board_k)
    for bigger in (2 * board_k, 4 * board_k):
        if ok and not filled:
            break
        # A heap that does not fill up, where heap_peak (garbage included) is an upper bound.
        ok, filled, idle2, peak, _live = _agent_figures(model, bigger)
        if ok and not filled and idle2 is not None:
            idle = idle2
    if not ok or filled:
        peak = None

    print(
        "\nsmallest -X heapsize (%dK steps) that works, independent of the agent's figures:"
        % HEAP_STEP_K
    )
    t0 = time.perf_counter()
    start_k, tried, _mem = _smallest_heap(model, False)
    print("  start + HELLO + STATS:   %sK  (tried %s)" % (start_k, _tried(tried)))
    guess = start_k + HEAP_STEP_K if start_k else None
    up_k, tried, up_mem = _smallest_heap(model, True, guess)
    print("  + the whole 1 MB upload: %sK  (tried %s)" % (up_k, _tried(tried)))
    print("  search took %.1f s" % (time.perf_counter() - t0))
    if up_k is None:
        print("RESULT upload_heap_empirical_bound n/a (fails even at %dK) MISS" % HEAP_HI_K)
        return False
    state = "completes" if up_k <= board_k else "fails; it completes from %dK" % up_k
    print("%s's %dK heap: the upload %s" % (MCU_BOARD, board_k, state))
    if live is not None and idle is not None:
        _common.verdict(
            "RESULT",
            "upload_heap_agent_live_peak_minus_idle",
            live - idle,
            " B",
            HEAP_TARGET,
            note="the agent's lower bound: live objects only",
        )
    if peak is not None and idle is not None:
        _common.verdict(
            "RESULT",
            "upload_heap_agent_peak_minus_idle",
            peak - idle,
            " B",
            HEAP_TARGET,
            note="the agent's upper bound: a request's garbage included",
        )
    # At up_k the whole upload ran within heap_total bytes, from heap_used at idle.
    before, after = up_mem
    bound = after["heap_total"] - before["heap_used"]
    print(
        "at %dK: heap_total %d B, idle heap_used %d B"
        % (up_k, after["heap_total"], before["heap_used"])
    )
    return _common.verdict(
        "RESULT",
        "upload_heap_empirical_bound",
        bound,
        " B",
        HEAP_TARGET,
        note="heap_total - idle heap_used, in the smallest heap that completes (%dK)" % up_k,
    )


def _tried(tried):
    return ", ".join("%dK %s" % (k, "ok" if ok else "fail") for k, ok in tried)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("which", nargs="?", default="all", choices=("all", "pty", "heap"))
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--before", default=BEFORE, help="git revision of the 'before' agent")
    parser.add_argument("--no-before", action="store_true")
    args = parser.parse_args()
    if args.rounds < _common.MIN_ROUNDS:
        raise SystemExit("at least %d rounds" % _common.MIN_ROUNDS)
    _common.pin_host()
    print("upload benchmarks (%s)" % _common.machine())
    model = model_1mb()
    if args.which in ("all", "pty"):
        bench_pty(model, args.rounds, None if args.no_before else args.before)
    if args.which in ("all", "heap"):
        bench_heap(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
