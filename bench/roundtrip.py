"""INFER over loopback TCP against a raw echo of the same bytes (target: at most 1.5x).

Real: a sim-linux agent listening on tcp://127.0.0.1 (its own process), the small model
tests/data/dense_int8.tflite (int8 [1,16] -> int8 [1,4]), the host ``Client`` on
``open_url("socket://...")``: ``client.infer`` one at a time, and ``client.infer_many`` with the
agent's window of requests in flight.

Baseline: an echo server process (Python sockets, TCP_NODELAY) that reads exactly the request
frame's byte count and answers with the reply frame's byte count.  The baseline client uses the
same link class (``open_url("socket://...")``), writes the real request frame bytes and reads
until the reply's byte count has arrived, one at a time and with the same window in flight.

Rounds alternate real and baseline so drift on a shared machine hits both alike.  The verdicts
compare the best round of each case (mean time per inference over the round): on a shared 2-core
machine other processes slow single rounds, and the best round is the stable figure (ratios of
the medians are printed too).  The host runs on one CPU, the agent and
the echo servers on the other (see _common.py).

For the record, the same echo on a plain Python socket (no pyserial), and the CPU time per
inference of the host and of the answering process (from /proc, 10 ms ticks summed over all
rounds): they show where the time goes.

Run: python bench/roundtrip.py
"""

import contextlib
import socket
import sys
import time

import _common
import numpy as np

from kpdev.host.client.client import Client
from kpdev.host.link.transport import open_url
from kpdev.protocol import ops
from kpdev.protocol.framing import OVERHEAD

TARGET = 1.5
ROUNDS = 9
PER_ROUND = 300
WARMUP = 200


def echo_single(link, frame, rep_size, n):
    """n request/reply exchanges through ``link``, one at a time."""
    for _ in range(n):
        link.write(frame)
        got = 0
        while got < rep_size:
            got += len(link.read(65536))


def echo_pipelined(link, frame, rep_size, n, window):
    """n exchanges with up to ``window`` requests in flight, as ``Client.pipeline`` does."""
    sent = done = got = 0
    while done < n:
        while sent < n and sent - done < window:
            link.write(frame)
            sent += 1
        got += len(link.read(65536))
        done = got // rep_size


class SocketLink:
    """A plain TCP socket (TCP_NODELAY) as a link: the floor under pyserial's socket://."""

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


def main():
    _common.pin_host()
    print(
        "roundtrip: INFER over loopback TCP vs a raw echo of the same bytes (%s)"
        % _common.machine()
    )
    with contextlib.ExitStack() as stack:
        return run(stack)


