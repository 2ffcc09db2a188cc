"""The Akida SoC's power meter and clock modes, through the akida package (CPython only).

Settings (the board's power settings in boards.yml): ``device``, the index in
``akida.devices()`` (default 0).

The meter is the SoC's own: ``soc.power_measurement_enabled`` switches it, and
``soc.power_meter.events()`` hands over the events logged since the last call (the SoC keeps a
bounded list, newest replacing oldest), each with a timestamp in ms, the voltage in µV, the
current in mA and the power in mW, passed on as the akida API gives them.
``soc.power_meter.floor`` is the SoC's floor power in mW.  Clock modes are
``akida.core.soc.ClockMode`` members (Performance, Economy, LowPower), set through
``soc.clock_mode``.
"""

from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_E_BAD_VALUE = const(25)
_E_POWER = const(26)


class AkidaPower:
    """The power meter and clock of one Akida device (``akida.HardwareDevice``)."""

    name = "akida"
    estimated = False
    floor_basis = "meter"
    rails = None

    def __init__(self, device):
        soc = device.soc
        if soc is None:
            raise DeviceError(
                "the Akida device %s is not a SoC: it has no power meter" % device.desc, _E_POWER
            )
        self.device = device
        self.soc = soc

    def enable(self):
        """Power measurement on (it is off when the SoC starts)."""
        self.soc.power_measurement_enabled = True

    def disable(self):
        """Power measurement off."""
        self.soc.power_measurement_enabled = False

    def poll(self, busy):
        """The events the SoC logged since the last poll."""
        return [
            (int(e.ts), int(e.voltage), float(e.current), float(e.power))
            for e in self.soc.power_meter.events()
        ]

    def floor(self):
        """The SoC's floor power in mW."""
        return float(self.soc.power_meter.floor)

    def clock_get(self):
        """CLOCK_GET reply: the clock mode and the modes there are."""
        from akida.core.soc import ClockMode

        mode = self.soc.clock_mode
        return {
            "kind": "akida",
            "mode": mode.name,
            "modes": list(ClockMode.__members__),
            "writable": True,
            "freq_hz": int(mode.value),
        }

    def clock_set(self, mode):
        """CLOCK_SET: switch the SoC to clock mode ``mode`` (a ClockMode name)."""
        from akida.core.soc import ClockMode

        member = ClockMode.__members__.get(mode)
        if member is None:
            raise DeviceError(
                "no Akida clock mode %r; the modes are %s"
                % (mode, ", ".join(ClockMode.__members__)),
                _E_BAD_VALUE,
            )
        self.soc.clock_mode = member
        return self.clock_get()


def open_source(settings):
    """The akida source: device ``settings["device"]`` (default 0) of ``akida.devices()``."""
    try:
        import akida
    except ImportError as e:
        raise DeviceError("the akida power source needs the akida package: %s" % e, _E_POWER)
    devices = akida.devices()
    index = settings.get("device") or 0
    if not devices:
        raise DeviceError(
            "no Akida device here: akida.devices() is empty (is the card or SoC driver loaded?)",
            _E_POWER,
        )
    if not 0 <= index < len(devices):
        raise DeviceError(
            "no Akida device %d: akida.devices() has %d" % (index, len(devices)), _E_POWER
        )
    return AkidaPower(devices[index])
