"""The INA219/INA226 driver against a fake I2C bus holding the chips' registers, on CPython and on
the real MicroPython unix port (with a fake ``machine`` module injected).

The fake is the one allowed kind of double: hardware that cannot be on this machine, imitated at
its own interface (machine.I2C's readfrom_mem/writeto_mem and the data sheets' register maps:
big-endian 16-bit registers, calibration and the chip's own current and power arithmetic).
"""

import json

import pytest
from conftest import micropython_driver

# Runs under CPython (exec) and MicroPython (as a script): no f-strings, nothing CPython-only.
FAKE_HARDWARE = r'''
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
            out["bus"] = [bus.id, bus.scl.n if bus.scl else None, bus.sda.n if bus.sda else None,
                          bus.freq]
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
'''

DRIVER = (
    FAKE_HARDWARE
    + r"""
import json
while True:
    line = sys.stdin.readline()
    if not line:
        break
    print(json.dumps(run(json.loads(line))))
"""
)


class CPythonHardware:
    name = "cpython"

    def __init__(self, monkeypatch):
        self.ns = {}
        exec(FAKE_HARDWARE, self.ns)
        self.monkeypatch = monkeypatch

    def run(self, cases):
        import sys

        # Recorded as absent, so the fake machine the cases install is gone after the test.
        self.monkeypatch.setitem(sys.modules, "machine", None)
        return [json.loads(json.dumps(self.ns["run"](c))) for c in cases]


class MicroPythonHardware:
    def __init__(self, request):
        self.driver = micropython_driver(request, "ina_driver.py", DRIVER)
        self.name = "micropython"

    def run(self, cases):
        return [json.loads(line) for line in self.driver.run([json.dumps(c) for c in cases])]


@pytest.fixture(params=["cpython", "micropython"])
def hw(request, monkeypatch):
    """Runs driver cases against the fake hardware under CPython or the real micropython."""
    if request.param == "cpython":
        return CPythonHardware(monkeypatch)
    return MicroPythonHardware(request)


def case(name, kind, shunt, volts, amps, **settings):
    return [name, kind, shunt, volts, amps, settings]


def test_ina219_calibration_configuration_and_readings(hw):
    # 0.1 ohm shunt, 0.4 A full scale: Current_LSB >= 0.4 / 2^15, Cal = trunc(0.04096 /
    # (Current_LSB x 0.1)) = 33554, PGA /1 (40 mV), 12-bit ADCs, 32 V range, continuous.
    base = dict(source="ina219", shunt_ohms=0.1, max_amps=0.4)
    got, neg, avg = hw.run(
        [
            case("registers", "ina219", 0.1, 5.0, 0.25, **base),
            case("registers", "ina219", 0.1, 3.3, -0.1, **base),
            case("registers", "ina219", 0.1, 12.0, 1.5, source="ina219", shunt_ohms=0.1,
                 max_amps=3.2, average=128),
        ]
    )  # fmt: skip
    assert "error" not in got, got
    assert got["calibration"] == got["reg_calibration"] == 33554
    assert got["config"] == got["reg_config"] == 0x219F
    assert got["writes"][0] == [0, 0x8000]  # reset first
    assert got["writes"][1:] == [[0, 0x219F], [5, 33554]]
    assert got["current_lsb"] == pytest.approx(0.04096 / (33554 * 0.1))
    lsb_ma = got["current_lsb"] * 1000
    assert got["bus_uv"] == 5_000_000
    assert got["shunt_uv"] == 25_000  # 0.25 A x 0.1 ohm
    assert abs(got["current_ma"] - 250) <= 2 * lsb_ma
    assert abs(got["power_mw"] - 1250) <= 20 * lsb_ma * 5  # a power LSB, at 5 V, and rounding
    assert got["current_ma"] < 250  # the chip truncates: a calibration mistake would show here

    assert neg["shunt_uv"] == -10_000
    assert abs(neg["current_ma"] + 100) <= 2 * lsb_ma
    assert abs(neg["power_mw"] - 330) <= 1.0
    assert neg["bus_uv"] == 3_300_000

    # 3.2 A over 0.1 ohm needs the 320 mV range (PGA /8); 128 samples averaged (0b1111).
    assert avg["config"] == 1 << 13 | 3 << 11 | 0xF << 7 | 0xF << 3 | 7
    assert avg["calibration"] == 4194
    assert abs(avg["current_ma"] - 1500) <= 2 * avg["current_lsb"] * 1000
    assert abs(avg["power_mw"] - 18000) <= 18000 * 0.002