def run(stack):
    proc, url = _common.start_tcp_agent("sim-linux")
    stack.callback(_common.stop, proc)
    client = Client(open_url(url, timeout=5.0), timeout=10.0)
    stack.callback(client.close)
    client.hello()
    client.upload("small", _common.small_model(), "tflite", activate=True)
    window = client.window
    x = np.random.default_rng(0).integers(-128, 128, (1, 16), dtype=np.int8)
    batch = [x] * PER_ROUND

    # The exact frame sizes of one exchange: what the echo baseline must move.
    b0, i0 = client.bytes_out, client.bytes_in
    client.infer(x)
    req_size, rep_size = client.bytes_out - b0, client.bytes_in - i0
    frame = client.writer.pack(ops.INFER, 1, bytes(req_size - OVERHEAD))

    echo_proc, echo_url = _common.start_echo(req_size, rep_size)
    stack.callback(echo_proc.wait, 5)
    echo = open_url(echo_url, timeout=5.0)
    stack.callback(echo.close)
    raw_proc, raw_url = _common.start_echo(req_size, rep_size)
    stack.callback(raw_proc.wait, 5)
    raw = SocketLink(raw_url)
    stack.callback(raw.close)

    device_us = []

    def real_single(n):
        for _ in range(n):
            device_us.append(client.infer(x)[1])

    def real_pipe(n):
        for _ys, us in client.infer_many(batch[:n], window=window):
            device_us.append(us)

    # name -> (run n inferences, pid of the process answering)
    cases = {
        "infer_tcp_single": (real_single, proc.pid),
        "echo_tcp_single": (lambda n: echo_single(echo, frame, rep_size, n), echo_proc.pid),
        "infer_tcp_pipelined": (real_pipe, proc.pid),
        "echo_tcp_pipelined": (
            lambda n: echo_pipelined(echo, frame, rep_size, n, window),
            echo_proc.pid,
        ),
        "socket_echo_single": (lambda n: echo_single(raw, frame, rep_size, n), raw_proc.pid),
        "socket_echo_pipelined": (
            lambda n: echo_pipelined(raw, frame, rep_size, n, window),
            raw_proc.pid,
        ),
    }
    for fn, _pid in cases.values():
        fn(WARMUP)
    device_us.clear()
    wall = {name: [] for name in cases}
    host_cpu = dict.fromkeys(cases, 0.0)
    peer_cpu = dict.fromkeys(cases, 0.0)
    for _ in range(ROUNDS):
        for name, (fn, pid) in cases.items():
            p0, c0, t0 = _common.cpu_seconds(pid), time.process_time(), time.perf_counter()
            fn(PER_ROUND)
            t1, c1, p1 = time.perf_counter(), time.process_time(), _common.cpu_seconds(pid)
            wall[name].append((t1 - t0) / PER_ROUND)
            host_cpu[name] += c1 - c0
            peer_cpu[name] += p1 - p0
    b0, i0 = client.bytes_out, client.bytes_in
    client.infer(x)
    sizes_now = (client.bytes_out - b0, client.bytes_in - i0)

    med = {name: _common.median(v) * 1e6 for name, v in wall.items()}
    best = {name: min(v) * 1e6 for name, v in wall.items()}
    n_all = ROUNDS * PER_ROUND
    print(
        "request frame %d B, reply frame %d B, window %d, %d rounds x %d inferences"
        % (req_size, rep_size, window, ROUNDS, PER_ROUND)
    )
    if sizes_now != (req_size, rep_size):
        print(
            "note: frames are now %d/%d B (the reply's device time 't' changed width)" % sizes_now
        )
    rows = [
        [
            name,
            "%.1f" % best[name],
            "%.1f" % med[name],
            _common.spread(wall[name]),
            "%.0f" % (host_cpu[name] / n_all * 1e6),
            "%.0f" % (peer_cpu[name] / n_all * 1e6),
        ]
        for name in cases
    ]
    _common.table(
        ["case", "best us", "median us", "spread", "host CPU us", "agent/echo CPU us"], rows
    )
    print("(us per inference: best and median round; CPU per inference, all rounds, 10 ms ticks)")
    print(
        "device-side inference time (reply 't'): median %d us, min %d us, max %d us"
        % (_common.median(device_us), min(device_us), max(device_us))
    )
    print(
        "the same link class vs a plain socket, echo single: %.1fx, pipelined: %.1fx"
        % (
            best["echo_tcp_single"] / best["socket_echo_single"],
            best["echo_tcp_pipelined"] / best["socket_echo_pipelined"],
        )
    )
    print(
        "ratios of the medians: single %.2fx, pipelined %.2fx"
        % (
            med["infer_tcp_single"] / med["echo_tcp_single"],
            med["infer_tcp_pipelined"] / med["echo_tcp_pipelined"],
        )
    )
    for name, note in (
        ("single_vs_plain_socket", "for the record: baseline on a plain socket"),
        ("pipelined_vs_plain_socket", "for the record: baseline on a plain socket"),
        ("pipelined", ""),
        ("single", ""),
    ):
        mode = name.split("_")[0]
        base = "socket_echo_" + mode if "plain" in name else "echo_tcp_" + mode
        ratio = best["infer_tcp_" + mode] / best[base]
        _common.verdict("RATIO", "infer_tcp_" + name, ratio, "x", TARGET, note=note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
