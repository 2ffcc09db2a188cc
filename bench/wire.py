"""Bytes on the wire per INFER against the tensors' own bytes (target: at most 40 bytes more).

A real sim-linux agent on pipes serves two models: tests/data/dense_int8.tflite (int8 [1,16] ->
int8 [1,4]) and modelgen.dense_int8(784, 32, 10) (int8 [1,784] -> int8 [1,10]).  A counting
wrapper around the link records every byte the client writes and reads for each INFER; the
client's own ``bytes_out``/``bytes_in`` counters are checked against it.

overhead = wire bytes - tensor data bytes, per frame (request, reply) and per inference (both).
The target is read per frame: each frame carries at most 40 bytes beyond its tensor's bytes.
The per-inference total and the authenticated figures (a 24-byte counter+tag trailer per frame)
are reported against the same 40 bytes for the record.  Each verdict judges the RUNS
inferences (each the worst of both models): the counts are the same on every run but for the
reply's ``t`` (the device's time in µs), one byte longer from 256 µs, as on a loaded machine.

Run: python bench/wire.py
"""

import sys

import _common  # noqa: F401  (private KPDEV_HOME first)
import numpy as np

from kpdev.host.client.client import Client
from kpdev.host.link.transport import PipeLink
from kpdev.host.runtime import modelgen
from kpdev.protocol.framing import AUTH_OVERHEAD, OVERHEAD

TARGET = 40
RUNS = 50
KEY = bytes(range(32))


class CountingLink:
    """A link that counts the bytes passing through it, per direction."""

    def __init__(self, link):
        self._link = link
        self.url = link.url
        self.written = 0
        self.read_bytes = 0

    def read(self, n):
        data = self._link.read(n)
        self.read_bytes += len(data)
        return data

    def write(self, data):
        self.written += len(data)
        self._link.write(data)

    def set_timeout(self, timeout):
        self._link.set_timeout(timeout)

    def close(self):
        self._link.close()


def measure(key):
    """Rows of (model, direction, tensor bytes, wire bytes min/max) for every model, one agent;
    and per inference (in order) of the active-model form, the worst of the models' (request,
    reply) overheads."""
    proc = _common.start_agent("sim-linux", key=key)
    link = CountingLink(PipeLink(proc, timeout=5.0))
    client = Client(link, key)
    rows = []
    per_model = []
    try:
        client.hello()
        models = [
            ("dense_int8 16->4", "small", _common.small_model(), 16),
            ("dense_int8 784->32->10", "mnist", modelgen.dense_int8(784, 32, 10), 784),
        ]
        rng = np.random.default_rng(0)
        for label, name, blob, n_in in models:
            client.upload(name, blob, "tflite", activate=True)
            for named in (False, True):
                req, rep = [], []
                out_bytes = None
                for _ in range(RUNS):
                    x = rng.integers(-128, 128, (1, n_in), dtype=np.int8)
                    w0, r0 = link.written, link.read_bytes
                    c0, d0 = client.bytes_out, client.bytes_in
                    ys, _us = client.infer(x, model=name if named else None)
                    req.append(link.written - w0)
                    rep.append(link.read_bytes - r0)
                    if (client.bytes_out - c0, client.bytes_in - d0) != (req[-1], rep[-1]):
                        raise SystemExit("client byte counters disagree with the link")
                    out_bytes = sum(y.nbytes for y in ys)
                if not named:
                    per_model.append(
                        [(q - x.nbytes, p - out_bytes) for q, p in zip(req, rep, strict=True)]
                    )
                tag = label + (" (m=%r)" % name if named else "")
                rows.append((tag, "request", x.nbytes, min(req), max(req)))
                rows.append((tag, "reply", out_bytes, min(rep), max(rep)))
    finally:
        client.close()
        _common.stop(proc)
    frames = [max(max(pair) for pair in each) for each in zip(*per_model, strict=True)]
    inferences = [max(sum(pair) for pair in each) for each in zip(*per_model, strict=True)]
    return rows, frames, inferences


def report(rows, auth):
    frame = AUTH_OVERHEAD if auth else OVERHEAD
    print(
        "\n%s: frame header+CRC%s = %d bytes per frame; the rest is the CBOR envelope"
        % ("with a key" if auth else "no key", " + counter + tag" if auth else "", frame)
    )
    out = []
    for i in range(0, len(rows), 2):
        (tag, _, t_req, req_lo, req_hi), (_, _, t_rep, rep_lo, rep_hi) = rows[i], rows[i + 1]
        for direction, t, lo, hi in (
            ("request", t_req, req_lo, req_hi),
            ("reply", t_rep, rep_lo, rep_hi),
        ):
            wire = str(lo) if lo == hi else "%d-%d" % (lo, hi)
            ov = hi - t
            out.append([tag, direction, t, wire, ov, ov - frame, frame])
        total_t = t_req + t_rep
        total_hi = req_hi + rep_hi
        out.append([tag, "per inference", total_t, total_hi, total_hi - total_t, "", 2 * frame])
    _common.table(
        ["model", "frame", "tensor B", "wire B", "overhead B", "of it CBOR", "of it frame"], out
    )


def main():
    _common.pin_host()
    print("wire: bytes per INFER on a sim-linux agent (%s)" % _common.machine())
    print("%d inferences per row; wire B is min-max (the reply's device time 't' varies)" % RUNS)
    _common.load_line("start")
    rows, plain_frame, plain_inf = measure(None)
    report(rows, auth=False)
    rows, auth_frame, auth_inf = measure(KEY)
    report(rows, auth=True)
    print()
    print("The 'm=' rows name the model in the request (2 + len(name) more bytes); the verdicts")
    print("use the active-model form.  Worst case over both models:")
    # Byte counts, judged over the RUNS inferences (each the worst of both models): all but the
    # reply's 't' field (the device's time in µs, as CBOR) is the same on every run, and 't'
    # takes one byte more when an inference takes 256 µs or more, as on a loaded machine.
    for name, values, note in (
        ("wire_overhead_per_inference", plain_inf, "request+reply, stricter reading"),
        ("wire_overhead_per_frame_auth", auth_frame, "includes the 24-byte auth trailer"),
        ("wire_overhead_per_inference_auth", auth_inf, ""),
        ("wire_overhead_per_frame", plain_frame, "the target: each frame, no key"),
    ):
        _common.judge("RESULT", name, values, " B", TARGET, note=note, fmt="%d")
    _common.load_line("end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
