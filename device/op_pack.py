"""PACK_SET, PACK_GET, PACK_CLEAR, CLASSIFY, STREAM_START/PUSH/STOP, PROFILE_RUN (a handler group).

The pack itself (``kpdev.device.packrun``) is imported by the request that first needs it, not
with this group: the agent keeps it between requests of other groups.
"""

from kpdev import accelerators  # noqa: F401  (Agent.model uses it: loaded as part of this group)
from kpdev.device.agent import field
from kpdev.protocol.compat import const, forget_modules
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.tensors import decode_tensor

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_PACK_SET = const(0x60)
_PACK_GET = const(0x61)
_PACK_CLEAR = const(0x62)
_CLASSIFY = const(0x63)
_STREAM_START = const(0x64)
_STREAM_PUSH = const(0x65)
_STREAM_STOP = const(0x66)
_CLASS_EVENT = const(0x67)
_PROFILE_RUN = const(0x50)
_E_UPLOAD_STATE = const(22)


def _packrun():
    from kpdev.device import packrun

    return packrun


def pack_set(agent, body):
    """PACK_SET: check a pack description against the stored models, save it, make it active."""
    spec = field(body, "pack", dict)
    return _packrun().install(agent, spec).describe()


def _without_pack(agent):
    # With no pack the agent has nothing of packrun's to keep: it goes, as the modules the
    # group's import brought in go with the group (it held 2.5 KB of sim-mcu-64k's heap after a
    # PACK_GET that found no pack, as after `kpdev deploy --dry-run`).
    if agent.pack is None:
        forget_modules(("kpdev.device.packrun",))


def pack_get(agent, body):
    """PACK_GET: the active pack (None when there is none)."""
    runner = _packrun().load(agent)
    _without_pack(agent)
    return {"pack": runner.describe() if runner else None}


def pack_clear(agent, body):
    """PACK_CLEAR: forget the pack; its models stay stored."""
    _packrun().clear(agent)
    _without_pack(agent)
    return {"pack": None}


def classify(agent, body):
    """CLASSIFY: one input (``x``) or several (``xs``) through the pipeline and the model graph.

    ``features`` true adds each model input the pipeline made to the results.
    """
    runner = _packrun().active(agent)
    with_input = field(body, "features", bool, False, False)
    xs = field(body, "xs", list) if "xs" in body else [field(body, "x", object)]
    return {"r": [runner.classify(agent, decode_tensor(x), None, with_input) for x in xs]}


def stream_start(agent, body):
    """STREAM_START: start cutting windows from pushed samples (forgetting any partial one)."""
    runner = _packrun().active(agent)
    runner.start_stream()
    p = runner.pipeline
    return {"size": p.size, "stride": p.stride, "axes": p.n_axes}


def _stream(agent):
    runner = _packrun().active(agent)
    if runner.segmenter is None:
        raise DeviceError("no stream started: send STREAM_START first", _E_UPLOAD_STATE)
    return runner


def stream_push(agent, body):
    """STREAM_PUSH: raw samples; each window they complete is classified and sent as an event."""
    runner = _stream(agent)
    windows = runner.segmenter.push(decode_tensor(field(body, "x", object)))
    first = runner.window_index
    for w in windows:
        result = runner.classify(agent, w)
        result["w"] = runner.window_index
        runner.window_index += 1
        agent.event(_CLASS_EVENT, result)
        result = None
    return {"windows": runner.window_index - first, "total": runner.window_index}


def stream_stop(agent, body):
    """STREAM_STOP: end the stream; how many windows it classified."""
    runner = _stream(agent)
    total = runner.window_index
    runner.segmenter = None
    return {"total": total}


def profile_run(agent, body):
    """PROFILE_RUN: time each stage of classifying ``x`` (``kpdev.device.profiling``).

    The timing code is loaded for the request and dropped after it, so a board running a pack
    does not keep it in its heap.
    """
    runner = _packrun().active(agent)
    from kpdev.device import profiling

    try:
        return profiling.run(agent, runner, body)
    finally:
        forget_modules(("kpdev.device.profiling",))


HANDLERS = {
    _PACK_SET: pack_set,
    _PACK_GET: pack_get,
    _PACK_CLEAR: pack_clear,
    _CLASSIFY: classify,
    _STREAM_START: stream_start,
    _STREAM_PUSH: stream_push,
    _STREAM_STOP: stream_stop,
    _PROFILE_RUN: profile_run,
}
