"""MODEL_BEGIN, MODEL_CHUNK, MODEL_COMMIT, MODEL_ABORT: uploads (a handler group of the agent)."""

from kpdev.device import upload
from kpdev.device.agent import field
from kpdev.protocol.compat import const

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_MODEL_BEGIN = const(0x10)
_MODEL_CHUNK = const(0x11)
_MODEL_COMMIT = const(0x12)
_MODEL_ABORT = const(0x13)


def begin(agent, body):
    """MODEL_BEGIN: start or resume; the stored model of that name stays usable until commit."""
    offset = upload.begin(
        agent.store,
        field(body, "name", str),
        field(body, "format", str),
        field(body, "size", int),
        field(body, "sha256", bytes),
        field(body, "meta", dict, False, {}),
    )
    return {"offset": offset}


def chunk(agent, body):
    """MODEL_CHUNK: bytes at an offset; answers the offset the device now holds."""
    name = field(body, "name", str)
    offset = upload.chunk(
        agent.store, name, field(body, "offset", int), field(body, "data", bytes)
    )
    return {"offset": offset}


def commit(agent, body):
    """MODEL_COMMIT: check the sha256 and store the model (active unless ``activate`` is false)."""
    name = field(body, "name", str)
    upload.commit(agent.store, name, field(body, "activate", bool, False, True))
    agent.unload(name)
    return agent.store.describe(name)


def abort(agent, body):
    """MODEL_ABORT: forget an upload in progress."""
    upload.abort(agent.store, field(body, "name", str))
    return {}


HANDLERS = {_MODEL_BEGIN: begin, _MODEL_CHUNK: chunk, _MODEL_COMMIT: commit, _MODEL_ABORT: abort}
