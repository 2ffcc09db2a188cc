"""POWER and CLOCK operations: each power source against hardware-shaped fixtures (sysfs trees,
an Akida double), the estimate end to end on the simulated boards, the clock, the CLI."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from support.agents import assert_serving, error_of
from support.cli import kpdev
from support.paths import DATA, read_data

from kpdev.device.agent import Agent
from kpdev.host.boards.catalog import get_board, load_boards
from kpdev.host.errors import BoardError
from kpdev.protocol import ops
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.tensors import Tensor

DENSE = read_data("dense_int8.tflite")
MODEL = DATA / "dense_int8.tflite"


def request(agent, op, body=None):
    """The reply of the in-process agent, or (code, message) of its refusal."""
    try:
        return agent.request(op, body)
    except DeviceError as e:
        return e.code, e.message


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(text) + "\n")


# --- the ring buffer, on CPython and on MicroPython ----------------------------------------

DRIVER = "ring_driver.py"  # the ``impl`` fixture runs it under CPython and MicroPython


def ring_cases(impl, cases):
    """What each take gave out, for ring cases [capacity, [pushes before each take]]."""
    return [json.loads(line) for line in impl.run([json.dumps(c) for c in cases])]


def test_the_ring_keeps_the_newest_events_and_counts_what_it_drops(impl):
    got = ring_cases(impl, [[4, [3, 10, 0, 4, 5]], [1, [2]]])
    takes = got[0]
    assert takes[0] == [[[i, None, None, i * 10] for i in range(3)], 0]
    assert takes[1] == [[[i, None, None, i * 10] for i in range(6, 10)], 6]  # oldest first
    assert takes[2] == [[], 0]  # a take empties the ring and its count
    assert takes[3] == [[[i, None, None, i * 10] for i in range(4)], 0]
    assert takes[4] == [[[i, None, None, i * 10] for i in range(1, 5)], 1]
    assert got[1] == [[[[1, None, None, 10]], 1]]


# --- sysfs: hwmon trees laid out as the kernel does -----------------------------------------

JETSON_RAILS = {
    1: ("VDD_IN", 5072, 1384),
    2: ("VDD_CPU_GPU_CV", 5064, 412),
    3: ("VDD_SOC", 5072, 668),
}


@pytest.fixture
def hwmon(tmp_path):
    """/sys/class/hwmon with a thermal zone, an INA219 (ina2xx driver) and an INA3221."""
    root = tmp_path / "hwmon"
    write(root / "hwmon0" / "name", "acpitz")
    write(root / "hwmon0" / "temp1_input", 45000)
    ina = root / "hwmon1"
    write(ina / "name", "ina219")
    write(ina / "in0_input", 25)  # shunt mV
    write(ina / "in1_input", 5000)  # bus mV
    write(ina / "curr1_input", 250)  # mA
    write(ina / "power1_input", 1250000)  # µW
    write(ina / "shunt_resistor", 100000)
    jetson = root / "hwmon2"
    write(jetson / "name", "ina3221")
    for n, (label, mv, ma) in JETSON_RAILS.items():
        write(jetson / f"in{n}_label", label)
        write(jetson / f"in{n}_input", mv)
        write(jetson / f"curr{n}_input", ma)
        write(jetson / f"in{n + 3}_input", ma // 100)  # shunt voltages
    return root


def test_sysfs_ina219_values_follow_the_sensor(tmp_path, hwmon):
    agent = Agent(str(tmp_path / "state"), power={"source": "sysfs", "root": str(hwmon)})
    assert request(agent, ops.POWER_ENABLE) == {
        "source": "sysfs",
        "estimated": False,
        "enabled": True,
    }
    read = request(agent, ops.POWER_READ)
    assert read["estimated"] is False and "rails" not in read
    assert [e[1:] for e in read["events"]] == [(5_000_000, 250, 1250.0)]
    ina = hwmon / "hwmon1"
    write(ina / "power1_input", 990000)
    write(ina / "curr1_input", 200)
    write(ina / "in1_input", 4950)
    assert [e[1:] for e in request(agent, ops.POWER_READ)["events"]] == [(4_950_000, 200, 990.0)]
    write(ina / "power1_input", 1500000)
    floor = request(agent, ops.POWER_FLOOR)
    assert floor["floor_mw"] == 990.0 and floor["basis"] == "lowest"
    assert request(agent, ops.POWER_READ)["events"][0][3] == 1500.0


def test_sysfs_jetson_rails_by_label(tmp_path, hwmon):
    settings = {"source": "sysfs", "root": str(hwmon), "sensor": "ina3221", "rail": "VDD_SOC"}
    agent = Agent(str(tmp_path / "state"), power=settings)
    request(agent, ops.POWER_ENABLE)
    read = request(agent, ops.POWER_READ)
    ((ts, uv, ma, mw),) = read["events"]
    assert (uv, ma) == (5_072_000, 668) and mw == pytest.approx(5072 * 668 / 1000)
    assert set(read["rails"]) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}
    uv_in, ma_in, mw_in = read["rails"]["VDD_IN"]
    assert (uv_in, ma_in) == (5_072_000, 1384) and mw_in == pytest.approx(5072 * 1384 / 1000)
    # A hwmon directory given as the root, and a channel by number.
    agent = Agent(
        str(tmp_path / "state2"),
        power={"source": "sysfs", "root": str(hwmon / "hwmon2"), "channel": 2},
    )
    request(agent, ops.POWER_ENABLE)
    assert request(agent, ops.POWER_READ)["events"][0][2] == 412


def test_sysfs_missing_sensors_and_files_are_clear_errors(tmp_path, hwmon):
    def refusal(**settings):
        agent = Agent(str(tmp_path / "state"), power=dict(source="sysfs", **settings))
        return request(agent, ops.POWER_ENABLE)

    code, msg = refusal(root=str(tmp_path / "nope"))
    assert code == ops.E_POWER and "does not exist" in msg
    code, msg = refusal(root=str(hwmon), sensor="ina226")
    assert code == ops.E_POWER and "none is named 'ina226'" in msg
    assert "acpitz, ina219, ina3221" in msg
    code, msg = refusal(root=str(hwmon), sensor="ina3221", rail="VDD_GPU")
    assert code == ops.E_POWER and "VDD_IN, VDD_CPU_GPU_CV, VDD_SOC" in msg
    code, msg = refusal(root=str(hwmon / "hwmon2"), channel=7)
    assert code == ops.E_POWER and "channels: 1, 2, 3" in msg

    # A power-less channel: neither power1_input nor a voltage beside the current.
    (hwmon / "hwmon1" / "power1_input").unlink()
    (hwmon / "hwmon1" / "in1_input").unlink()
    code, msg = refusal(root=str(hwmon), sensor="ina219")
    assert code == ops.E_POWER and "power1_input, or both" in msg

    # A file that goes away while measuring: that read fails, the agent goes on.
    write(hwmon / "hwmon1" / "power1_input", 1000000)
    agent = Agent(str(tmp_path / "s3"), power={"source": "sysfs", "root": str(hwmon)})
    request(agent, ops.POWER_ENABLE)
    (hwmon / "hwmon1" / "power1_input").unlink()
    (hwmon / "hwmon1" / "curr1_input").unlink()
    code, msg = request(agent, ops.POWER_READ)
    assert code == ops.E_POWER
    write(hwmon / "hwmon1" / "power1_input", 2000000)
    assert request(agent, ops.POWER_READ)["events"][-1][3] == 2000.0


def test_power_without_a_source_or_with_a_bad_one_is_refused(tmp_path):
    assert request(Agent(str(tmp_path / "a")), ops.POWER_READ)[0] == ops.E_NOT_IMPLEMENTED
    code, msg = request(Agent(str(tmp_path / "b"), power={"source": "solar"}), ops.POWER_READ)
    assert code == ops.E_POWER and "unknown power source 'solar'" in msg
    code, msg = request(Agent(str(tmp_path / "c"), power={"source": "estimate"}), ops.POWER_READ)
    assert code == ops.E_POWER and "idle_mw" in msg
    agent = Agent(str(tmp_path / "d"), power={"source": "estimate", "idle_mw": 1, "active_mw": 2})
    assert request(agent, ops.POWER_ENABLE, {"on": 1})[0] == ops.E_BAD_REQUEST


# --- Akida: a double of the hardware device (akida.devices() is empty on this machine) ------


class PowerEvent:
    """akida.PowerEvent: ts (ms), voltage (µV), current (mA), power (mW)."""

    def __init__(self, ts, voltage, current, power):
        self.ts, self.voltage, self.current, self.power = ts, voltage, current, power


class PowerMeter:
    """akida.PowerMeter: pending events (a bounded list, oldest replaced) and the floor."""

    def __init__(self, size):
        self.size = size
        self.pending = []
        self.floor = 312.5

    def events(self):
        out, self.pending = self.pending, []
        return out


class SocDriver:
    """akida.core.SocDriver: the power measurement switch, the meter and the clock mode."""

    def __init__(self):
        from akida.core.soc import ClockMode

        self.power_measurement_enabled = False
        self.power_meter = PowerMeter(16)
        self.clock_mode = ClockMode.Performance


class HardwareDevice:
    """akida.HardwareDevice with a SoC, or without one (a PCIe card's ``soc`` is None)."""

    desc = "BC.00.000.002 (double)"

    def __init__(self, soc=True):
        self.soc = SocDriver() if soc else None

    def measure(self, ts, voltage, current, power):
        """What the SoC's meter does on its own while power measurement is on."""
        if self.soc.power_measurement_enabled:
            meter = self.soc.power_meter
            meter.pending = (meter.pending + [PowerEvent(ts, voltage, current, power)])[
                -meter.size :
            ]


@pytest.fixture
def akida_device(monkeypatch):
    akida = pytest.importorskip("akida")
    device = HardwareDevice()
    monkeypatch.setattr(akida, "devices", lambda: [device])
    return device


def test_akida_meter_events_floor_and_switch(tmp_path, akida_device):
    agent = Agent(str(tmp_path / "s"), power={"source": "akida"})
    akida_device.measure(1, 800000, 100.0, 80.0)  # measurement off: the SoC logs nothing
    assert request(agent, ops.POWER_ENABLE)["source"] == "akida"
    assert akida_device.soc.power_measurement_enabled is True
    akida_device.measure(1000, 800125, 410.5, 328.4)
    akida_device.measure(1005, 799875, 402.0, 321.6)
    read = request(agent, ops.POWER_READ)
    assert read["estimated"] is False
    assert read["events"] == [(1000, 800125, 410.5, 328.4), (1005, 799875, 402.0, 321.6)]
    assert request(agent, ops.POWER_READ)["events"] == []
    floor = request(agent, ops.POWER_FLOOR)
    assert (floor["floor_mw"], floor["basis"]) == (312.5, "meter")
    assert request(agent, ops.POWER_ENABLE, {"on": False})["enabled"] is False
    assert akida_device.soc.power_measurement_enabled is False and agent.on_inference is None


def test_akida_energy_per_inference_from_the_meter(tmp_path, akida_device):
    agent = Agent(str(tmp_path / "s"), power={"source": "akida"})
    begin = {"name": "m", "format": "tflite", "size": len(DENSE)}
    agent.request(ops.MODEL_BEGIN, dict(begin, sha256=hashlib.sha256(DENSE).digest()))
    agent.request(ops.MODEL_CHUNK, {"name": "m", "offset": 0, "data": DENSE})
    agent.request(ops.MODEL_COMMIT, {"name": "m"})
    x = [Tensor("int8", [1, 16], bytes(16))]
    agent.run("m", x)  # not measured: no energy
    assert "energy" not in agent.request(ops.STATS)["models"]["m"]
    request(agent, ops.POWER_ENABLE)
    runs = []
    for i in range(3):
        # Idle readings long before, then what the SoC logged while the model ran.
        akida_device.measure(1000 * i, 800000, 300.0, 240.0)
        akida_device.measure(1000 * i + 500, 800000, 1375.0, 1100.0)
        akida_device.measure(1000 * i + 500, 800000, 1625.0, 1300.0)
        runs.append(agent.run("m", x)[2])
    energy = agent.request(ops.STATS)["models"]["m"]["energy"]
    assert energy["source"] == "akida" and energy["estimated"] is False
    assert energy["count"] == 3
    assert energy["mw"] == pytest.approx(1200.0)
    assert energy["mj"] == pytest.approx(1200.0 * sum(runs) / 3 / 1e6)
    assert len(request(agent, ops.POWER_READ)["events"]) == 9


def test_akida_clock_modes(tmp_path, akida_device):
    from akida.core.soc import ClockMode

    agent = Agent(str(tmp_path / "s"), power={"source": "akida"})
    got = request(agent, ops.CLOCK_GET)
    assert got["kind"] == "akida" and got["mode"] == "Performance"
    assert got["modes"] == ["Performance", "Economy", "LowPower"]
    assert got["freq_hz"] == 300_000_000
    got = request(agent, ops.CLOCK_SET, {"mode": "LowPower"})
    assert akida_device.soc.clock_mode == ClockMode.LowPower
    assert got["mode"] == "LowPower" and got["freq_hz"] == 5_000_000
    code, msg = request(agent, ops.CLOCK_SET, {"mode": "Turbo"})
    assert code == ops.E_BAD_VALUE and "Performance, Economy, LowPower" in msg
    assert akida_device.soc.clock_mode == ClockMode.LowPower


def test_akida_without_a_soc_or_a_device_says_so(tmp_path, monkeypatch):
    akida = pytest.importorskip("akida")
    assert akida.devices() == []  # this machine has no Akida hardware
    agent = Agent(str(tmp_path / "s"), power={"source": "akida"})
    code, msg = request(agent, ops.POWER_ENABLE)
    assert code == ops.E_POWER and "akida.devices() is empty" in msg
    monkeypatch.setattr(akida, "devices", lambda: [HardwareDevice(soc=False)])
    code, msg = request(agent, ops.POWER_ENABLE)
    assert code == ops.E_POWER and "is not a SoC" in msg


# --- clock: cpufreq trees --------------------------------------------------------------------


@pytest.fixture
def cpufreq(tmp_path):
    """/sys/devices/system/cpu with four CPUs under cpufreq."""
    root = tmp_path / "cpu"
    for n in range(4):
        policy = root / f"cpu{n}" / "cpufreq"
        write(policy / "scaling_governor", "schedutil")
        write(policy / "scaling_available_governors", "conservative ondemand userspace "
              "powersave performance schedutil")  # fmt: skip
        write(policy / "scaling_cur_freq", 1800000)
    write(root / "online", "0-3")
    (root / "cpuidle").mkdir()
    return root


def governors(root):
    return [(root / f"cpu{n}/cpufreq/scaling_governor").read_text().strip() for n in range(4)]


def clock_agent(tmp_path, root):
    settings = {"source": "estimate", "idle_mw": 1, "active_mw": 2, "cpufreq_root": str(root)}
    return Agent(str(tmp_path / "state"), power=settings)


def test_cpufreq_governor_get_and_set(tmp_path, cpufreq):
    agent = clock_agent(tmp_path, cpufreq)
    got = request(agent, ops.CLOCK_GET)
    assert got["kind"] == "cpufreq" and got["mode"] == "schedutil"
    assert "powersave" in got["modes"] and got["writable"] is True
    assert got["freq_hz"] == 1_800_000_000
    assert request(agent, ops.CLOCK_SET, {"mode": "powersave"})["mode"] == "powersave"
    assert governors(cpufreq) == ["powersave"] * 4
    code, msg = request(agent, ops.CLOCK_SET, {"mode": "turbo"})
    assert code == ops.E_BAD_VALUE and "schedutil" in msg
    assert request(agent, ops.CLOCK_SET, {})[0] == ops.E_BAD_REQUEST
    assert governors(cpufreq) == ["powersave"] * 4
    write(cpufreq / "cpu2/cpufreq/scaling_governor", "performance")
    got = request(agent, ops.CLOCK_GET)
    assert got["mode"] is None and got["cpus"]["cpu2"] == "performance"


def test_cpufreq_read_only_or_absent_is_refused_clearly(tmp_path, cpufreq):
    for n in range(4):
        os.chmod(cpufreq / f"cpu{n}/cpufreq/scaling_governor", 0o444)
    agent = clock_agent(tmp_path, cpufreq)
    assert request(agent, ops.CLOCK_GET)["writable"] is False
    code, msg = request(agent, ops.CLOCK_SET, {"mode": "performance"})
    assert code == ops.E_POWER and "read-only" in msg
    assert governors(cpufreq) == ["schedutil"] * 4
    code, msg = request(clock_agent(tmp_path, tmp_path / "none"), ops.CLOCK_GET)
    assert code == ops.E_NOT_IMPLEMENTED and "no cpufreq" in msg


# --- the estimate, end to end on the simulated boards --------------------------------------


def check_estimate(energy, board, mean_us):
    """Energy per inference labelled estimated and equal to active_mw x the mean latency."""
    active = get_board(board).power["active_mw"]
    assert energy["estimated"] is True and energy["source"] == "estimate"
    assert energy["mw"] == active
    # mean_us is the integer part of the mean: the energy may be up to 1 µs of power above.
    assert active * mean_us / 1e6 - 1e-12 <= energy["mj"] < active * (mean_us + 1) / 1e6


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_estimate_energy_and_events_on_the_wire(agents, board):
    client = agents.start(board).client()
    power = get_board(board).power
    client.upload("dense", DENSE, "tflite")
    xs = [np.zeros((1, 16), np.int8)] * 5
    client.infer_batch(xs, "dense")  # not measuring: no events, but the estimate is there
    assert client.power_read()["events"] == []
    st = client.stats(reset=True)["models"]["dense"]
    check_estimate(st["energy"], board, st["mean_us"])

    assert client.power_enable() == {"source": "estimate", "estimated": True, "enabled": True}
    client.infer_batch(xs, "dense")
    read = client.power_read()
    powers = [e["power_mw"] for e in read["events"]]
    assert powers == [power["active_mw"]] * 5 + [power["idle_mw"]]  # 5 inferences, then now
    assert read["dropped"] == 0 and read["estimated"] is True
    floor = client.power_floor()
    assert (floor["floor_mw"], floor["basis"], floor["estimated"]) == (
        power["idle_mw"],
        "model",
        True,
    )
    st = client.stats()["models"]["dense"]
    assert st["count"] == 5
    check_estimate(st["energy"], board, st["mean_us"])
    client.power_disable()
    client.infer(xs[0], "dense")
    assert client.power_read()["events"] == []


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_ring_overflow_on_the_device_is_counted(agents, board):
    settings = {"source": "estimate", "idle_mw": 1, "active_mw": 2, "ring": 4}
    client = agents.start(board, args=("--power", json.dumps(settings))).client()
    client.upload("dense", DENSE, "tflite")
    client.power_enable()
    client.infer_batch([np.zeros((1, 16), np.int8)] * 10, "dense")
    read = client.power_read()  # 10 inference events and the read's own: 4 kept, 7 dropped
    assert [e["power_mw"] for e in read["events"]] == [2, 2, 2, 1]
    assert read["dropped"] == 7 and read["capacity"] == 4
    ts = [e["ts_ms"] for e in read["events"]]
    assert ts == sorted(ts)
    again = client.power_read()
    assert len(again["events"]) == 1 and again["dropped"] == 0


@pytest.mark.parametrize("board", ["sim-mcu", "sim-mcu-64k", "sim-linux"])
def test_clock_is_refused_clearly_where_it_cannot_be_set(agents, board, tmp_path):
    args = ()
    if board == "sim-linux":  # whatever this machine's /sys has: a tree without cpufreq
        settings = dict(get_board(board).power, cpufreq_root=str(tmp_path / "cpu"))
        args = ("--power", json.dumps(settings))
    client = agents.start(board, args=args).client()
    for op, body in ((ops.CLOCK_GET, b""), (ops.CLOCK_SET, b"\xa1\x64mode\x61x")):
        code, msg = error_of(client, op, body)
        assert code == ops.E_NOT_IMPLEMENTED
        if board == "sim-linux":
            assert "no cpufreq" in msg
        else:
            assert "has no machine.freq()" in msg
    assert_serving(client)


def test_small_board_measures_and_still_serves(agents):
    client = agents.start("sim-mcu-64k").client()
    for _ in range(2):
        assert client.power_enable()["estimated"] is True
        assert client.power_read()["events"][0]["power_mw"] == 4
        assert client.power_floor()["floor_mw"] == 4
        client.upload("m", DENSE, "tflite", activate=False)  # an upload still has its heap
        assert "m" in [m["name"] for m in client.models()["models"]]
        client.delete("m")
    for op in (0x43, 0x47, 0x4A, ops.POWER_LAST):  # the range's unused codes stay reserved
        code, msg = error_of(client, op, b"")
        assert code == ops.E_NOT_IMPLEMENTED and "reserved" in msg
    assert_serving(client)


def test_the_agent_refuses_bad_power_settings_at_start(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "kpdev.device", "--state", str(tmp_path), "--power", "[1]"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 2 and "--power takes a JSON object" in r.stderr


def test_the_catalog_checks_power_settings(tmp_path):
    bad = tmp_path / "boards.yml"
    entry = "b:\n  name: B\n  runtime: linux\n  link: {type: sim}\n  ram_kb: 1\n  storage_kb: 1\n"
    bad.write_text(entry + "  power: {source: estimate, idle_mw: 5}\n")
    with pytest.raises(BoardError, match="needs active_mw"):
        load_boards(str(bad))
    bad.write_text(entry + "  power: {source: mains}\n")
    with pytest.raises(BoardError, match="power needs a source"):
        load_boards(str(bad))
    for bid in ("sim-mcu", "sim-mcu-64k", "sim-linux"):  # a power model on every sim board
        power = get_board(bid).power
        assert power["source"] == "estimate" and 0 < power["idle_mw"] < power["active_mw"]


# --- the CLI, on a served simulated board ---------------------------------------------------


def kpdev_json(*args):
    r = kpdev(*args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def served(request):
    """``kpdev sim BOARD --listen tcp`` running for the test: (board, port URL)."""
    board = request.param
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kpdev.host.cli",
            "sim",
            board,
            "--listen",
            "tcp://127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("socket://"), port + proc.stderr.read()
        yield board, port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("served", ["sim-linux", "sim-mcu"], indirect=True)
def test_cli_estimate_end_to_end(tmp_path, served):
    board, port = served
    p = ("--port", port)
    assert kpdev_json("deploy", MODEL, "--name", "dense", *p)["active"] is True
    np.save(tmp_path / "xs.npy", np.zeros((4, 1, 16), np.int8))
    assert kpdev_json("infer", "-i", tmp_path / "xs.npy", *p)["count"] == 4
    st = kpdev_json("stats", *p)["models"]["dense"]
    assert st["count"] == 4
    check_estimate(st["energy"], board, st["mean_us"])
    table = kpdev("stats", *p)
    assert table.returncode == 0 and "estimated" in table.stdout and "≈" in table.stdout

    one = kpdev_json("power", *p)  # switched on for the command, and off again after
    assert one["estimated"] is True and one["source"] == "estimate"
    assert one["events"] and all(e["estimated"] is True for e in one["events"])
    assert one["floor_mw"] == get_board(board).power["idle_mw"]
    r = kpdev("power", "--watch", "--count", "3", "--interval", "0.05", "--json", *p)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["estimated"] for line in lines)

    assert kpdev_json("power", "enable", *p)["enabled"] is True
    kpdev("infer", "-i", tmp_path / "xs.npy", *p)
    events = kpdev_json("power", *p)["events"]  # kept by the served board between commands
    active = get_board(board).power["active_mw"]
    assert [e["power_mw"] for e in events].count(active) == 4
    assert kpdev_json("power", "disable", *p)["enabled"] is False
    table = kpdev("power", *p)
    assert table.returncode == 0 and "ESTIMATED" in table.stdout and "≈" in table.stdout


def test_cli_clock_refusal_is_one_line_and_commands_have_help():
    r = kpdev("clock", "--board", "sim-mcu", "--json")
    assert r.returncode == 3 and json.loads(r.stdout)["error"]["code"] == 9  # NOT_IMPLEMENTED
    lines = r.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and "has no machine.freq()" in lines[0] and "NOT_IMPLEMENTED" in lines[0]
    )
    r = kpdev("clock", "performance", "--board", "sim-mcu")
    assert r.returncode == 3 and len(r.stderr.strip().splitlines()) == 1
    for args in (["power"], ["power", "enable"], ["power", "disable"], ["clock"]):
        text = kpdev(*args, "--help").stdout
        assert "--json" in text and "--board" in text, args
    assert "--watch" in kpdev("power", "--help").stdout


def test_cli_power_on_a_board_started_for_the_command():
    data = kpdev_json("power", "--board", "sim-mcu")
    assert data["board"] == "sim-mcu" and data["estimated"] is True
    assert data["events"][0]["power_mw"] == 50
    r = kpdev("power", "--board", "sim-mcu", "--count", "2", "--interval", "0.1")
    assert r.returncode == 0 and "ESTIMATED" in r.stdout, r.stderr
