"""HELLO, INFO, STATS and REBOOT: what the agent tells about itself (a handler group)."""

import sys

from kpdev import __version__, accelerators
from kpdev.device import sysinfo
from kpdev.device.agent import field
from kpdev.protocol.compat import const, forget_modules
from kpdev.protocol.framing import DEFAULT_MAX_PAYLOAD

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_HELLO = const(0x01)
_INFO = const(0x02)
_STATS = const(0x04)
_REBOOT = const(0x05)
_PROTOCOL_VERSION = const(2)


def info(agent, body):
    """INFO: agent, runtime, backends, memory, storage and limits."""
    offered = accelerators.available()
    formats = {}
    for fmt in accelerators.FORMATS:
        names = [n for n in accelerators.FORMATS[fmt] if n in offered]
        if names:
            formats[fmt] = names
    store = agent.store
    used = store.used()
    out = {
        "agent": __version__,
        "proto": _PROTOCOL_VERSION,
        "runtime": sysinfo.RUNTIME,
        "runtime_version": sysinfo.runtime_version(),
        "platform": sys.platform,
        "board": agent.board,
        "backends": offered,
        "formats": formats,
        "memory": sysinfo.memory(),
        "storage": {"quota": store.quota, "used": used, "free": max(0, store.quota - used)},
        "max_payload": agent.max_payload,
        "window": agent.window,
        "staged_input": True,  # inputs larger than a frame travel by INFER_INPUT
        "auth": bool(agent.key),
        "uptime_ms": sysinfo.uptime_ms(),
    }
    if agent.clock:
        out["clock"] = agent.clock
    base = sys.modules.get("kpdev.accelerators.base")  # loaded by --arena or a backend
    if base is not None:
        size, held = base.reserved_arena()
        if size:
            out["arena_reserved"] = {"size": size, "in_use": held}
    if agent.model_area is not None:
        out["model_area"] = agent.model_area.describe()
    return out


def hello(agent, body):
    """HELLO: note the largest reply the host takes; answer with INFO.

    With a key, HELLO also starts a new session: a fresh random ``nonce`` in the reply, which the
    tag of every later frame of this session covers, both ways.  The reply itself is tagged with
    the host's own ``nonce``, so the host knows it is no replay either.
    """
    peer_max = max(64, field(body, "max_payload", int, False, DEFAULT_MAX_PAYLOAD))
    host_nonce = field(body, "nonce", bytes, False, b"")
    out = info(agent, body)
    s = agent.session
    if s is not None:
        s.peer_max = peer_max
        if agent.key:
            import os

            last = s.hello_nonces
            if last and host_nonce and last[0] == host_nonce:
                nonce = last[1]  # this HELLO again, retried by the host: the same session
            else:
                nonce = os.urandom(16)
            s.hello_nonces = (host_nonce, nonce)
            out["nonce"] = nonce
            s.writer.nonce = host_nonce  # for this reply
            s.parser.nonce = nonce  # frames the parser reads from now on

            def start():
                s.writer.nonce = nonce

            agent.after_reply = start
    return out


def _more(name, agent, body):
    # STATS and REBOOT's restart live in status_more.py, loaded for the request alone.
    from kpdev.device import status_more

    try:
        return getattr(status_more, name)(agent, body)
    finally:
        forget_modules(("kpdev.device.status_more",))


def stats(agent, body):
    """STATS: counters, latencies and energy, link errors, memory and uptime; ``reset`` zeroes
    them (``kpdev.device.status_more``)."""
    return _more("stats", agent, body)


def reboot(agent, body):
    """REBOOT: restart once the reply is out."""
    agent.after_reply = lambda: _more("restart", agent, None)
    return {"rebooting": True}


HANDLERS = {_HELLO: hello, _INFO: info, _STATS: stats, _REBOOT: reboot}
