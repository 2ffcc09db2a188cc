"""INFER, INFER_BATCH and INFER_INPUT: run the stored models (a handler group of the agent).

An input larger than one frame (a 96x96x3 image is 27 KB; a small board takes 2 KB frames)
travels in pieces: INFER_INPUT writes each piece in order into the model's own input buffer
(for tflite_int8, its input tensor in the arena: no second copy in the heap), and an INFER with
``"st": true`` runs on the inputs so staged.  Any other run of a model, a reload or an unload
drops what was staged.
"""

from kpdev import accelerators  # noqa: F401  (Agent.model uses it: loaded as part of this group)
from kpdev.device.agent import field
from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.tensors import DTYPES, Tensor, decode_tensor, encode_tensor

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_INFER = const(0x20)
_INFER_BATCH = const(0x21)
_INFER_INPUT = const(0x22)
_E_BAD_REQUEST = const(5)
_E_BAD_SHAPE = const(18)
_E_BAD_DTYPE = const(19)
_E_BAD_VALUE = const(25)


def _tensors(x):
    items = x if isinstance(x, list) else [x]
    return [decode_tensor(t) for t in items]


def infer(agent, body):
    """INFER: one input (a tensor, or a list of them) -> the outputs and the time taken.

    With ``"st": true`` instead of ``x``: the inputs INFER_INPUT staged for this model."""
    name = field(body, "m", str, False)
    if field(body, "st", bool, False):
        inputs = _staged(agent, name)
    else:
        inputs = _tensors(body.get("x"))
    name, outputs, us = agent.run(name, inputs)
    return {"y": [encode_tensor(t) for t in outputs], "t": us}


def _staged(agent, name):
    name, loaded = agent.model(name)
    st = agent.staged
    if st is None or st[0] != name or st[1] is not loaded:
        raise DeviceError(
            "no input staged for %s: send it with INFER_INPUT first" % name, _E_BAD_REQUEST
        )
    out = []
    for k in range(len(st[2])):
        e = st[2][k]
        if e is None or e[1] < len(e[0].data):
            have = 0 if e is None else e[1]
            need = "?" if e is None else len(e[0].data)
            raise DeviceError(
                "input %d is staged only in part (%d of %s bytes)" % (k, have, need),
                _E_BAD_REQUEST,
            )
        out.append(e[0])
    return out


def infer_input(agent, body):
    """INFER_INPUT: one piece of input ``i``, at byte offset ``o``, written in place.

    The piece at offset 0 also names the tensor's dtype ``dt`` and shape ``s``, which must be
    the model's; later pieces follow in order.  Nothing is written when the request is refused.
    """
    name, loaded = agent.model(field(body, "m", str, False))
    i = field(body, "i", int)
    off = field(body, "o", int)
    data = field(body, "d", bytes)
    specs = loaded.io_spec()["inputs"]
    if not 0 <= i < len(specs):
        raise DeviceError("model %s has no input %d" % (name, i), _E_BAD_VALUE)
    st = agent.staged
    if st is None or st[0] != name or st[1] is not loaded:
        st = [name, loaded, [None] * len(specs)]
    entry = st[2][i]
    if off == 0:
        spec = specs[i]
        dtype = field(body, "dt", str)
        shape = field(body, "s", list)
        if dtype != spec["dtype"] or dtype not in DTYPES:
            raise DeviceError(
                "input %d: expected dtype %s, got %s" % (i, spec["dtype"], dtype), _E_BAD_DTYPE
            )
        want = spec["shape"]
        n = DTYPES[dtype][1]
        ok = len(want) == len(shape)
        for k in range(len(shape)):
            d = shape[k]
            if not isinstance(d, int) or d < 0 or (ok and want[k] != -1 and want[k] != d):
                ok = False
            n *= d if isinstance(d, int) else 0
        if not ok:
            raise DeviceError(
                "input %d: expected shape %s, got %s" % (i, want, shape), _E_BAD_SHAPE
            )
        buf = loaded.input_buffer(i, n)
        entry = [Tensor(dtype, shape, buf), 0]
    elif entry is None or entry[1] != off:
        raise DeviceError(
            "input %d: piece at offset %d, expected %d: send the input again from offset 0"
            % (i, off, 0 if entry is None else entry[1]),
            _E_BAD_VALUE,
        )
    buf = entry[0].data
    end = off + len(data)
    if end > len(buf):
        raise DeviceError(
            "input %d: %d bytes, more than its %d" % (i, end, len(buf)), _E_BAD_SHAPE
        )
    buf[off:end] = data
    entry[1] = end
    st[2][i] = entry
    agent.staged = st
    return {"i": i, "have": end, "need": len(buf)}


def infer_batch(agent, body):
    """INFER_BATCH: several inputs for one model, run in turn."""
    name = field(body, "m", str, False)
    ys = []
    times = []
    for x in field(body, "xs", list):
        name, outputs, us = agent.run(name, _tensors(x))
        ys.append([encode_tensor(t) for t in outputs])
        times.append(us)
    return {"ys": ys, "t": times}


HANDLERS = {_INFER: infer, _INFER_BATCH: infer_batch, _INFER_INPUT: infer_input}
