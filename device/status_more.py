"""STATS and the restart of REBOOT, imported for the request and forgotten after it
(``kpdev.device.op_status``): INFO and HELLO, which every session asks, keep only their own
code in a board's heap.
"""

import sys

from kpdev.device import sysinfo
from kpdev.device.store import ModelStore
from kpdev.protocol.compat import const

_EXIT_REBOOT = const(75)  # the exit status that asks whoever started the agent to start it again


def _link(c):
    # Parser counters (in Session.counters' order) as STATS names them.
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
    if agent.session is not None:
        # Since start: the sessions that ended, plus every open one (several at once on CPython).
        total = list(agent.stats.link or [0, 0, 0, 0, 0, 0])
        for s in agent.sessions:
            c = s.counters()
            for i in range(6):
                total[i] += c[i]
        out["link"] = _link(total)
        out["link_connection"] = _link(agent.session.counters())
    out["memory"] = sysinfo.memory(reset)
    out["uptime_ms"] = sysinfo.uptime_ms()
    if agent.clock:
        out["clock"] = agent.clock  # the times above are virtual: instruction counts
    if reset:
        agent.stats.reset()
        agent.stats.link = None
        for s in agent.sessions:
            p = s.parser
            p.garbage = p.header_errors = p.crc_errors = p.oversize = 0
            p.auth_failures = p.replays = 0
    return out


def restart(agent, body=None):
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
