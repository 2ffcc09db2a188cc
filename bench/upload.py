"""Model upload: throughput over a pty against raw writes, and a small MCU's heap while uploading.

(a) Throughput (target: at least 90% of raw).  Set up like ``kpdev sim --listen pty``: a pty in
raw mode, the sim-linux agent on the master side (stdin = stdout = master), the host on the slave
path through ``open_url`` (pyserial).  ``Client.upload`` sends a ~1 MB model
(``modelgen.dense_int8(1024, 1000, 10)``).  Baseline: through the very same pyserial port and
pty, the same number of bytes as the upload put on the wire, written in pieces of the upload's
frame size to a reader process on the master side that drains them and answers with an 8-byte
acknowledgement at the end.  The agent and the reader take turns on the master (A B A B A B).
The verdict compares the best round of each: on a shared 2-core machine other processes slow
single rounds by 2-3x, and the best round is the stable figure; medians are printed too.

(b) Heap on sim-mcu-64k (target: the upload needs under 32 KB).  The board's agent command with
its storage quota raised to 4 MB, so a 1 MB model fits.  First the agent's own figures from STATS
``memory`` before and after one upload; then, independently of them, the smallest
``-X heapsize`` (4 KB steps) at which the agent starts and answers, and the smallest at which it
completes the whole upload.  In that smallest heap the upload ran within ``heap_total`` bytes,
starting from ``heap_used`` at idle: their difference is an upper bound of what the upload itself
needs (and 4 KB less heap was not enough).

Run: python bench/upload.py            (both parts)
     python bench/upload.py pty        (a) only
     python bench/upload.py heap       (b) only
"""

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
PTY_ROUNDS = 12  # per phase
PTY_PHASES = 3  # agent and reader take turns this many times each
MCU_BOARD = "sim-mcu-64k"
MCU_QUOTA = 4000000
HEAP_LO_K, HEAP_HI_K, HEAP_STEP_K = 16, 256, 4
FILLED_MARGIN = 4096  # less than this free at heap_peak: the heap filled up


def model_1mb():
    """The ~1 MB model both parts upload."""
    return modelgen.dense_int8(inputs=1024, hidden=1000, outputs=10)


# -- (a) throughput over a pty ------------------------------------------------------------------
def _agent_on_master(master):
    return _common.start_agent("sim-linux", stdin=master, stdout=master)


def _terminate(proc):
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _upload_rounds(master, port, model, rounds, names):
    """Start the agent on the pty, time ``rounds`` uploads, stop it.

    Returns (times, wire bytes of one upload, max payload, [step times of one upload...]).
    """
    proc = _agent_on_master(master)
    _discard_input(port)
    client = Client(_Borrowed(port), timeout=30.0)
    try:
        client.hello()
        client.upload("warmup", model, "tflite")
        client.delete("warmup")
        times = []
        wire = 0
        cpu = 0.0
        for _ in range(rounds):
            name = "m%d" % next(names)
            b0 = client.bytes_out
            c0 = _common.cpu_seconds(proc.pid)
            t0 = time.perf_counter()
            client.upload(name, model, "tflite")
            times.append(time.perf_counter() - t0)
            cpu += _common.cpu_seconds(proc.pid) - c0
            wire = client.bytes_out - b0
            client.delete(name)
        steps = [_upload_steps(client, model, "s%d" % next(names)) for _ in range(rounds)]
        return times, wire, client.max_payload, steps, cpu
    except Exception:
        print("agent log: %s" % _common.log_tail(proc))
        raise
    finally:
        _terminate(proc)


def _upload_steps(client, model, name):
    """The upload Client.upload makes, step by step, timed: where the time goes."""
    t0 = time.perf_counter()
    sha = hashlib.sha256(model).digest()
    t1 = time.perf_counter()
    body = {"name": name, "format": "tflite", "size": len(model), "sha256": sha, "meta": {}}
    client.request(ops.MODEL_BEGIN, body)
    t2 = time.perf_counter()
    chunk = max(64, client.max_payload - 96 - len(name))  # as Client.upload sizes its chunks
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


