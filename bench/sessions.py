"""Eight sessions at once against one Linux agent: every answer right, every session moving (R6).

Real: a sim-linux agent listening on tcp://127.0.0.1 with a key (its own process, on its own CPU),
the small model tests/data/dense_int8.tflite.  Each session is a host ``Client`` of its own
(its own connection, HELLO and session nonce) in a thread of its own, sending N requests one at a
time, alternately INFER of an input of its own and PING of data naming the session and the
request.  An answer is right when INFER gives exactly what one session alone got for the same
input (computed first, on a session of its own) and PING echoes this session's data.

Figures: wrong answers (target 0); the longest time any session waited between two answers
while the run went on (target <= 1 s: all sessions progress at once, none waits for another to
finish); the slowest session's progress when the first one finished; requests per second of the
8 sessions together against one session alone, same requests (for the record: the agent answers
one frame at a time under one lock, so 8 sessions share its time).

Run: python bench/sessions.py [-n REQUESTS_PER_SESSION] [--sessions 8]   (default n=10000)
"""

from __future__ import annotations

import argparse
import threading
import time

import _common
import numpy as np

from kpdev.host.client.client import Client
from kpdev.host.link.transport import open_url
from kpdev.protocol import ops

KEY = bytes(range(32))
INPUTS = 64  # distinct inputs per session


def inputs_of(session):
    rng = np.random.default_rng(1000 + session)
    return [rng.integers(-128, 128, (1, 16)).astype(np.int8) for _ in range(INPUTS)]


def connect(url):
    client = Client(open_url(url), key=KEY, timeout=30)
    client.hello()
    return client


class Run:
    """One session's requests and what came back."""

    def __init__(self, url, session, n, expected):
        self.url = url
        self.session = session
        self.n = n
        self.expected = expected
        self.xs = inputs_of(session)
        self.done = 0
        self.wrong = 0
        self.times = []
        self.error = None

    def __call__(self):
        try:
            client = connect(self.url)
            for i in range(self.n):
                if i % 2:
                    data = b"s%d-r%d" % (self.session, i)
                    right = client.request(ops.PING, {"data": data})["data"] == data
                else:
                    k = (i // 2) % INPUTS
                    y = client.infer(self.xs[k], "dense")[0][0]
                    right = np.array_equal(y, self.expected[self.session][k])
                self.wrong += not right
                self.done += 1
                self.times.append(time.monotonic())
            client.close()
        except Exception as e:  # reported, and counted as a failure of the run
            self.error = "%s: %s" % (type(e).__name__, e)


def run(url, sessions, n, expected):
    runs = [Run(url, s, n, expected) for s in range(sessions)]
    threads = [threading.Thread(target=r) for r in runs]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return runs, time.monotonic() - t0, t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=10000, help="requests per session")
    ap.add_argument("--sessions", type=int, default=8)
    args = ap.parse_args()
    _common.pin_host()
    print(_common.machine())
    proc, url = _common.start_tcp_agent("sim-linux", key=KEY)
    try:
        setup = connect(url)
        setup.upload("dense", _common.small_model(), "tflite")
        expected = {
            s: [setup.infer(x, "dense")[0][0] for x in inputs_of(s)] for s in range(args.sessions)
        }
        setup.close()

        alone, alone_s, _ = run(url, 1, args.n, expected)
        many, many_s, t0 = run(url, args.sessions, args.n, expected)
    finally:
        _common.stop(proc)

    errors = [r.error for r in alone + many if r.error]
    for e in errors:
        print("session failed:", e)
    wrong = sum(r.wrong for r in alone + many) + sum(r.n - r.done for r in alone + many)
    first_end = min(r.times[-1] for r in many if r.times)
    slowest = min(sum(1 for t in r.times if t <= first_end) / r.n for r in many)
    stall = max(
        max(np.diff([t0] + r.times)) if r.times else float("inf") for r in many
    )  # the longest wait between answers of one session, the start included
    rate_alone = args.n / alone_s
    rate_many = args.sessions * args.n / many_s
    _common.table(
        ("case", "requests", "seconds", "requests/s", "per session/s"),
        [
            (
                "1 session alone",
                args.n,
                "%.1f" % alone_s,
                "%.0f" % rate_alone,
                "%.0f" % rate_alone,
            ),
            (
                "%d sessions at once" % args.sessions,
                args.sessions * args.n,
                "%.1f" % many_s,
                "%.0f" % rate_many,
                "%.0f" % (rate_many / args.sessions),
            ),
        ],
    )
    print(
        "slowest session's progress when the first finished: %.0f%%; throughput %d sessions / "
        "1 session: %.2fx" % (100 * slowest, args.sessions, rate_many / rate_alone)
    )
    _common.verdict("COUNT", "wrong or missing answers", wrong, "", 0)
    _common.verdict("TIME", "longest wait of a session between two answers", stall, " s", 1.0)


if __name__ == "__main__":
    main()
