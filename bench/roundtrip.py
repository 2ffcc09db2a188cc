"""INFER round trip over loopback TCP against echoes of the same bytes (issue 19, P2).

Targets: an INFER takes at most 1.5x an echo on the same link class and at most 3x a plain
socket echo, one at a time (single) and with the agent's window in flight (pipelined).

Real: a sim-linux agent listening on tcp://127.0.0.1 (its own process, on the peer CPU), the
small model tests/data/dense_int8.tflite (int8 [1,16] -> int8 [1,4]), the host ``Client`` on
``open_url("socket://...")``: ``client.infer`` one at a time, ``client.infer_many`` pipelined.

Baselines, each an echo server process (Python sockets, TCP_NODELAY) that reads exactly the
request frame's byte count and answers with the reply frame's byte count:
- echo on the same link class: the client writes the real request frame through
  ``open_url("socket://...")`` (the host's link class) and reads the reply's byte count;
- plain socket echo: the same through a bare Python socket.

Before and after: the host side of each version runs in a worker process of its own (this script
with ``--worker``), the "before" one with the code of ``--before`` (default: main when this was
written) exported from git on ``PYTHONPATH``, so its client, link class and agent are all that
revision's.  Every case is one call into a worker: PER_ROUND exchanges, the mean time per
exchange returned.  ``_common.Rounds`` alternates the cases (order reversed every round) for
``--rounds`` rounds after a warm-up; verdicts come from the per-round ratios (``_common.judge``:
median, IQR, NOISY when the IQR crosses the target).

Run: python bench/roundtrip.py [--rounds 9] [--before REV]
"""

import argparse
import os
import socket
import subprocess
import sys
import time

import _common

TARGET_LINK = 1.5
TARGET_SOCKET = 3.0
PER_ROUND = 300
IN_PROCESS = 2000  # INFERs per round of the in-process cases (no link: CPU only)
WARMUP = 300
BEFORE = "2ae08a6"  # main before issue 19's round-trip work


# -- the worker: one version's host side ------------------------------------------------------
class SocketLink:
    """A plain TCP socket (TCP_NODELAY) as a link: the floor under any link class."""

    def __init__(self, url):
        host, port = url[len("socket://") :].rsplit(":", 1)
        self._s = socket.create_connection((host, int(port)))
        self._s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read(self, n):
        return self._s.recv(n)

    def write(self, data):
        self._s.sendall(data)

    def close(self):
        self._s.close()


def echo_single(link, frame, rep_size, n):
    """n request/reply exchanges through ``link``, one at a time."""
    for _ in range(n):
        link.write(frame)
        got = 0
        while got < rep_size:
            got += len(link.read(65536))


def echo_pipelined(link, frame, rep_size, n, window):
    """n exchanges with up to ``window`` requests in flight, as ``Client.pipeline`` keeps."""
    sent = done = got = 0
    while done < n:
        while sent < n and sent - done < window:
            link.write(frame)
            sent += 1
        got += len(link.read(65536))
        done = got // rep_size


