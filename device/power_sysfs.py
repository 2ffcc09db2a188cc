"""Power from Linux hwmon sensors in sysfs: the ina2xx and ina3221 drivers (Jetson rails).

Settings (the board's power settings in boards.yml)::

    root     a hwmon class directory (default /sys/class/hwmon), one device's hwmon directory,
             or one hwmonN directory
    sensor   the hwmon ``name`` to use, e.g. ina3221 (default: the first with a current or
             power input)
    rail     the channel to measure by its label (in{N}_label, e.g. VDD_IN on a Jetson)
    channel  or by its number (default: the first)

Units as the kernel's hwmon ABI gives them: in{N}_input mV (the bus voltage of channel N),
curr{N}_input mA, power{N}_input µW.  A channel without a power input (INA3221) reports
voltage x current.
"""

import os

from kpdev.device import sysinfo
from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_E_POWER = const(26)

DEFAULT_ROOT = "/sys/class/hwmon"


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        raise DeviceError("cannot read %s: %s" % (path, e), _E_POWER)


def _int(path):
    text = _text(path)
    try:
        return int(text)
    except ValueError:
        raise DeviceError("%s holds %r, not a number" % (path, text), _E_POWER)


def _number_of(entry):
    # "hwmon12" -> 12, for a numeric sort; anything else sorts last.
    digits = entry[5:]
    return int(digits) if digits.isdigit() else 1 << 30


def find_hwmon(root, sensor=None):
    """The hwmon directory under ``root`` whose ``name`` is ``sensor`` (or the first one with
    a current or power input); E_POWER naming what was found when there is none."""
    if _exists(root + "/name"):
        candidates = [root]
    else:
        try:
            entries = os.listdir(root)
        except OSError:
            raise DeviceError("no hwmon sensors: %s does not exist" % root, _E_POWER)
        entries = sorted([e for e in entries if e.startswith("hwmon")], key=_number_of)
        candidates = [root + "/" + e for e in entries]
    names = []
    for path in candidates:
        if not _exists(path + "/name"):
            continue
        name = _text(path + "/name")
        names.append(name)
        if (sensor is None or name == sensor) and channels(path):
            return path
    if sensor is None:
        why = "none has a current or power input"
    else:
        why = "none is named %r" % sensor
    raise DeviceError(
        "no hwmon sensor to measure under %s: %s (found: %s)"
        % (root, why, ", ".join(names) or "no hwmon directories"),
        _E_POWER,
    )


def channels(path):
    """Numbers N of the channels with curr{N}_input or power{N}_input, in order."""
    found = []
    for entry in os.listdir(path):
        for prefix in ("curr", "power"):
            if entry.startswith(prefix) and entry.endswith("_input"):
                digits = entry[len(prefix) : -6]
                if digits.isdigit() and int(digits) not in found:
                    found.append(int(digits))
    found.sort()
    return found


class SysfsPower:
    """One hwmon sensor; the chosen channel's readings are the events."""

    name = "sysfs"
    estimated = False
    floor_basis = "lowest"

    def __init__(self, path, rail=None, channel=None):
        self.path = path
        self.numbers = channels(path)
        self.labels = [self._label(n) for n in self.numbers]
        if rail is not None:
            if rail not in self.labels:
                raise DeviceError(
                    "no rail %r in %s (rails: %s)" % (rail, path, ", ".join(self.labels)),
                    _E_POWER,
                )
            self.channel = self.numbers[self.labels.index(rail)]
        elif channel is not None:
            if channel not in self.numbers:
                raise DeviceError(
                    "no channel %d in %s (channels: %s)"
                    % (channel, path, ", ".join([str(n) for n in self.numbers])),
                    _E_POWER,
                )
            self.channel = channel
        else:
            self.channel = self.numbers[0]
        self.rails = None
        self.poll(False)  # a sensor that cannot be read says so now

    def _label(self, n):
        for kind in ("in", "curr", "power"):
            path = "%s/%s%d_label" % (self.path, kind, n)
            if _exists(path):
                return _text(path)
        return "channel%d" % n

    def reading(self, n):
        """(voltage µV or None, current mA or None, power mW) of channel ``n`` now."""
        base = "%s/%%s%d_input" % (self.path, n)
        mv = _int(base % "in") if _exists(base % "in") else None
        ma = _int(base % "curr") if _exists(base % "curr") else None
        if _exists(base % "power"):
            mw = _int(base % "power") / 1000
        elif mv is not None and ma is not None:
            mw = mv * ma / 1000
        else:
            raise DeviceError(
                "%s gives no power for channel %d: it needs %s, or both %s and %s"
                % (self.path, n, base % "power", base % "in", base % "curr"),
                _E_POWER,
            )
        return (None if mv is None else mv * 1000, ma, mw)

    def enable(self):
        """The kernel samples on its own: nothing to switch on."""

    def disable(self):
        """Nothing to switch off."""

    def poll(self, busy):
        """One event: the chosen channel now (every rail's reading goes to ``rails``)."""
        ts = sysinfo.uptime_ms()
        if len(self.numbers) > 1:
            rails = {}
            for i in range(len(self.numbers)):
                rails[self.labels[i]] = self.reading(self.numbers[i])
            self.rails = rails
            v = rails[self.labels[self.numbers.index(self.channel)]]
        else:
            v = self.reading(self.channel)
        return [(ts, v[0], v[1], v[2])]

    def floor(self):
        """No such figure: the meter takes the lowest reading."""
        return None


def open_source(settings):
    """The sysfs source of ``settings`` (root, sensor, rail, channel)."""
    path = find_hwmon(settings.get("root") or DEFAULT_ROOT, settings.get("sensor"))
    return SysfsPower(path, settings.get("rail"), settings.get("channel"))
