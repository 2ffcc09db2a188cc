"""Fuzzed and mutated frames into a running agent (issue 16, figure R1).

The agent of a simulated board runs on pipes, as a board on its USB console.  Frames go to it in
bursts, each burst ending with a PING that must be answered within 2 s.  A burst mixes:

- well-framed requests to every op code (known, reserved and unknown) with template, reshaped,
  mutated or random CBOR bodies, and now and then the RESPONSE/EVENT/ERROR flags or another
  protocol version;
- valid headers with a bad CRC, with a wrong length (header check recomputed: a valid header
  that lies), truncated frames, bit flips anywhere in a frame, random bytes;
- oversized claims: headers claiming more than the agent's limit, or exactly its limit with
  only a few bytes behind them (the claim swallows the frames that follow).

After each burst the store (stored models and their sha256), the active model and the pack are
read and compared with the last reading.  A change is explained when the burst holds a success
reply to a state-changing request this driver sent (what was sent is tracked by request id); a
change after only error replies, or with no state-changing request answered at all, is counted
as unexplained.  A dead agent process is a crash (the driver starts a new one and goes on); a
PING answered after 2 s is slow, one not answered within 10 s a hang (restart, too).

Run: python bench/fuzz.py --frames 100000 --board sim-linux [--seed N] [--burst N] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import struct
import sys
import time
import zlib

import _common
import cbor2

sys.path.insert(0, os.path.join(_common.REPO, "tests"))
from support.fuzzing import DENSE, HOST_MAX, body_for, mutate, random_op  # noqa: E402

from kpdev.protocol import names, ops  # noqa: E402
from kpdev.protocol.framing import FrameParser, FrameWriter  # noqa: E402

PING_LIMIT_S = 2.0  # R1: every PING after a burst answered within this
HANG_S = 10.0  # no answer by then: the agent is stuck
STATE_OPS = {
    ops.MODEL_COMMIT,
    ops.MODEL_ACTIVATE,
    ops.MODEL_DELETE,
    ops.PACK_SET,
    ops.PACK_CLEAR,
    ops.LEARN,
    ops.LEARN_ENABLE,
    ops.LEARN_ADD_CLASSES,
    ops.LEARN_RESET,
    ops.LEARN_SAVE,
    ops.REBOOT,
}


def header(op, rid, length, flags=0x10):
    """12 header bytes with a valid header check, whatever the length claims."""
    head = struct.pack("<BBBBHI", 0xA5, 0x4B, flags, op, rid, length)
    return head + struct.pack("<H", zlib.crc32(head) & 0xFFFF)


class Fuzzer:
    """One board's agent process, the frames sent to it and what came back."""

    def __init__(self, board, seed, burst):
        self.board = board
        self.rng = random.Random(seed)
        self.burst = burst
        self.writer = FrameWriter()
        self.rid = 0
        self.proc = None
        self.counts = {
            "frames": 0,
            "bursts": 0,
            "crashes": 0,
            "hangs": 0,
            "slow_pings": 0,
            "state_changes_explained": 0,
            "state_changes_after_error_reply": 0,
            "state_changes_unexplained": 0,
            "restarts": 0,
            "escaped_exceptions": 0,
        }
        self.kinds = {}
        self.errors = {}
        self.internal = {}
        self.max_burst_s = 0.0
        self.slowest = []  # what the burst with the slowest PING held
        self.burst_kinds = []
        self.suspects = []  # changes not explained: what was sent or refused, before and after
        self.max_ping_s = 0.0
        self.ping_total_s = 0.0
        self.state = None
        self.start()

    # -- the agent ----------------------------------------------------------------------------
    def start(self):
        if self.proc is not None:
            _common.stop(self.proc)
            self.counts["restarts"] += 1
        self.proc = _common.start_agent(self.board)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.parser = FrameParser(HOST_MAX)
        self.max_payload = self.request(ops.HELLO, {"max_payload": HOST_MAX})["max_payload"]
        if not self.stored():
            self.upload()
        self.state = self.snapshot()

    def stored(self):
        return [m["name"] for m in self.request(ops.MODEL_LIST)["models"]]

    def upload(self):
        size = len(DENSE)
        begin = {"name": "m", "format": "tflite", "size": size}
        self.request(ops.MODEL_BEGIN, dict(begin, sha256=hashlib.sha256(DENSE).digest()))
        step = min(1024, self.max_payload - 64)
        for off in range(0, size, step):
            self.request(ops.MODEL_CHUNK, {"name": "m", "offset": off, "data": DENSE[off:][:step]})
        self.request(ops.MODEL_COMMIT, {"name": "m", "activate": True})

    def next_rid(self):
        self.rid = self.rid % 0xFFFF + 1
        return self.rid

    def write(self, data):
        try:
            self.proc.stdin.write(data)
        except (BrokenPipeError, OSError):
            pass  # the agent is gone: the next read says so

    def read_until(self, rid, timeout=HANG_S):
        """(frame, arrival time) read until the reply to ``rid``; None when none came in time."""
        got = []
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        import select

        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                return None
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if not ready:
                continue
            try:
                data = os.read(fd, 1 << 20)
            except BlockingIOError:
                continue
            if not data:
                return None
            now = time.monotonic()
            for frame in self.parser.feed(data):
                got.append((frame, now))
                if frame.rid == rid and frame.flags & ops.FLAG_RESPONSE:
                    return got

    def request(self, op, body=None):
        rid = self.next_rid()
        self.write(self.writer.pack(op, rid, cbor2.dumps(body or {})))
        got = self.read_until(rid)
        if got is None:
            raise RuntimeError(
                "%s: no answer to %s; %s" % (self.board, names.op_name(op), self.tail())
            )
        last = got[-1][0]
        reply = cbor2.loads(last.payload)
        if last.flags & ops.FLAG_ERROR:
            raise RuntimeError("%s: %s refused: %s" % (self.board, names.op_name(op), reply))
        return reply

    def tail(self):
        return _common.log_tail(self.proc)

    def snapshot(self):
        """The store, the active model and the pack, as the agent reports them."""
        self.request(ops.HELLO, {"max_payload": HOST_MAX})  # a fuzzed HELLO may have shrunk it
        listing = self.request(ops.MODEL_LIST)
        models = sorted((m["name"], m["sha256"]) for m in listing["models"])
        return {"models": models, "active": listing["active"], "pack": self.request(ops.PACK_GET)}

    # -- frames --------------------------------------------------------------------------------
    def item(self, sent):
        """One fuzzed item's bytes; well-framed requests are recorded in ``sent`` (rid -> op)."""
        rng = self.rng
        r = rng.random()
        op = random_op(rng)
        rid = self.next_rid()
        # Every item carrying a header with this id counts as sent: a mutation may leave a
        # frame whole (bytes added after its CRC; a cut the next item's first bytes complete).
        sent[rid] = op
        if r < 0.45:
            kind = "request"
            flags = rng.choice([0] * 12 + [ops.FLAG_RESPONSE, ops.FLAG_EVENT, ops.FLAG_ERROR])
            data = self.writer.pack(op, rid, body_for(rng, op)[: self.max_payload], flags)
            if flags & (ops.FLAG_RESPONSE | ops.FLAG_EVENT):
                sent.pop(rid)  # not a request: the agent must not act on it
        elif r < 0.55:
            kind = "bad_crc"
            frame = bytearray(self.writer.pack(op, rid, body_for(rng, op)[: self.max_payload]))
            frame[rng.randrange(12, len(frame))] ^= 1 << rng.randrange(8)
            data = bytes(frame)
        elif r < 0.63:
            kind = "wrong_length"
            payload = body_for(rng, op)[: self.max_payload]
            length = max(0, len(payload) + rng.choice([-5, -1, 1, 3, 40, 1000]))
            data = header(op, rid, min(length, self.max_payload)) + payload + bytes(4)
        elif r < 0.71:
            kind = "truncated"
            frame = self.writer.pack(op, rid, body_for(rng, op)[: self.max_payload])
            data = frame[: rng.randrange(1, len(frame))]
        elif r < 0.78:
            kind = "bit_flips"
            data = mutate(rng, self.writer.pack(op, rid, body_for(rng, op)[: self.max_payload]))
        elif r < 0.84:
            kind = "random_bytes"
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        elif r < 0.9:
            kind = "oversized"
            more = rng.choice([1, 100, 1 << 20, 2**32 - 1 - self.max_payload])
            data = header(op, rid, self.max_payload + more)
        elif r < 0.96:
            kind = "claims_the_most"
            data = header(op, rid, self.max_payload) + bytes(rng.randrange(30))
        else:
            kind = "other_version"
            data = header(op, rid, 0, rng.choice([0x00, 0x20, 0xF0]))
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.burst_kinds.append(kind if kind != "request" else names.op_name(op))
        return data

    def one_burst(self, n):
        sent = {}
        self.burst_kinds = []
        data = b"".join(self.item(sent) for _ in range(n))
        rid = self.next_rid()
        data += self.writer.pack(ops.PING, rid, cbor2.dumps({"data": b"end"}))
        self.counts["frames"] += n
        self.counts["bursts"] += 1
        t0 = time.monotonic()
        self.write(data)
        got = self.read_until(rid)
        end = time.monotonic()
        if got is None:
            self.counts["crashes" if self.proc.poll() is not None else "hangs"] += 1
            sys.stderr.write(
                "%s: agent %s: %s\n"
                % (self.board, "died" if self.proc.poll() is not None else "hung", self.tail())
            )
            self.start()
            return
        # The PING's wait: from the agent's last answer to the burst (or the write, when none)
        # to its reply.  A partial frame that swallows the PING shows here as the time the
        # agent took to give it up; the burst's own requests (model loads, a REBOOT) do not.
        took = end - max([t0] + [at for _, at in got[:-1]])
        self.max_burst_s = max(self.max_burst_s, end - t0)
        if took > self.max_ping_s:
            self.max_ping_s = took
            self.slowest = self.burst_kinds
        self.ping_total_s += took
        if took > PING_LIMIT_S:
            self.counts["slow_pings"] += 1
        changed_ok = False
        refused = []
        for frame, _ in got:
            body = cbor2.loads(frame.payload) if frame.payload else None
            if frame.flags & ops.FLAG_EVENT:
                if frame.op == ops.LOG:
                    self.counts["escaped_exceptions"] += 1
                continue
            if frame.flags & ops.FLAG_ERROR:
                code = body["code"]
                self.errors[code] = self.errors.get(code, 0) + 1
                if code == ops.E_INTERNAL:
                    self.internal[body["msg"]] = self.internal.get(body["msg"], 0) + 1
                if sent.get(frame.rid) in STATE_OPS:
                    refused.append(
                        "%s: %s %s" % (names.op_name(sent[frame.rid]), code, body["msg"])
                    )
            elif sent.get(frame.rid) in STATE_OPS:
                changed_ok = True
        state = self.snapshot()
        if state != self.state:
            if changed_ok:
                self.counts["state_changes_explained"] += 1
            elif refused:
                self.counts["state_changes_after_error_reply"] += 1
                if len(self.suspects) < 20:
                    self.suspects.append(
                        {"refused": refused, "before": self.state, "after": state}
                    )
            else:
                self.counts["state_changes_unexplained"] += 1
                if len(self.suspects) < 20:
                    self.suspects.append({"burst": self.burst_kinds, "before": self.state})
                    self.suspects[-1]["after"] = state
            self.state = state
            if "m" not in self.stored():  # keep a model to infer with
                self.upload()
                self.state = self.snapshot()

    def close(self):
        _common.stop(self.proc)


