"""The INA219/INA226 driver against a fake I2C bus holding the chips' registers: one case a line
in (JSON), a JSON object out.

The fake is hardware that cannot be on this machine, imitated at its own interface (machine.I2C's
readfrom_mem/writeto_mem and the data sheets' register maps).  Runs unchanged under CPython and
MicroPython (no f-strings, nothing CPython-only; tests/device/test_ina219.py).
"""

import json
import sys


class Chip:
    """An INA219 or INA226 as its data sheet describes its registers; volts and amps are the
    circuit it measures (bus voltage, current through the shunt)."""

    def __init__(self, kind, shunt_ohms):
        self.kind = kind
        self.shunt_ohms = shunt_ohms
        self.volts = 0.0
        self.amps = 0.0
        self.writes = []
        self.reset()

    def reset(self):
        if self.kind == "ina219":
            self.regs = {0: 0x399F, 5: 0}
        else:
            self.regs = {0: 0x4127, 5: 0, 6: 0, 7: 0, 0xFE: 0x5449, 0xFF: 0x2260}
        self.frozen = None

    def write(self, reg, value):
        self.writes.append((reg, value))
        if reg == 0:
            if value & 0x8000:
                self.reset()
                return
            if (value & 7) == 0 and self.frozen is None:
                self.frozen = self.measure()  # power-down: the last results stay
            elif (value & 7) != 0:
                self.frozen = None
            self.regs[0] = value
        elif reg == 5:
            self.regs[5] = value & (0xFFFE if self.kind == "ina219" else 0x7FFF)
        elif reg in self.regs and reg < 0xFE:
            self.regs[reg] = value

    def measure(self):
        # Shunt and bus conversions, then the chip's own current and power arithmetic.
        cal = self.regs[5]
        if self.kind == "ina219":
            pga = self.regs[0] >> 11 & 3
            limit = 4000 * (1 << pga)  # 40 mV x 2^pga in 10 uV steps
            shunt = round(self.amps * self.shunt_ohms / 10e-6)
            bus = round(self.volts / 0.004)
            divider, power_div = 4096, 5000
        else:
            limit = 32767
            shunt = round(self.amps * self.shunt_ohms / 2.5e-6)
            bus = round(self.volts / 0.00125)
            divider, power_div = 2048, 20000
        shunt = max(-limit, min(limit, shunt))
        current = int(shunt * cal / divider)
        overflow = not -32768 <= current <= 32767
        current = max(-32768, min(32767, current))
        power = int(abs(current) * bus / power_div)
        overflow = overflow or power > 0xFFFF
        power = min(power, 0xFFFF)
        if self.kind == "ina219":
            bus = bus << 3 | 2 | (1 if overflow else 0)  # CNVR, OVF
        return {1: shunt & 0xFFFF, 2: bus & 0xFFFF, 3: power, 4: current & 0xFFFF}

    def read(self, reg):
        if reg in (1, 2, 3, 4):
            return (self.frozen or self.measure())[reg]
        return self.regs.get(reg, 0)


class I2C:
    """machine.I2C with chips on it: an address nobody answers is OSError 19 (ENODEV)."""

    buses = []

    def __init__(self, id=0, scl=None, sda=None, freq=400000):
        self.id = id
        self.scl = scl
        self.sda = sda
        self.freq = freq
        self.chips = {}
        I2C.buses.append(self)

    def _chip(self, addr):
        chip = self.chips.get(addr)
        if chip is None:
            raise OSError(19)
        return chip

    def readfrom_mem(self, addr, reg, n):
        value = self._chip(addr).read(reg)
        return bytes([value >> 8 & 0xFF, value & 0xFF])[:n]

    def writeto_mem(self, addr, reg, buf):
        self._chip(addr).write(reg, buf[0] << 8 | buf[1])


class Pin:
    def __init__(self, n):
        self.n = n


class Machine:
    """The fake ``machine`` module: I2C and Pin only."""

    I2C = I2C
    Pin = Pin


def install(chips):
    """Put a fake ``machine`` in sys.modules whose next I2C bus holds ``chips`` {addr: Chip}."""

    class Bus(I2C):
        def __init__(self, *args, **kw):
            I2C.__init__(self, *args, **kw)
            self.chips = chips

    machine = Machine()
    machine.I2C = Bus
    sys.modules["machine"] = machine
    return machine


def run(case):
    """Run one named case; returns a plain dict (what the test checks)."""
    from kpdev.device import power_ina
    from kpdev.protocol.errors import DeviceError

    name, kind, shunt, volts, amps, settings = case
    chip = Chip(kind, shunt)
    chip.volts = volts
    chip.amps = amps
    addr = settings.get("chip_addr", 0x40)
    install({addr: chip} if kind else {})
    settings = dict(settings)
    settings.pop("chip_addr", None)
    out = {}
    try:
        if name == "registers":
            ina = (power_ina.INA226 if settings["source"] == "ina226" else power_ina.INA219)(
                sys.modules["machine"].I2C(0),
                settings.get("addr", 0x40),
                settings["shunt_ohms"],
                settings.get("max_amps"),
                settings.get("average"),
            )
            out["calibration"] = ina.calibration
            out["config"] = ina.config
            out["current_lsb"] = ina.current_lsb
            out["reg_config"] = chip.regs[0]
            out["reg_calibration"] = chip.regs[5]
            out["writes"] = [list(w) for w in chip.writes]
            out["bus_uv"] = ina.bus_uv()
            out["shunt_uv"] = ina.shunt_uv()
            out["current_ma"] = ina.current_ma()
            out["power_mw"] = ina.power_mw()
        elif name == "source":
            source = power_ina.open_source(settings)
            bus = source.chip.i2c
            out["bus"] = [
                bus.id,
                bus.scl.n if bus.scl else None,
                bus.sda.n if bus.sda else None,
                bus.freq,
            ]
            out["name"] = source.name
            out["poll"] = [list(e) for e in source.poll(False)]
            source.disable()
            out["mode_off"] = chip.regs[0] & 7
            chip.amps = amps * 2
            out["poll_off"] = [list(e)[1:] for e in source.poll(False)]
            source.enable()
            out["mode_on"] = chip.regs[0] & 7
            out["poll_on"] = [list(e)[1:] for e in source.poll(False)]
    except DeviceError as e:
        out["error"] = e.message
        out["code"] = e.code
    return out


def handle(line):
    try:
        return json.dumps(run(json.loads(line)))
    finally:
        sys.modules.pop("machine", None)  # the fake is gone after each case


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        line = line.strip()
        if line:
            print(handle(line))


if __name__ == "__main__":
    main()
