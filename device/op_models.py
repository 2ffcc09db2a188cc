"""MODEL_LIST, MODEL_INFO, MODEL_ACTIVATE, MODEL_DELETE: stored models (a handler group)."""

from kpdev import accelerators
from kpdev.device import fsutil
from kpdev.device.agent import field
from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError, KpdevError

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_MODEL_LIST = const(0x14)
_MODEL_INFO = const(0x15)
_MODEL_ACTIVATE = const(0x16)
_MODEL_DELETE = const(0x17)
_E_UPLOAD_STATE = const(22)


def model_list(agent, body):
    """MODEL_LIST: every stored model, the backend that runs it here, and which one is active."""
    store = agent.store
    models = []
    for name in store.names():
        d = store.describe(name)
        fmt = d["format"]
        d["backend"] = None  # none here runs it (or it is no model: a learner's state)
        if fmt in accelerators.FORMATS:
            # The backend a load picks, found without loading: what runs, not what was asked.
            try:
                d["backend"] = accelerators.for_format(fmt, d["meta"].get("backend"), False)
            except KpdevError:
                pass
        models.append(d)
    return {"models": models, "active": store.active}


def model_info(agent, body):
    """MODEL_INFO: a model's stored facts and, where a backend loads it, its tensors; with
    ``upload`` true, those of the whole upload of that name, loaded before COMMIT stores it."""
    store = agent.store
    name = field(body, "name", str, False, store.active)
    upload = field(body, "upload", bool, False, False)
    if upload:
        out = store._read_upload(name)  # name, format, size, sha256, meta
        path = store._upload_paths(name)[0]
        # Only an upload's own description holds its name: a name that is a path to another
        # file never matches (and the upload module, to check names, stays out of RAM).
        if not (isinstance(out, dict) and out.get("name") == name) or (
            fsutil.size(path) != out["size"]
        ):
            raise DeviceError(
                "no whole upload of %r: send all its bytes first" % name, _E_UPLOAD_STATE
            )
        store.close()
        agent.unload()  # its room: a check never evicts less than a load would
    else:
        out = store.describe(name)
    try:
        if upload:
            loaded = agent.load(name, out, path)
        else:
            name, loaded = agent.model(name)
    except KpdevError as e:
        out["backend"] = None
        out["load_error"] = {"code": e.code, "msg": e.message}
        return out
    out["backend"] = loaded.backend_name
    out["io"] = loaded.io_spec()
    out["details"] = loaded.info()
    if upload:  # a check: the model loads once stored, not now
        loaded.close()
        accelerators.release()  # no model is loaded (unload above): no backend code need stay
    return out


def activate(agent, body):
    """MODEL_ACTIVATE: the model INFER uses when none is named; one that cannot load here is
    refused (the load's ERROR) and nothing changes."""
    name = field(body, "name", str)
    agent.model(name)
    agent.store.activate(name)
    return {"active": name}


def delete(agent, body):
    """MODEL_DELETE: unload and delete a stored model."""
    name = field(body, "name", str)
    agent.unload(name)
    agent.store.delete(name)
    return {"deleted": name}


HANDLERS = {
    _MODEL_LIST: model_list,
    _MODEL_INFO: model_info,
    _MODEL_ACTIVATE: activate,
    _MODEL_DELETE: delete,
}