def run(board, frames, seed=16, burst=20, progress=None):
    """Fuzz ``board``'s agent with ``frames`` items; returns the figures as a dict."""
    t0 = time.monotonic()
    f = Fuzzer(board, seed, burst)
    try:
        while f.counts["frames"] < frames:
            f.one_burst(min(f.rng.randrange(1, 2 * burst), frames - f.counts["frames"]))
            if progress:
                progress(f.counts["frames"], frames)
    finally:
        f.close()
    return {
        "board": board,
        "seed": seed,
        **f.counts,
        "max_ping_s": round(f.max_ping_s, 3),
        "mean_ping_s": round(f.ping_total_s / max(1, f.counts["bursts"]), 4),
        "max_burst_s": round(f.max_burst_s, 3),
        "run_s": round(time.monotonic() - t0, 1),
        "kinds": dict(sorted(f.kinds.items())),
        "error_codes": {names.error_name(c): n for c, n in sorted(f.errors.items())},
        "internal": f.internal,
        "changes_not_explained": f.suspects,
        "slowest_burst": f.slowest,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--board", default="sim-linux")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--burst", type=int, default=20, help="mean items per burst")
    ap.add_argument("--json", action="store_true", help="the figures as one JSON document")
    args = ap.parse_args()
    _common.pin_host()
    last = [0.0]

    def progress(done, total):
        if not args.json and time.monotonic() - last[0] > 10:
            last[0] = time.monotonic()
            sys.stderr.write("%s: %d/%d frames\n" % (args.board, done, total))

    out = run(args.board, args.frames, args.seed, args.burst, progress)
    if args.json:
        print(json.dumps(out))
        return
    for k, v in out.items():
        print("%-34s %s" % (k, v))
    bad = out["crashes"] + out["hangs"] + out["slow_pings"] + out["state_changes_unexplained"]
    bad += out["state_changes_after_error_reply"]
    print(
        "RESULT fuzz %s: %d frames, %d crashes, %d unexplained state changes, max PING %.2f s "
        "(target 0, 0, <= %.0f s) %s"
        % (
            args.board,
            out["frames"],
            out["crashes"],
            out["state_changes_unexplained"] + out["state_changes_after_error_reply"],
            out["max_ping_s"],
            PING_LIMIT_S,
            "PASS" if not bad else "MISS",
        )
    )


if __name__ == "__main__":
    main()
