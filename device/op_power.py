"""POWER_ENABLE, POWER_READ, POWER_FLOOR, CLOCK_GET, CLOCK_SET (a handler group of the agent).

The meter (``kpdev.device.power``) is imported by the request that first needs it rather than
with this group: the agent keeps its meter across requests of other groups, so its code must not
be dropped with this overlay.  The clock controls hold nothing between requests: they come and
go with the group.
"""

from kpdev.device.agent import field
from kpdev.device.power_clock import control
from kpdev.protocol.compat import const

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_POWER_ENABLE = const(0x40)
_POWER_READ = const(0x41)
_POWER_FLOOR = const(0x42)
_CLOCK_GET = const(0x48)
_CLOCK_SET = const(0x49)


def _meter(agent):
    from kpdev.device.power import meter_of

    return meter_of(agent)


def power_enable(agent, body):
    """POWER_ENABLE: measurement on (``on`` true, the default) or off; the meter's state."""
    on = field(body, "on", bool, False, True)
    meter = _meter(agent)
    meter.enable(on)
    agent.on_inference = meter.after_inference if on else None
    return meter.status()


def power_read(agent, body):
    """POWER_READ: the events since the last read, and how many the ring dropped."""
    return _meter(agent).read()


def power_floor(agent, body):
    """POWER_FLOOR: the floor (idle) power in mW, and what it is based on."""
    meter = _meter(agent)
    mw, basis = meter.floor()
    out = meter.status()
    out["floor_mw"] = mw
    out["basis"] = basis
    return out


def clock_get(agent, body):
    """CLOCK_GET: the clock or performance mode, and the modes there are."""
    return control(agent).clock_get()


def clock_set(agent, body):
    """CLOCK_SET: switch to ``mode``; answers as CLOCK_GET."""
    mode = field(body, "mode", str)
    return control(agent).clock_set(mode)


HANDLERS = {
    _POWER_ENABLE: power_enable,
    _POWER_READ: power_read,
    _POWER_FLOOR: power_floor,
    _CLOCK_GET: clock_get,
    _CLOCK_SET: clock_set,
}