def test_ina219_overflow_missing_chip_and_bad_settings_are_clear_errors(hw):
    over, missing, too_big = hw.run(
        [
            # Calibrated for 0.3 A: 0.35 A is still inside the 40 mV shunt range, but the
            # current register overflows, and the chip says so in the bus register's OVF bit.
            case("registers", "ina219", 0.1, 5.0, 0.35, source="ina219", shunt_ohms=0.1,
                 max_amps=0.3),
            case("source", "ina219", 0.1, 5.0, 0.1, source="ina219", addr=0x41,
                 shunt_ohms=0.1),
            case("source", "ina219", 0.1, 5.0, 0.1, source="ina219", shunt_ohms=0.5,
                 max_amps=1.0),
        ]
    )  # fmt: skip
    assert over["code"] == 26 and "math overflow" in over["error"]
    assert missing["code"] == 26
    assert "no answer from the INA219 at I2C address 0x41" in missing["error"]
    assert too_big["code"] == 26 and "320 mV" in too_big["error"]


def test_ina226_calibration_identification_and_readings(hw):
    got, wrong = hw.run(
        [
            case("registers", "ina226", 0.01, 12.0, 3.0, source="ina226", shunt_ohms=0.01,
                 max_amps=5.0),
            case("registers", "ina219", 0.01, 12.0, 3.0, source="ina226", shunt_ohms=0.01,
                 max_amps=5.0),
        ]
    )  # fmt: skip
    assert "error" not in got, got
    # Cal = trunc(0.00512 / (5 / 2^15 x 0.01)) = 3355; 16 samples averaged, 1.1 ms conversions.
    assert got["calibration"] == got["reg_calibration"] == 3355
    assert got["config"] == got["reg_config"] == 0x4000 | 2 << 9 | 4 << 6 | 4 << 3 | 7
    assert got["bus_uv"] == 12_000_000  # 9600 x 1.25 mV, no shift
    assert got["shunt_uv"] == 30_000  # 12000 x 2.5 uV
    lsb_ma = got["current_lsb"] * 1000
    assert abs(got["current_ma"] - 3000) <= 2 * lsb_ma
    assert abs(got["power_mw"] - 36000) <= 25 * lsb_ma * 12 + 36000 * 0.001
    assert wrong["code"] == 26 and "not an INA226" in wrong["error"]
    assert "manufacturer id 0x0000" in wrong["error"]


def test_ina_source_opens_its_bus_polls_and_powers_down(hw):
    (got,) = hw.run(
        [
            case("source", "ina219", 0.1, 5.0, 0.2, source="ina219", shunt_ohms=0.1,
                 max_amps=0.4, i2c={"id": 1, "scl": 7, "sda": 6, "freq": 100000}),
        ]
    )  # fmt: skip
    assert "error" not in got, got
    assert got["bus"] == [1, 7, 6, 100000]
    assert got["name"] == "ina219"
    ((ts, uv, ma, mw),) = got["poll"]
    assert isinstance(ts, int)
    assert uv == 5_000_000 and abs(ma - 200) < 0.1 and abs(mw - 1000) < 1
    # Powered down: the chip keeps its last results even though the current doubled.
    assert got["mode_off"] == 0
    assert got["poll_off"][0][1] == pytest.approx(ma)
    assert got["mode_on"] == 7
    assert abs(got["poll_on"][0][1] - 400) < 0.2
