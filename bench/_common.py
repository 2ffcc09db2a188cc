"""What the benchmark scripts share: a private KPDEV_HOME, agent processes, timing, verdicts.

Importing this module points ``KPDEV_HOME`` at a temporary directory (removed at exit), so a
benchmark never touches the user's simulated boards, and drops ``KPDEV_KEY``/``KPDEV_BOARD``
(kpdev reads them when a board starts, not at import).

``python bench/_common.py echo REQ REP`` is the baseline echo server of ``roundtrip.py``;
``python bench/_common.py drain TOTAL`` is the baseline reader of ``upload.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

if __name__ == "__main__":
    HOME = None  # a baseline peer (echo, drain): no boards, and it may be ended by a signal
else:
    HOME = tempfile.mkdtemp(prefix="kpdev-bench-")
    os.environ["KPDEV_HOME"] = HOME
    os.environ.pop("KPDEV_KEY", None)
    os.environ.pop("KPDEV_BOARD", None)
    atexit.register(lambda: remove(HOME))

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SMALL_MODEL = os.path.join(REPO, "tests", "data", "dense_int8.tflite")


# -- where processes run -----------------------------------------------------------------------
# The host on CPU 0, the agent (or baseline peer) on CPU 1, as a device is a processor of its own.
# Left to the scheduler, the pair sometimes shares a core and sometimes not, and figures jump by
# 2-3x from one process start to the next.
PIN = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
if PIN:
    _CPUS = sorted(os.sched_getaffinity(0))
    HOST_CPU, PEER_CPU = _CPUS[0], _CPUS[1]


def pin_host():
    """Run this process on the host's CPU (no-op on a single-CPU machine)."""
    if PIN:
        os.sched_setaffinity(0, {HOST_CPU})


def pin_peer(pid):
    """Run process ``pid`` on the peer's CPU."""
    if PIN:
        try:
            os.sched_setaffinity(pid, {PEER_CPU})
        except OSError:
            pass


@contextlib.contextmanager
def on_peer_cpu():
    """Run this process on the peer's CPU for the block (back on the host's CPU after it).

    An in-process baseline (a runtime called directly) then computes on the core where the
    agent computes in the agent's rounds, while the agent is idle: a ratio of the two compares
    the link's cost, not two cores that other processes load differently.
    """
    if not PIN:
        yield
        return
    os.sched_setaffinity(0, {PEER_CPU})
    try:
        yield
    finally:
        pin_host()


def placement():
    """One line saying where the processes run."""
    if PIN:
        return "host pinned to CPU %d, agent/baseline peer to CPU %d" % (HOST_CPU, PEER_CPU)
    return "processes not pinned (fewer than 2 CPUs)"


# -- agent processes ----------------------------------------------------------------------------
def agent_argv(board_id, link="stdio", quota=None, heap=None):
    """argv and env of a simulated board's agent, with the quota or MicroPython heap replaced."""
    from kpdev.host.boards.catalog import get_board
    from kpdev.host.boards.sim import agent_command

    argv, env = agent_command(get_board(board_id), link)
    argv = list(argv)
    if quota is not None:
        argv[argv.index("--quota") + 1] = str(quota)
    if heap is not None:
        for i, a in enumerate(argv):
            if a.startswith("heapsize="):
                argv[i] = "heapsize=%s" % heap
    return argv, env


def start_agent(board_id, link="stdio", key=None, quota=None, heap=None, stdin=None, stdout=None):
    """Start an agent process; its stderr goes to a log file under HOME (``proc.log_path``)."""
    argv, env = agent_argv(board_id, link, quota, heap)
    if key:
        env["KPDEV_KEY"] = key.hex()
    log_path = os.path.join(HOME, "agent-%s-%d.log" % (board_id, time.monotonic_ns()))
    log = open(log_path, "wb")
    stdin = subprocess.PIPE if stdin is None else stdin
    stdout = subprocess.PIPE if stdout is None else stdout
    from kpdev.host.boards.catalog import get_board

    try:
        from kpdev.host.boards.sim import popen_agent, reads_in_blocks
    except ImportError:  # a baseline exported from a revision before the block reads
        proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=log, env=env, bufsize=0)
    else:
        proc = popen_agent(argv, env, stdin, stdout, log, reads_in_blocks(get_board(board_id)))
    log.close()
    pin_peer(proc.pid)
    proc.log_path = log_path
    return proc


