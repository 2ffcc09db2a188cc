"""The INA219/INA226 driver against a fake I2C bus holding the chips' registers, on CPython and on
the real MicroPython unix port (with a fake ``machine`` module injected).

The fake is the one allowed kind of double: hardware that cannot be on this machine, imitated at
its own interface (machine.I2C's readfrom_mem/writeto_mem and the data sheets' register maps:
big-endian 16-bit registers, calibration and the chip's own current and power arithmetic).
"""

import json

import pytest

# The fake hardware and the cases' runner; the ``impl`` fixture runs it under both interpreters.
DRIVER = "ina_driver.py"


def run(impl, cases):
    """Each case's result (a plain dict) from the driver."""
    return [json.loads(line) for line in impl.run([json.dumps(c) for c in cases])]


def case(name, kind, shunt, volts, amps, **settings):
    return [name, kind, shunt, volts, amps, settings]


def test_ina219_calibration_configuration_and_readings(impl):
    # 0.1 ohm shunt, 0.4 A full scale: Current_LSB >= 0.4 / 2^15, Cal = trunc(0.04096 /
    # (Current_LSB x 0.1)) = 33554, PGA /1 (40 mV), 12-bit ADCs, 32 V range, continuous.
    base = dict(source="ina219", shunt_ohms=0.1, max_amps=0.4)
    got, neg, avg = run(
        impl,
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


def test_ina219_overflow_missing_chip_and_bad_settings_are_clear_errors(impl):
    over, missing, too_big = run(
        impl,
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


def test_ina226_calibration_identification_and_readings(impl):
    got, wrong = run(
        impl,
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


def test_ina_source_opens_its_bus_polls_and_powers_down(impl):
    (got,) = run(
        impl,
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
