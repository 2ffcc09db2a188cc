"""INA219 and INA226 current/power monitors on I2C, and the power source that reads one.

Register maps and calibration from the TI data sheets (INA219: SBOS448, INA226: SBOS547).
Registers are 16 bits, most significant byte first.  The chip measures the shunt voltage and
the bus voltage; with the calibration register set, it works out current and power itself:

    INA219  Cal = trunc(0.04096 / (Current_LSB x R_shunt))   Current = Shunt x Cal / 4096
            Power_LSB = 20 x Current_LSB                     Power = Current x Bus / 5000
            shunt LSB 10 µV; bus register bits 15-3, LSB 4 mV; bit 0 OVF (math overflow)
    INA226  Cal = trunc(0.00512 / (Current_LSB x R_shunt))   Current = Shunt x Cal / 2048
            Power_LSB = 25 x Current_LSB                     Power = Current x Bus / 20000
            shunt LSB 2.5 µV; bus LSB 1.25 mV; manufacturer id register 0xFE reads 0x5449

Settings (the board's power settings in boards.yml)::

    source      ina219 or ina226
    i2c         {id: N, scl: PIN, sda: PIN, freq: HZ, soft: false} -> machine.I2C / SoftI2C
    addr        the chip's I2C address (default 0x40)
    shunt_ohms  the shunt resistor (default 0.1)
    max_amps    the largest current expected (default 2.0 on an INA219, 0.8 on an INA226)
    average     samples averaged per conversion (default 1 on an INA219, 16 on an INA226)
"""

import struct

from kpdev.device import sysinfo
from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_E_NOT_IMPLEMENTED = const(9)
_E_POWER = const(26)

_REG_CONFIG = const(0x00)
_REG_SHUNT = const(0x01)
_REG_BUS = const(0x02)
_REG_POWER = const(0x03)
_REG_CURRENT = const(0x04)
_REG_CALIBRATION = const(0x05)
_REG_MANUFACTURER = const(0xFE)
_TI = const(0x5449)
_MODE_CONTINUOUS = const(0x7)  # shunt and bus, continuous
_MODE_MASK = const(0x7)


class INA219:
    """An INA219 at ``addr`` on ``i2c``, calibrated for ``shunt_ohms`` and ``max_amps``."""

    name = "INA219"
    CAL_SCALE = 0.04096
    CAL_MAX = 0xFFFE  # bit 0 of the calibration register is always 0
    POWER_LSB_FACTOR = 20
    SHUNT_LSB_UV = 10
    BUS_SHIFT = 3
    BUS_LSB_UV = 4000
    MAX_AMPS = 2.0
    AVERAGE = 1

    def __init__(self, i2c, addr=0x40, shunt_ohms=0.1, max_amps=None, average=None):
        self.i2c = i2c
        self.addr = addr
        max_amps = max_amps or self.MAX_AMPS
        if shunt_ohms <= 0 or max_amps <= 0:
            raise DeviceError("%s: shunt_ohms and max_amps must be above 0" % self.name, _E_POWER)
        self.identify()
        # The current register is signed 16-bit: the smallest LSB that still holds max_amps.
        cal = int(self.CAL_SCALE / (max_amps / 32768 * shunt_ohms))
        cal = min(cal, self.CAL_MAX) & self.CAL_MAX
        if cal < 1:
            raise DeviceError(
                "%s: max_amps %g with a %g ohm shunt is beyond what the calibration register "
                "can hold" % (self.name, max_amps, shunt_ohms),
                _E_POWER,
            )
        self.calibration = cal
        self.current_lsb = self.CAL_SCALE / (cal * shunt_ohms)  # A per bit, for this Cal
        self.config = self.configuration(max_amps * shunt_ohms, average or self.AVERAGE)
        self.write(_REG_CONFIG, 0x8000)  # reset: every register to its default
        self.write(_REG_CONFIG, self.config)
        self.write(_REG_CALIBRATION, cal)

    def identify(self):
        """Nothing to check: an INA219 has no identification register."""

    def configuration(self, shunt_volts, average):
        """The configuration register for the largest shunt drop and the samples averaged."""
        # PGA: the smallest shunt range (40, 80, 160, 320 mV) that holds the largest drop.
        pga = 0
        drop_uv = int(shunt_volts * 1000000 + 0.5)  # in µV: 0.4 A x 0.1 ohm is 40 mV, not more
        while 40000 << pga < drop_uv:
            pga += 1
            if pga > 3:
                raise DeviceError(
                    "INA219: max_amps x shunt_ohms = %g V, beyond its 320 mV shunt range"
                    % shunt_volts,
                    _E_POWER,
                )
        # ADC: 12 bits (0b0011), or 2^n samples averaged (0b1000 + n, up to 128).
        adc = 3
        if average > 1:
            n = 1
            while (1 << n) < average and n < 7:
                n += 1
            adc = 8 + n
        # BRNG 1: the 32 V bus range.
        return 1 << 13 | pga << 11 | adc << 7 | adc << 3 | _MODE_CONTINUOUS

    def write(self, reg, value):
        """Write a 16-bit register."""
        self.i2c.writeto_mem(self.addr, reg, bytes((value >> 8 & 0xFF, value & 0xFF)))

    def read_u16(self, reg):
        """A 16-bit register, unsigned."""
        data = self.i2c.readfrom_mem(self.addr, reg, 2)
        return data[0] << 8 | data[1]

    def read_s16(self, reg):
        """A 16-bit register, two's complement."""
        return struct.unpack(">h", self.i2c.readfrom_mem(self.addr, reg, 2))[0]

    def bus_uv(self):
        """Bus voltage in µV."""
        raw = self.read_u16(_REG_BUS)
        if self.BUS_SHIFT and raw & 1:
            raise DeviceError(
                "%s at 0x%02x: math overflow: the current or power is beyond its calibration "
                "(raise max_amps)" % (self.name, self.addr),
                _E_POWER,
            )
        return (raw >> self.BUS_SHIFT) * self.BUS_LSB_UV

    def shunt_uv(self):
        """Shunt voltage in µV."""
        return self.read_s16(_REG_SHUNT) * self.SHUNT_LSB_UV

    def current_ma(self):
        """Current in mA, from the chip's current register."""
        return self.read_s16(_REG_CURRENT) * self.current_lsb * 1000

    def power_mw(self):
        """Power in mW, from the chip's power register."""
        return self.read_u16(_REG_POWER) * self.current_lsb * self.POWER_LSB_FACTOR * 1000

    def read(self):
        """(bus µV, current mA, power mW)."""
        return self.bus_uv(), self.current_ma(), self.power_mw()

    def sleep(self, on):
        """Power-down mode (``on``) or continuous conversions again."""
        mode = 0 if on else _MODE_CONTINUOUS
        self.write(_REG_CONFIG, (self.config & ~_MODE_MASK) | mode)


