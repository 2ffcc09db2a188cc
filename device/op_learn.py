"""LEARN_INFO, LEARN, LEARN_ENABLE, LEARN_ADD_CLASSES, LEARN_RESET, LEARN_SAVE, LEARN_EXPORT.

The learning session itself (``kpdev.device.learnrun``) is imported by the request that first
needs it and kept on the active pack, so it outlives this handler group.
"""

from kpdev import accelerators  # noqa: F401  (Agent.model uses it: loaded as part of this group)
from kpdev.device.agent import field
from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.tensors import decode_tensor

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_LEARN_INFO = const(0x30)
_LEARN = const(0x31)
_LEARN_ENABLE = const(0x32)
_LEARN_ADD_CLASSES = const(0x33)
_LEARN_RESET = const(0x34)
_LEARN_SAVE = const(0x35)
_LEARN_EXPORT = const(0x36)
_E_BAD_REQUEST = const(5)
_MAX_BATCH = const(1024)
_MAX_SESSION = const(64)


def _session(agent):
    from kpdev.device.learnrun import session

    return session(agent)


def learn_info(agent, body):
    """LEARN_INFO: the learner of the active pack, what it knows and whether it is saved."""
    return _session(agent).info(agent)


def learn(agent, body):
    """LEARN: labelled inputs (``x``/``y`` or ``xs``/``ys``, raw windows as CLASSIFY takes them).

    Replies with ``p``, the class predicted for each input before it was learned.
    """
    s = _session(agent)
    if "xs" in body:
        xs = field(body, "xs", list)
        ys = field(body, "ys", list)
    else:
        xs = [field(body, "x", object)]
        ys = [field(body, "y", object)]
    if not 1 <= len(xs) <= _MAX_BATCH:
        raise DeviceError("a LEARN batch holds 1..%d samples" % _MAX_BATCH, _E_BAD_REQUEST)
    session = field(body, "session", str, False)
    if session is not None and len(session) > _MAX_SESSION:
        raise DeviceError("session ids are at most %d characters" % _MAX_SESSION, _E_BAD_REQUEST)
    runner = agent.pack
    inputs = []
    for x in xs:
        t = decode_tensor(x)
        if runner.pipeline is not None:
            t = runner.pipeline.transform(t)
        inputs.append(t)
    before = s.learn(agent, inputs, ys, session)
    return {"p": before, "n": len(ys), "samples": s.samples}


def learn_enable(agent, body):
    """LEARN_ENABLE: ``on`` true or false; learning off keeps classifying with what it knows."""
    s = _session(agent)
    s.enable(field(body, "on", bool))
    return {"enabled": s.enabled}


def learn_add_classes(agent, body):
    """LEARN_ADD_CLASSES: new classes by ``labels``; replies with their indices."""
    s = _session(agent)
    added = s.add_classes(field(body, "labels", list))
    return {"added": added, "labels": s.adapter.labels()}


def learn_reset(agent, body):
    """LEARN_RESET: forget what was learned (and saved): back to the pack's own state."""
    s = _session(agent)
    s.reset(agent)
    return s.info(agent)


def learn_save(agent, body):
    """LEARN_SAVE: write the learner's state to storage, atomically."""
    return _session(agent).save(agent)


def learn_export(agent, body):
    """LEARN_EXPORT: ``size`` bytes of the learner's state from ``offset`` (as LEARN_SAVE
    writes it), with its total size and sha256."""
    s = _session(agent)
    data = s.serialize()
    offset = field(body, "offset", int, False, 0)
    # The largest reply the session's host takes (the agent's own limit at the REPL).
    limit = agent.session.peer_max if agent.session is not None else agent.max_payload
    size = field(body, "size", int, False, limit // 2)
    if offset < 0 or offset > len(data) or size < 1:
        raise DeviceError(
            "export offset must be 0..%d and size at least 1" % len(data), _E_BAD_REQUEST
        )
    size = min(size, limit // 2, agent.max_payload // 2)
    from kpdev.device.learnrun import sha256_hex

    return {
        "offset": offset,
        "data": data[offset : offset + size],
        "total": len(data),
        "sha256": sha256_hex(data),
    }


HANDLERS = {
    _LEARN_INFO: learn_info,
    _LEARN: learn,
    _LEARN_ENABLE: learn_enable,
    _LEARN_ADD_CLASSES: learn_add_classes,
    _LEARN_RESET: learn_reset,
    _LEARN_SAVE: learn_save,
    _LEARN_EXPORT: learn_export,
}
