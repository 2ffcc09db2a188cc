"""INFER and INFER_BATCH: run the stored models (a handler group of the agent)."""

from kpdev import accelerators  # noqa: F401  (Agent.model uses it: loaded as part of this group)
from kpdev.device.agent import field
from kpdev.protocol.compat import const
from kpdev.protocol.tensors import decode_tensor, encode_tensor

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_INFER = const(0x20)
_INFER_BATCH = const(0x21)


def _tensors(x):
    items = x if isinstance(x, list) else [x]
    return [decode_tensor(t) for t in items]


def infer(agent, body):
    """INFER: one input (a tensor, or a list of them) -> the outputs and the time taken."""
    name, outputs, us = agent.run(field(body, "m", str, False), _tensors(body.get("x")))
    return {"y": [encode_tensor(t) for t in outputs], "t": us}


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


HANDLERS = {_INFER: infer, _INFER_BATCH: infer_batch}
