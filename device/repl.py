"""The agent at the REPL: the device's operations as plain function calls, no link needed.

On a board or under ``kpdev repl``::

    >>> from kpdev.device import repl
    >>> repl.models()
    >>> repl.infer("demo", [0] * 16)[0].tolist()
    >>> repl.stats()
"""

import os

from kpdev.device.agent import Agent
from kpdev.protocol import ops
from kpdev.protocol.tensors import Tensor

_default = None


def _getenv(name, default=None):
    try:
        v = os.getenv(name)
    except AttributeError:  # boards have no environment
        v = None
    return v if v else default


def default_agent():
    """The agent the REPL helpers use: state in $KPDEV_STATE (default ./kpdev-state)."""
    global _default
    if _default is None:
        _default = Agent(
            _getenv("KPDEV_STATE", "kpdev-state"),
            board=_getenv("KPDEV_BOARD", "repl"),
            quota=int(_getenv("KPDEV_QUOTA", str(1 << 20))),
        )
    return _default


def models():
    """Stored models: a list of dicts (name, format, size, sha256, active)."""
    return default_agent().request(ops.MODEL_LIST)["models"]


def load(name=None):
    """Load a stored model (default: the active one); returns its io spec."""
    return default_agent().model(name)[1].io_spec()


def infer(name, x):
    """Run a model on ``x``: a Tensor, raw bytes, or a flat list of numbers for its one input.

    Returns the output tensors; ``t.tolist()`` gives their numbers.
    """
    agent = default_agent()
    if not isinstance(x, Tensor):
        spec = agent.model(name)[1].io_spec()["inputs"][0]
        if isinstance(x, (bytes, bytearray)):
            x = Tensor(spec["dtype"], spec["shape"], bytes(x))
        else:
            x = Tensor.from_list(spec["dtype"], spec["shape"], list(x))
    return agent.run(name, [x])[1]


def stats():
    """Inference counts and latencies, memory and uptime, as a dict."""
    return default_agent().request(ops.STATS)