def worker(baselines):
    """Serve ``CASE N`` lines on stdin: N exchanges; answer ``wall_us host_cpu_us peer_s``."""
    import numpy as np

    from kpdev.host.client.client import Client
    from kpdev.host.link.transport import open_url
    from kpdev.protocol import ops
    from kpdev.protocol.framing import OVERHEAD

    _common.pin_host()
    procs = []
    try:
        proc, url = _common.start_tcp_agent("sim-linux")
        procs.append(proc)
        client = Client(open_url(url, timeout=5.0), timeout=10.0)
        client.hello()
        client.upload("small", _common.small_model(), "tflite", activate=True)
        window = client.window
        x = np.random.default_rng(0).integers(-128, 128, (1, 16), dtype=np.int8)
        b0, i0 = client.bytes_out, client.bytes_in
        client.infer(x)
        req_size, rep_size = client.bytes_out - b0, client.bytes_in - i0
        frame = client.writer.pack(ops.INFER, 1, bytes(req_size - OVERHEAD))

        def single(n):
            for _ in range(n):
                client.infer(x)

        def pipelined(n):
            for _ in client.infer_many([x] * n, window=window):
                pass

        agent_inproc, client_inproc = _inproc(x)
        cases = {
            "infer_single": (single, proc.pid),
            "infer_pipelined": (pipelined, proc.pid),
            "agent_inproc": (agent_inproc, 0),
            "client_inproc": (client_inproc, 0),
        }
        if baselines:
            echo_proc, echo_url = _common.start_echo(req_size, rep_size)
            procs.append(echo_proc)
            raw_proc, raw_url = _common.start_echo(req_size, rep_size)
            procs.append(raw_proc)
            echo, raw = open_url(echo_url, timeout=5.0), SocketLink(raw_url)
            cases["echo_link_single"] = (
                lambda n: echo_single(echo, frame, rep_size, n),
                echo_proc.pid,
            )
            cases["echo_link_pipelined"] = (
                lambda n: echo_pipelined(echo, frame, rep_size, n, window),
                echo_proc.pid,
            )
            cases["socket_echo_single"] = (
                lambda n: echo_single(raw, frame, rep_size, n),
                raw_proc.pid,
            )
            cases["socket_echo_pipelined"] = (
                lambda n: echo_pipelined(raw, frame, rep_size, n, window),
                raw_proc.pid,
            )
        for fn, _pid in cases.values():
            fn(WARMUP)
        print("ready %d %d %d" % (req_size, rep_size, window), flush=True)
        for line in sys.stdin:
            name, n = line.split()
            fn, pid = cases[name]
            n = int(n)
            p0, c0, t0 = _common.cpu_seconds(pid), time.process_time(), time.perf_counter()
            fn(n)
            t1, c1, p1 = time.perf_counter(), time.process_time(), _common.cpu_seconds(pid)
            if not pid:
                p1 = p0 = 0.0
            print("%.3f %.3f %.6f" % ((t1 - t0) / n * 1e6, (c1 - c0) / n * 1e6, p1 - p0))
            sys.stdout.flush()
        if baselines:
            echo.close()
            raw.close()
        client.close()
    finally:
        for p in procs:
            _common.stop(p)
    return 0


def _inproc(x):
    """CPU of one INFER on each side, in this process, no link: the agent answering a frame
    (its dispatch, a link that takes the reply) and the client sending one and taking a canned
    reply (a link that hands it back).  The version's own code, so before and after compare."""
    import tempfile

    import cbor2

    from kpdev.device.agent import Agent
    from kpdev.host.client.client import Client, infer_body
    from kpdev.protocol import ops
    from kpdev.protocol.framing import FrameWriter

    class Sink:
        def write(self, data):
            pass

    state = tempfile.mkdtemp(dir=_common.HOME)
    agent = Agent(state, "sim-linux")
    model = _common.small_model()
    import hashlib

    begin = {"name": "small", "format": "tflite", "size": len(model), "meta": {}}
    begin["sha256"] = hashlib.sha256(model).digest()
    agent.request(ops.MODEL_BEGIN, begin)
    agent.request(ops.MODEL_CHUNK, {"name": "small", "offset": 0, "data": model})
    agent.request(ops.MODEL_COMMIT, {"name": "small", "activate": True})
    session = agent.open_session(Sink())
    frame = FrameWriter().pack(ops.INFER, 7, cbor2.dumps(infer_body(x)))

    def agent_inproc(n):
        for _ in range(n):
            agent.dispatch(session, session.parser.feed(frame), len(frame))

    y = cbor2.CBORTag(40, [[1, 4], cbor2.CBORTag(72, b"\x01\x02\x03\x04")])
    reply = cbor2.dumps({"y": [y], "t": 25})
    writer = FrameWriter()

    class Canned:
        def __init__(self):
            self.out = b""

        def write(self, data):
            rid = data[4] | data[5] << 8
            self.out = writer.pack(ops.INFER, rid, reply, ops.FLAG_RESPONSE)

        def read(self, n):
            data, self.out = self.out, b""
            return data

    client = Client(Canned())

    def client_inproc(n):
        for _ in range(n):
            client.infer(x)

    return agent_inproc, client_inproc