def log_tail(proc, lines=3):
    """The agent's last stderr lines."""
    try:
        with open(proc.log_path, errors="replace") as f:
            text = f.read().strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(no log)"


def start_tcp_agent(board_id, key=None, timeout=20.0):
    """Start an agent listening on a free loopback port; returns (proc, "socket://..." URL)."""
    proc = start_agent(board_id, "tcp://127.0.0.1:0", key, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(proc.log_path, errors="replace") as f:
            for line in f:
                if "listening" in line and " port " in line:
                    return proc, "socket://127.0.0.1:%d" % int(line.rsplit(" port ", 1)[1])
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    stop(proc)
    raise RuntimeError("the agent did not start listening: %s" % log_tail(proc))


def stop(proc, timeout=5.0):
    """Close the agent's pipes, then terminate it if it lingers."""
    for f in (proc.stdin, proc.stdout):
        if f:
            try:
                f.close()
            except OSError:
                pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def small_model():
    """Bytes of tests/data/dense_int8.tflite (int8 [1,16] -> int8 [1,4])."""
    with open(SMALL_MODEL, "rb") as f:
        return f.read()


# -- timing and reporting -----------------------------------------------------------------------
def cpu_seconds(pid):
    """User+system CPU seconds process ``pid`` has used (Linux /proc; 10 ms ticks), else 0."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(values):
    """Median of a list of numbers."""
    return statistics.median(values)


def spread(values):
    """(min, max) relative to the median, as a short text."""
    m = median(values)
    return "min %.0f%% max +%.0f%%" % (100 * (min(values) / m - 1), 100 * (max(values) / m - 1))


def table(headers, rows):
    """Print a small aligned table."""
    cells = [headers] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, r in enumerate(cells):
        line = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, len(r))]
        print("  ".join(line))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def verdict(kind, name, value, unit, target, at_most=True, note=""):
    """Print ``KIND name VALUE (target <= T) PASS|MISS``; returns True on PASS.

    The older form, one value and no spread: scripts not yet on ``judge`` use it.  Its record
    (under ``KPDEV_BENCH_RESULTS``) says ``rounds: 1`` and ``method: "one value"``, so the
    tables written from it do not pass it off as a median of rounds.
    """
    ok = value <= target if at_most else value >= target
    fmt = "%.2f" if isinstance(value, float) else "%d"
    tfmt = "%g"
    line = "%s %s %s%s (target %s %s%s) %s" % (
        kind,
        name,
        fmt % value,
        unit,
        "<=" if at_most else ">=",
        tfmt % target,
        unit,
        "PASS" if ok else "MISS",
    )
    print(line + ("  # " + note if note else ""), flush=True)
    _record(kind, name, [float(value)], unit, target, at_most, "PASS" if ok else "MISS", note,
            "one value")  # fmt: skip
    return ok


# -- rounds and verdicts that repeat ----------------------------------------------------------
# Issue 19: a verdict comes from >= 7 alternating rounds, prints the median and the spread, and is
# NOISY (not PASS/MISS) when the spread crosses the target.  The spread is the interquartile range
# (the middle half of the rounds): one round slowed by another process on this shared machine
# does not make a verdict noisy, a target inside the middle half does.
MIN_ROUNDS = 7


class Rounds:
    """Alternating rounds of named cases, measured in one run.

    ``Rounds(cases).run(n)`` calls each case once per round, the order reversed every other
    round (A B C, C B A, ...) so that drift in the machine's load falls on every case alike, after
    ``warmup`` unrecorded rounds.  A case is a callable returning its figure for the round (a time,
    a rate...).  ``values[name]`` holds the figures in round order; ``ratio(a, b)`` gives the
    per-round ratios a/b, which is what a verdict should judge (both sides of each ratio ran
    back to back, under the same load).
    """

    def __init__(self, cases, warmup=1):
        self.cases = dict(cases)
        self.warmup = warmup
        self.values = {name: [] for name in self.cases}

    def run(self, n=MIN_ROUNDS, progress=None):
        names = list(self.cases)
        for r in range(self.warmup + n):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                value = self.cases[name]()
                if r >= self.warmup:
                    self.values[name].append(value)
            if progress:
                progress(r - self.warmup + 1, n)
        return self

    def ratio(self, num, den):
        return [a / b for a, b in zip(self.values[num], self.values[den], strict=True)]

    def median(self, name):
        return median(self.values[name])


def quartiles(values):
    """(q1, median, q3) of ``values`` (inclusive method; the median itself for one value)."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def load():
    """The machine's load averages (1, 5, 15 min) from /proc/loadavg, or None off Linux."""
    try:
        with open("/proc/loadavg") as f:
            return tuple(float(x) for x in f.read().split()[:3])
    except (OSError, ValueError):
        return None


def load_line(when):
    """Print and return ``LOAD when 1min 5min 15min (N cores)``; run_all.py records these."""
    la = load()
    text = "LOAD %s %s (%d cores)" % (
        when,
        " ".join("%.2f" % x for x in la) if la else "unknown",
        os.cpu_count() or 1,
    )
    print(text, flush=True)
    return la


def summary(values, fmt="%.2f"):
    """``median M (IQR Q1..Q3, range LO..HI, N rounds)``: one side of a ratio, for the printout."""
    q1, med, q3 = quartiles([float(v) for v in values])
    return "median %s (IQR %s..%s, range %s..%s, %d rounds)" % (
        fmt % med,
        fmt % q1,
        fmt % q3,
        fmt % min(values),
        fmt % max(values),
        len(values),
    )


def judge(kind, name, values, unit, target, at_most=True, note="", fmt="%.2f", exact=False):
    """Print a verdict on per-round ``values``; returns "PASS", "MISS" or "NOISY".

    ``KIND name MEDIAN (target <= T) VERDICT  [median of N rounds, IQR Q1..Q3, range LO..HI]``.
    PASS/MISS when the whole interquartile range is on one side of the target, NOISY when the
    target falls inside it.  Fewer than ``MIN_ROUNDS`` values are judged but say so, unless
    ``exact``: a deterministic figure (a byte count, an accuracy from fixed seeds) that is the
    same on every run, given as one value and said to be exact.  When ``KPDEV_BENCH_RESULTS``
    names a file (bench/run_all.py sets it), the verdict is appended to it as one JSON line, from
    which bench/write_docs.py writes the tables of docs/benchmarks.md.
    """
    values = [float(v) for v in values]
    q1, med, q3 = quartiles(values)

    def ok(v):
        return v <= target if at_most else v >= target

    if ok(q1) and ok(q3):
        word = "PASS"
    elif not ok(q1) and not ok(q3):
        word = "MISS"
    else:
        word = "NOISY"
    cmp = "<=" if at_most else ">="
    if exact:
        detail = "exact: deterministic, the same on every run"
        method = "exact"
    else:
        detail = "median of %d rounds, IQR %s..%s, range %s..%s" % (
            len(values),
            fmt % q1,
            fmt % q3,
            fmt % min(values),
            fmt % max(values),
        )
        method = "rounds"
        if len(values) < MIN_ROUNDS:
            detail += ", FEWER THAN %d ROUNDS" % MIN_ROUNDS
    line = "%s %s %s%s (target %s %g%s) %s  [%s]" % (
        kind,
        name,
        fmt % med,
        unit,
        cmp,
        target,
        unit,
        word,
        detail,
    )
    print(line + ("  # " + note if note else ""), flush=True)
    _record(kind, name, values, unit, target, at_most, word, note, method)
    return word


def _record(kind, name, values, unit, target, at_most, word, note, method):
    """Append one verdict as a JSON line to ``KPDEV_BENCH_RESULTS``, when it names a file."""
    out = os.environ.get("KPDEV_BENCH_RESULTS")
    if not out:
        return
    import json

    q1, med, q3 = quartiles(values)
    record = {
        "kind": kind,
        "name": name,
        "median": med,
        "q1": q1,
        "q3": q3,
        "min": min(values),
        "max": max(values),
        "rounds": len(values),
        "method": method,
        "unit": unit,
        "target": target,
        "at_most": at_most,
        "verdict": word,
        "note": note,
        "script": os.path.splitext(os.path.basename(sys.argv[0]))[0],
        "load": load(),
    }
    with open(out, "a") as f:
        f.write(json.dumps(record) + "\n")


def _exit_on_sigterm():
    """SIGTERM (run_all's timeout, a user's kill) exits through atexit, so temp dirs go too."""
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass


def tempdir(prefix):
    """``tempfile.mkdtemp`` removed at exit, also on SIGTERM (simulated boards running from it
    stopped first, see ``remove``)."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(remove, path)
    return path


def stop_boards(home):
    """Stop every simulated board whose background server runs under KPDEV_HOME ``home``."""
    saved = os.environ.get("KPDEV_HOME")
    os.environ["KPDEV_HOME"] = home
    try:
        from kpdev.host.boards import simserver

        simserver.stop_all()
    except Exception as e:  # noqa: BLE001  (at exit: say so, go on removing)
        print("bench: could not stop the boards under %s: %s" % (home, e), file=sys.stderr)
    finally:
        if saved is None:
            os.environ.pop("KPDEV_HOME", None)
        else:
            os.environ["KPDEV_HOME"] = saved


def remove(path):
    """Remove a temporary folder, after stopping the simulated boards running from a KPDEV_HOME
    inside it (a folder with ``run/*.json``, up to 3 levels down): a background board of a
    script ended early (SIGTERM, an exception) would go on running, writing into the folder."""
    root_depth = path.rstrip(os.sep).count(os.sep)
    for dirpath, dirnames, _ in os.walk(path):
        if dirpath.count(os.sep) - root_depth >= 3:
            dirnames[:] = []
        if "run" in dirnames:
            try:
                records = os.listdir(os.path.join(dirpath, "run"))
            except OSError:
                continue
            if any(n.endswith(".json") for n in records):
                stop_boards(dirpath)
    shutil.rmtree(path, True)


def machine():
    """One line about this machine, for the record."""
    import platform

    return "%s, %d cores, Python %s; %s" % (
        platform.machine(),
        os.cpu_count(),
        platform.python_version(),
        placement(),
    )


# -- baseline peers (run as separate processes) -------------------------------------------------
def _recv_exact(conn, buf):
    view = memoryview(buf)
    got = 0
    while got < len(buf):
        n = conn.recv_into(view[got:])
        if not n:
            return False
        got += n
    return True


def echo_main(req_size, rep_size):
    """TCP echo baseline: per request read exactly ``req_size`` bytes, send ``rep_size`` bytes."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    sys.stdout.write("%d\n" % server.getsockname()[1])
    sys.stdout.flush()
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray(req_size)
    reply = bytes(rep_size)
    while _recv_exact(conn, buf):
        conn.sendall(reply)
    conn.close()
    server.close()


def start_echo(req_size, rep_size):
    """Start the echo baseline; returns (proc, "socket://..." URL)."""
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "echo", str(req_size), str(rep_size)],
        stdout=subprocess.PIPE,
    )
    pin_peer(proc.pid)
    port = int(proc.stdout.readline())
    return proc, "socket://127.0.0.1:%d" % port


def start_drain(total, fd):
    """Start the pty baseline reader with stdin = stdout = ``fd``."""
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "drain", str(total)], stdin=fd, stdout=fd
    )
    pin_peer(proc.pid)
    return proc


def drain_main(total):
    """pty baseline: per round read ``total`` bytes from stdin (a pty master), ack with 8 bytes.

    Reads into one buffer allocated once: os.read(fd, n) allocates n bytes per call, which costs
    2-3x more per call from about 256 KB up (glibc serves such sizes with mmap).
    """
    stdin = open(0, "rb", buffering=0, closefd=False)
    buf = bytearray(65536)
    while True:
        got = 0
        while got < total:
            try:
                n = stdin.readinto(buf)
            except OSError:  # EIO: the slave side closed
                return
            if not n:
                return
            got += n
        os.write(1, got.to_bytes(8, "little"))


if __name__ == "__main__":
    if sys.argv[1] == "echo":
        echo_main(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1] == "drain":
        drain_main(int(sys.argv[2]))


def export_rev(rev, into):
    """The kpdev source at git revision ``rev``, importable as ``kpdev`` from the folder
    returned (a baseline run beside the working tree, with ``PYTHONPATH`` pointed there)."""
    root = os.path.join(into, "src")
    pkg = os.path.join(root, "kpdev")
    os.makedirs(pkg)
    archive = subprocess.run(["git", "-C", REPO, "archive", rev], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", pkg], input=archive.stdout, check=True)
    return root


if HOME is not None:
    _exit_on_sigterm()
