"""HELLO, INFO, STATS and REBOOT: what the agent tells about itself (a handler group)."""

import sys

from kpdev import __version__, accelerators
from kpdev.device import sysinfo
from kpdev.device.agent import field
from kpdev.device.store import ModelStore
from kpdev.protocol.compat import const
from kpdev.protocol.framing import DEFAULT_MAX_PAYLOAD

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_HELLO = const(0x01)
_INFO = const(0x02)
_STATS = const(0x04)
_REBOOT = const(0x05)
_PROTOCOL_VERSION = const(1)
_EXIT_REBOOT = const(75)  # the exit status that asks whoever started the agent to start it again


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
    return {
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
        "auth": bool(agent.key),
        "uptime_ms": sysinfo.uptime_ms(),
    }


def hello(agent, body):
    """HELLO: note the largest reply the host takes; answer with INFO."""
    agent.peer_max = max(64, field(body, "max_payload", int, False, DEFAULT_MAX_PAYLOAD))
    return info(agent, body)


def _link(c):
    # Parser counters (in agent._on_connect's order) as STATS names them.
    return {
        "garbage_bytes": c[0],
        "header_errors": c[1],
        "crc_errors": c[2],
        "oversize": c[3],
        "auth_failures": c[4],
        "replays": c[5],
    }


def stats(agent, body):
    """STATS: counters, latencies and energy, link errors, memory and uptime; ``reset`` zeroes
    them."""
    reset = bool(body.get("reset"))
    out = agent.stats.summary(agent.power_config)
    p = agent.parser
    if p is not None:
        now = [p.garbage, p.header_errors, p.crc_errors, p.oversize, p.auth_failures, p.replays]
        out["link"] = _link(now)
        base = agent.stats.link
        if base:
            for i in range(6):
                now[i] -= base[i]
        out["link_connection"] = _link(now)
    out["memory"] = sysinfo.memory(reset)
    out["uptime_ms"] = sysinfo.uptime_ms()
    if reset:
        agent.stats.reset()
        agent.stats.link = None
        if p is not None:
            p.garbage = p.header_errors = p.crc_errors = p.oversize = 0
            p.auth_failures = p.replays = 0
    return out


def _reboot(agent):
    # A hard reset on a board; on unix and Linux, a process restart when something restarts it
    # (a background simulated board: its server starts a new agent), else a fresh agent state.
    if agent.exit_on_reboot:
        agent.close()
        sys.exit(_EXIT_REBOOT)
    try:
        import machine

        if sys.platform not in ("linux", "darwin"):
            machine.reset()
    except ImportError:
        pass
    agent.unload()
    agent.store.close()
    store = agent.store
    agent.store = ModelStore(agent.state + "/models", store.quota, store.io_chunk)
    agent.stats.reset()


def reboot(agent, body):
    """REBOOT: restart once the reply is out."""
    agent.after_reply = lambda: _reboot(agent)
    return {"rebooting": True}


HANDLERS = {_HELLO: hello, _INFO: info, _STATS: stats, _REBOOT: reboot}