# -- the driver ---------------------------------------------------------------------------------
class Worker:
    def __init__(self, label, env, baselines):
        argv = [sys.executable, os.path.abspath(__file__), "--worker"]
        if baselines:
            argv.append("--baselines")
        self.label = label
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            raise RuntimeError("the %s worker did not start" % label)
        self.req, self.rep, self.window = (int(v) for v in line[1:])
        self.host_cpu = {}
        self.peer_cpu = {}

    def case(self, name, n=PER_ROUND):
        def run():
            self.proc.stdin.write("%s %d\n" % (name, n))
            self.proc.stdin.flush()
            wall, host, peer = (float(v) for v in self.proc.stdout.readline().split())
            self.host_cpu.setdefault(name, []).append(host)
            self.peer_cpu[name] = self.peer_cpu.get(name, 0.0) + peer
            return wall

        return run

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.terminate()
            self.proc.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--baselines", action="store_true")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--no-before", action="store_true")
    args = parser.parse_args()
    if args.worker:
        return worker(args.baselines)
    if args.rounds < _common.MIN_ROUNDS:
        raise SystemExit("at least %d rounds" % _common.MIN_ROUNDS)
    _common.pin_host()
    print(
        "roundtrip: INFER over loopback TCP vs echoes of the same bytes (%s)" % _common.machine()
    )
    _common.load_line("start")
    workers = []
    try:
        after = Worker("after", dict(os.environ), True)
        workers.append(after)
        cases = {}
        for name in (
            "infer_single",
            "echo_link_single",
            "socket_echo_single",
            "infer_pipelined",
            "echo_link_pipelined",
            "socket_echo_pipelined",
        ):
            cases[name] = after.case(name)
        for name in ("agent_inproc", "client_inproc"):
            cases[name] = after.case(name, IN_PROCESS)
        before = None
        if not args.no_before:
            src = _common.export_rev(args.before, _common.tempdir("kpdev-bench-rt-"))
            env = dict(os.environ, PYTHONPATH=src)
            probe = subprocess.run(
                [sys.executable, "-c", "import kpdev; print(kpdev.__file__)"],
                env=env, capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            assert probe.startswith(src), probe  # the before worker really runs that code
            before = Worker("before", env, False)
            workers.append(before)
            cases["before_infer_single"] = before.case("infer_single")
            cases["before_infer_pipelined"] = before.case("infer_pipelined")
            for name in ("agent_inproc", "client_inproc"):
                cases["before_" + name] = before.case(name, IN_PROCESS)
        rounds = _common.Rounds(cases).run(args.rounds)
    finally:
        for w in workers:
            w.close()
    _common.load_line("end")
    print(
        "request frame %d B, reply frame %d B, window %d; %d rounds x %d exchanges per case"
        % (after.req, after.rep, after.window, args.rounds, PER_ROUND)
    )
    if before is not None:
        print("before: %s (client, link class and agent of that revision)" % args.before)
    rows = []
    for name in cases:
        w = before if name.startswith("before_") else after
        key = name[len("before_") :] if name.startswith("before_") else name
        q1, med, q3 = _common.quartiles(rounds.values[name])
        host = _common.median(w.host_cpu[key][-args.rounds :])
        peer = w.peer_cpu[key] / ((args.rounds + 1) * PER_ROUND) * 1e6
        peer = "-" if key.endswith("_inproc") else "%.0f" % peer
        rows.append([name, "%.1f" % med, "%.1f..%.1f" % (q1, q3), "%.1f" % host, peer])
    _common.table(["case", "median us", "IQR us", "host CPU us", "agent/echo CPU us"], rows)
    print(
        "(us per exchange, per-round means; host CPU: median round; agent/echo CPU: all rounds,"
        " 10 ms ticks; *_inproc: one side's CPU per INFER in one process, no link, %d a round)"
        % IN_PROCESS
    )
    for mode in ("single", "pipelined"):
        _common.judge(
            "RATIO",
            "infer_tcp_%s_vs_link_echo" % mode,
            rounds.ratio("infer_" + mode, "echo_link_" + mode),
            "x",
            TARGET_LINK,
        )
        _common.judge(
            "RATIO",
            "infer_tcp_%s_vs_socket_echo" % mode,
            rounds.ratio("infer_" + mode, "socket_echo_" + mode),
            "x",
            TARGET_SOCKET,
        )
    if before is not None:
        for name in ("infer_single", "infer_pipelined", "agent_inproc", "client_inproc"):
            _common.judge(
                "RATIO",
                "%s_after_vs_before" % name,
                rounds.ratio(name, "before_" + name),
                "x",
                1.0,
                note="for the record: this tree's time over %s's" % args.before,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
