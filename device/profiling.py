"""PROFILE_RUN's timing loop (docs/protocol.md 7.29): warm-up runs, then each stage's mean and
the µs of each of the first 64 runs.

Imported by PROFILE_RUN alone and forgotten after it (``kpdev.device.op_pack.profile_run``):
a board that runs a pack does not keep this code in its heap.
"""

from kpdev.device import sysinfo
from kpdev.device.agent import field
from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.tensors import decode_tensor

_E_BAD_REQUEST = const(5)
_MAX_PROFILE_RUNS = const(10000)
_PROFILE_SAMPLES = const(64)  # runs whose own times PROFILE_RUN returns (a bounded reply)


def run(agent, runner, body):
    """PROFILE_RUN: ``w`` untimed warm-up runs, then classify ``x`` ``n`` times; each pipeline
    stage's and model's mean µs, and the µs of each of the first 64 runs (docs/protocol.md)."""
    x = decode_tensor(field(body, "x", object))
    n = field(body, "n", int, False, 10)
    warm = field(body, "w", int, False, 0)
    if not 1 <= n <= _MAX_PROFILE_RUNS or not 0 <= warm <= _MAX_PROFILE_RUNS:
        raise DeviceError(
            "n must be 1..%d runs, w 0..%d" % (_MAX_PROFILE_RUNS, _MAX_PROFILE_RUNS),
            _E_BAD_REQUEST,
        )
    for _ in range(warm):
        runner.classify(agent, x)
    names = []
    sums = {}
    per_run = {}
    totals = []
    total = 0
    result = None
    for i in range(n):
        timings = []
        t0 = sysinfo.ticks_us()
        result = runner.classify(agent, x, timings)
        us = sysinfo.ticks_diff(sysinfo.ticks_us(), t0)
        total += us
        if i < _PROFILE_SAMPLES:
            totals.append(us)
        this = {}
        for name, t in timings:
            if name not in sums:
                names.append(name)
                sums[name] = 0
                per_run[name] = []
            this[name] = this.get(name, 0) + t
        for name in this:
            sums[name] += this[name]
            if i < _PROFILE_SAMPLES:
                per_run[name].append(this[name])
    stages = [{"name": name, "us": sums[name] / n, "runs": per_run[name]} for name in names]
    return {
        "runs": n,
        "w": warm,
        "stages": stages,
        "total_us": total / n,
        "totals": totals,
        "unit": "us",
        "result": result,
    }