def _raw_rounds(master, port, total, piece, rounds):
    """Start the drain reader on the pty, time ``rounds`` raw writes of ``total`` bytes."""
    proc = _common.start_drain(total, master)
    _discard_input(port)
    data = bytes(total)
    view = memoryview(data)
    times = []
    cpu = 0.0
    try:
        for r in range(rounds + 1):  # the first is a warm-up
            c0 = _common.cpu_seconds(proc.pid)
            t0 = time.perf_counter()
            for at in range(0, total, piece):
                port.write(view[at : at + piece])
            ack = b""
            while len(ack) < 8:
                more = port.read(8 - len(ack))
                if not more:
                    raise RuntimeError("the drain reader did not acknowledge")
                ack += more
            if r:
                times.append(time.perf_counter() - t0)
                cpu += _common.cpu_seconds(proc.pid) - c0
            if int.from_bytes(ack, "little") != total:
                raise RuntimeError(
                    "the drain reader got %d bytes, not %d"
                    % (int.from_bytes(ack, "little"), total)
                )
    finally:
        _terminate(proc)
    return times, cpu


def _discard_input(link):
    """Drop whatever the last process on the master left unread."""
    link.set_timeout(0.02)
    while link.read(65536):
        pass
    link.set_timeout(10.0)


class _Borrowed:
    """The pyserial-backed link, kept open across agent restarts (close does nothing)."""

    def __init__(self, link):
        self._link = link
        self.url = link.url

    def read(self, n):
        return self._link.read(n)

    def write(self, data):
        self._link.write(data)

    def set_timeout(self, timeout):
        self._link.set_timeout(timeout)

    def close(self):
        pass


def bench_pty(model):
    print("(a) upload over a pty: sim-linux agent vs raw writes on the same pyserial port")
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    link = open_url(path, timeout=10.0)
    names = iter(range(10000))
    up_times, raw_times, steps = [], [], []
    up_cpu = raw_cpu = 0.0
    try:
        for _ in range(PTY_PHASES):
            t, wire, max_payload, st, c = _upload_rounds(master, link, model, PTY_ROUNDS, names)
            up_times += t
            steps += st
            up_cpu += c
            t, c = _raw_rounds(master, link, wire, max_payload, PTY_ROUNDS)
            raw_times += t
            raw_cpu += c
    finally:
        link.close()
        os.close(slave)
        os.close(master)
    size = len(model)
    print(
        "model %d bytes; the upload puts %d bytes on the wire (frames of up to %d B payload);"
        % (size, wire, max_payload)
    )
    print(
        "the baseline writes those %d bytes raw; %d rounds each, interleaved in %d phases"
        % (wire, len(up_times), PTY_PHASES)
    )
    rows = []
    for label, times, nbytes, cpu in (
        ("Client.upload", up_times, size, up_cpu),
        ("raw writes", raw_times, wire, raw_cpu),
    ):
        best, med = min(times), _common.median(times)
        rows.append(
            [
                label,
                "%.2f" % (best * 1e3),
                "%.1f" % (nbytes / best / 1e6),
                "%.2f" % (med * 1e3),
                "%.1f" % (nbytes / med / 1e6),
                "%.1f" % (cpu / len(times) * 1e3),
            ]
        )
    _common.table(
        ["case", "best ms", "best MB/s", "median ms", "median MB/s", "agent/reader CPU ms"], rows
    )
    print("(MB/s: model bytes for the upload, bytes written for the raw baseline)")
    labels = ("host sha256", "MODEL_BEGIN", "MODEL_CHUNKs", "MODEL_COMMIT")
    print(
        "one upload step by step (median ms): "
        + ", ".join(
            "%s %.2f" % (labels[k], _common.median([s[k] for s in steps]) * 1e3) for k in range(4)
        )
    )
    print(
        "ratio of medians: %.2fx"
        % ((size / _common.median(up_times)) / (wire / _common.median(raw_times)))
    )
    ratio = (size / min(up_times)) / (wire / min(raw_times))
    return _common.verdict(
        "RATIO",
        "upload_pty_throughput",
        ratio,
        "x",
        THROUGHPUT_TARGET,
        at_most=False,
        note="upload MB/s / raw MB/s, best of each",
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
    _common.pin_host()
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    print("upload benchmarks (%s)" % _common.machine())
    model = model_1mb()
    if which in ("all", "pty"):
        bench_pty(model)
    if which in ("all", "heap"):
        bench_heap(model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