class INA226(INA219):
    """An INA226 at ``addr`` on ``i2c``, calibrated for ``shunt_ohms`` and ``max_amps``."""

    name = "INA226"
    CAL_SCALE = 0.00512
    CAL_MAX = 0x7FFF  # bit 15 of the calibration register is reserved
    POWER_LSB_FACTOR = 25
    SHUNT_LSB_UV = 2.5
    BUS_SHIFT = 0
    BUS_LSB_UV = 1250
    MAX_AMPS = 0.8
    AVERAGE = 16

    def identify(self):
        """E_POWER unless the manufacturer id register reads "TI"."""
        maker = self.read_u16(_REG_MANUFACTURER)
        if maker != _TI:
            raise DeviceError(
                "the chip at I2C address 0x%02x is not an INA226: manufacturer id 0x%04x, "
                "an INA226 reads 0x%04x" % (self.addr, maker, _TI),
                _E_POWER,
            )

    def configuration(self, shunt_volts, average):
        """The configuration register for the largest shunt drop and the samples averaged."""
        if shunt_volts > 0.08192:
            raise DeviceError(
                "INA226: max_amps x shunt_ohms = %g V, beyond its 81.92 mV shunt range"
                % shunt_volts,
                _E_POWER,
            )
        # AVG: 1, 4, 16, 64, 128, 256, 512, 1024 samples; conversion times 1.1 ms (0b100).
        avg = 0
        for n in (1, 4, 16, 64, 128, 256, 512):
            if n >= average:
                break
            avg += 1
        return 0x4000 | avg << 9 | 4 << 6 | 4 << 3 | _MODE_CONTINUOUS


class INAPower:
    """The power source on an INA219 or INA226: one reading per poll."""

    estimated = False
    floor_basis = "lowest"
    rails = None

    def __init__(self, chip):
        self.chip = chip
        self.name = chip.name.lower()

    def _failed(self, e):
        return DeviceError(
            "no answer from the %s at I2C address 0x%02x (%s: %s): check the wiring and addr"
            % (self.chip.name, self.chip.addr, type(e).__name__, e),
            _E_POWER,
        )

    def enable(self):
        """Continuous conversions."""
        try:
            self.chip.sleep(False)
        except OSError as e:
            raise self._failed(e)

    def disable(self):
        """Power-down mode: the chip draws next to nothing."""
        try:
            self.chip.sleep(True)
        except OSError as e:
            raise self._failed(e)

    def poll(self, busy):
        """One event: bus voltage, current and power now."""
        try:
            uv, ma, mw = self.chip.read()
        except OSError as e:
            raise self._failed(e)
        return [(sysinfo.uptime_ms(), uv, ma, mw)]

    def floor(self):
        """No such figure: the meter takes the lowest reading."""
        return None


def open_bus(settings):
    """machine.I2C (or SoftI2C) from the ``i2c`` settings."""
    import machine

    cfg = settings.get("i2c") or {}
    kind = "SoftI2C" if cfg.get("soft") else "I2C"
    cls = getattr(machine, kind, None)
    if cls is None:
        raise DeviceError("this board's machine module has no %s" % kind, _E_NOT_IMPLEMENTED)
    pins = {}
    for pin in ("scl", "sda"):
        if cfg.get(pin) is not None:
            pins[pin] = machine.Pin(cfg[pin])
    freq = cfg.get("freq", 400000)
    if kind == "SoftI2C":
        return cls(freq=freq, **pins)
    return cls(cfg.get("id", 0), freq=freq, **pins)


def open_source(settings):
    """The ina219 or ina226 source of ``settings``."""
    chip = INA226 if settings.get("source") == "ina226" else INA219
    args = {}
    for key in ("addr", "shunt_ohms", "max_amps", "average"):
        if settings.get(key) is not None:
            args[key] = settings[key]
    try:
        bus = open_bus(settings)
    except ImportError:
        raise DeviceError("the %s power source needs machine.I2C" % chip.name, _E_NOT_IMPLEMENTED)
    try:
        return INAPower(chip(bus, **args))
    except OSError as e:
        raise DeviceError(
            "no answer from the %s at I2C address 0x%02x (%s: %s): check the wiring and addr"
            % (chip.name, args.get("addr", 0x40), type(e).__name__, e),
            _E_POWER,
        )
