"""The agent's power meter: one power source, its events in a bounded ring, energy per inference.

A board's power source comes from its ``power`` settings in boards.yml, which the agent gets as
``--power JSON``.  ``source`` names it; the module offering it is imported only when a POWER
request first needs it (``SOURCES``)::

    estimate  kpdev.device.power        the board's power model, idle_mw and active_mw: no sensor
    sysfs     kpdev.device.power_sysfs  Linux hwmon sensors (ina2xx, ina3221 drivers)
    ina219    kpdev.device.power_ina    an INA219 on the board's I2C bus (machine.I2C)
    ina226    kpdev.device.power_ina    an INA226 likewise
    akida     kpdev.device.power_akida  the Akida SoC's power meter (CPython, akida package)

A source offers ``name``, ``estimated``, ``floor_basis``, ``rails`` (a map of rail -> latest
reading, or None), ``enable()``, ``disable()``, ``poll(busy)`` (the events it has now: a list of
``(ts_ms, voltage_uv, current_ma, power_mw)``, None where it measures no such value) and
``floor()`` (floor power in mW, or None when it has no such figure).

While measurement is on, the agent calls ``Meter.after_inference`` after every inference, and
a pack's CLASSIFY calls ``Meter.span`` over the whole classification (pipeline + models): the
events polled then go to the ring, and a measuring source's mean power over the span, times its
duration, is its energy.  The estimate's energy needs no hook: STATS works it out from the
device's own timings (``Stats.summary``).

RAM: the meter and its source are imported inside a request, not with the op_power group, so
they stay loaded while the agent holds the meter, whichever handler group is loaded.
"""

import sys

from kpdev.device import sysinfo
from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_E_NOT_IMPLEMENTED = const(9)
_E_POWER = const(26)

# Source name -> module under kpdev.device whose open_source(settings) builds it.
SOURCES = {
    "estimate": "power",
    "sysfs": "power_sysfs",
    "ina219": "power_ina",
    "ina226": "power_ina",
    "akida": "power_akida",
}


class Ring:
    """The newest ``capacity`` events: when full, each new event drops the oldest, counted."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.events = []
        self._oldest = 0  # index of the oldest event once the ring is full
        self.dropped = 0

    def push(self, event):
        """Keep ``event``; the oldest one goes (and is counted) when the ring is full."""
        if len(self.events) < self.capacity:
            self.events.append(event)
        else:
            self.events[self._oldest] = event
            self._oldest = (self._oldest + 1) % self.capacity
            self.dropped += 1

    def take(self):
        """(events oldest first, events dropped) since the last take; empties the ring."""
        i = self._oldest
        events = self.events[i:] + self.events[:i]
        dropped = self.dropped
        self.events = []
        self._oldest = 0
        self.dropped = 0
        return events, dropped


class Estimate:
    """No sensor: the board's power model, idle_mw while waiting and active_mw while running."""

    name = "estimate"
    estimated = True
    floor_basis = "model"
    rails = None

    def __init__(self, idle_mw, active_mw):
        self.idle_mw = idle_mw
        self.active_mw = active_mw

    def enable(self):
        """Nothing to switch on."""

    def disable(self):
        """Nothing to switch off."""

    def poll(self, busy):
        """One event: the model's power now (``busy``: right after an inference)."""
        return [(sysinfo.uptime_ms(), None, None, self.active_mw if busy else self.idle_mw)]

    def floor(self):
        """The model's idle power."""
        return self.idle_mw


def number(settings, key, source):
    """``settings[key]`` as a number; E_POWER naming the setting when missing or not one."""
    v = settings.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise DeviceError(
            "the %s power source needs %s (a number) in the board's power settings"
            % (source, key),
            _E_POWER,
        )
    return v


def open_source(settings):
    """The estimate source of ``settings`` (idle_mw, active_mw)."""
    idle = number(settings, "idle_mw", "estimate")
    return Estimate(idle, number(settings, "active_mw", "estimate"))


class Meter:
    """A source, whether it measures, its events ring and the lowest power it reported."""

    def __init__(self, source, capacity):
        self.source = source
        self.ring = Ring(capacity)
        self.enabled = False
        self.lowest = None

    def status(self):
        """Plain dict: the source, whether its figures are estimates, whether it measures."""
        return {
            "source": self.source.name,
            "estimated": self.source.estimated,
            "enabled": self.enabled,
        }

    def enable(self, on):
        """Switch measurement on or off."""
        if on:
            self.source.enable()
        else:
            self.source.disable()
        self.enabled = on

    def poll(self, busy):
        """Events of the source now, kept in the ring; returns them."""
        events = self.source.poll(busy)
        for e in events:
            self.ring.push(e)
            mw = e[3]
            if mw is not None and (self.lowest is None or mw < self.lowest):
                self.lowest = mw
        return events

    def span(self, us):
        """Poll after ``us`` µs of work: a measuring source's energy over them (µJ), else None.

        The mean power of the events within the span before the newest one, times the span.
        """
        events = self.poll(True)
        if self.source.estimated or not events:
            return None
        since = events[-1][0] - us // 1000 - 1
        total = 0
        n = 0
        for e in events:
            if e[0] >= since and e[3] is not None:
                total += e[3]
                n += 1
        return total / n * us / 1000 if n else None

    def after_inference(self, agent, model, us):
        """The agent's hook after each inference while measuring: events, and energy."""
        uj = self.span(us)
        if uj is not None:
            agent.stats.energy(model, uj, us)

    def read(self):
        """POWER_READ reply: a fresh poll when measuring, then the events since the last read."""
        if self.enabled:
            self.poll(False)
        events, dropped = self.ring.take()
        out = self.status()
        out["events"] = events
        out["dropped"] = dropped
        out["capacity"] = self.ring.capacity
        if self.source.rails:
            out["rails"] = self.source.rails
        return out

    def floor(self):
        """(floor power in mW or None, what it is based on)."""
        mw = self.source.floor()
        if mw is not None:
            return mw, self.source.floor_basis
        # A sensor: the lowest reading since measurement began, a fresh one included.
        events = self.poll(False) if self.enabled else self.source.poll(False)
        low = self.lowest
        for e in events:
            if e[3] is not None and (low is None or e[3] < low):
                low = e[3]
        return low, "lowest"


def open_meter(settings):
    """A meter on the source ``settings`` name (the board's power settings)."""
    name = settings.get("source") if settings else None
    if not name:
        raise DeviceError(
            "no power source on this board: give it one in boards.yml "
            "(power: {source: estimate|sysfs|ina219|ina226|akida, ...})",
            _E_NOT_IMPLEMENTED,
        )
    module = SOURCES.get(name)
    if module is None:
        raise DeviceError(
            "unknown power source %r; the sources are %s" % (name, ", ".join(sorted(SOURCES))),
            _E_POWER,
        )
    module = "kpdev.device." + module
    try:
        __import__(module)
    except ImportError as e:
        raise DeviceError("the %s power source does not load here: %s" % (name, e), _E_POWER)
    source = sys.modules[module].open_source(settings)
    capacity = settings.get("ring")
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
        capacity = 32 if sysinfo.MICROPYTHON else 1024
    return Meter(source, capacity)


def meter_of(agent):
    """The agent's power meter, opened from its power settings on first use."""
    meter = agent.power
    if meter is None:
        meter = agent.power = open_meter(agent.power_config)
    return meter
