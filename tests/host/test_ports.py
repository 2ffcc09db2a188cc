"""kpdev ports: serial ports, the catalog board each one matches (by-id pattern or USB id) and
whether a kpdev agent answers there, on real ptys (comports() may list nothing here)."""

import json
import os
import tty

import pytest
from serial.tools.list_ports_common import ListPortInfo
from support.cli import kpdev, serve_sim

from kpdev.host.boards.catalog import load_boards
from kpdev.host.link.ports import describe_ports, matching_boards, port_for, probe, usb_id

KEY = "11" * 32


@pytest.fixture(scope="module")
def served():
    """sim-mcu served on a pty by ``kpdev sim``: (port, process)."""
    proc, port = serve_sim("sim-mcu", "--listen", "pty")
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def silent_pty():
    """A pty with nothing answering behind it (we hold its other side and never reply)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    yield os.ttyname(slave)
    os.close(slave)
    os.close(master)


def usb_port(device, vid, pid):
    """A port as pyserial describes a USB CDC device."""
    port = ListPortInfo(device, skip_link_detection=True)
    port.vid, port.pid, port.serial_number = vid, pid, "E6614C311B7A3A2D"
    port.description = "Board in FS mode"
    return port


def test_a_served_simulated_board_answers(served, silent_pty):
    records = describe_ports([port_for(served), port_for(silent_pty)], timeout=1.0)
    agent, silent = records
    assert agent["device"] == served and agent["probe"]["agent"] is True
    assert agent["probe"]["board"] == "sim-mcu" and agent["probe"]["runtime"] == "micropython"
    assert agent["boards"] == [] and agent["usb"] is None  # a pty matches no catalog board
    assert silent["probe"]["agent"] is False
    assert "no kpdev agent answered" in silent["probe"]["error"]
    assert "probe" not in describe_ports([port_for(served)], probe_agents=False)[0]


def test_a_port_that_cannot_be_opened_is_reported_not_raised(tmp_path):
    found = probe(str(tmp_path / "ttyNOPE"), timeout=0.5)
    assert found["agent"] is False and "cannot open" in found["error"]


def test_boards_match_by_usb_id_and_by_port_pattern(tmp_path, silent_pty):
    catalog = load_boards()
    pico = usb_port("/dev/ttyACM7", 0x2E8A, 0x0005)
    assert usb_id(pico) == "2E8A:0005"
    assert matching_boards(pico, catalog) == [{"board": "rpi-pico", "by": "usb"}]
    assert matching_boards(usb_port("/dev/ttyACM8", 0x0483, 0x374B), catalog) == [
        {"board": "stm32f746g-disco", "by": "usb"}
    ]
    assert matching_boards(usb_port("/dev/ttyUSB0", 0x10C4, 0xEA60), catalog) == []
    assert matching_boards(port_for("/dev/ttyS0"), catalog) == []  # no USB id, no pattern

    # A by-id style link, and a board whose port pattern names it.
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / "usb-Bench_Sensor_Hub_0042-if00").symlink_to(silent_pty)
    catalog["hub"] = catalog["rpi-pico"].__class__(
        **dict(vars(catalog["rpi-pico"]), id="hub", usb=(),
               link={"type": "serial", "port": str(by_id / "usb-Bench_Sensor_Hub_*")})
    )  # fmt: skip
    assert matching_boards(port_for(silent_pty), catalog) == [{"board": "hub", "by": "port"}]


def test_kpdev_ports_on_given_ports(served, silent_pty):
    r = kpdev("ports", served, silent_pty, "--timeout", "1", "--json")
    assert r.returncode == 0, r.stderr
    records = {x["device"]: x for x in json.loads(r.stdout)}
    assert records[served]["probe"]["agent"] and records[served]["probe"]["board"] == "sim-mcu"
    assert records[silent_pty]["probe"]["agent"] is False
    r = kpdev("ports", served, "--timeout", "1")
    assert r.returncode == 0 and served in r.stdout and "sim-mcu" in r.stdout
    r = kpdev("ports", served, "--no-probe")
    assert r.returncode == 0 and "not probed" in r.stdout


def test_kpdev_ports_lists_this_machines_ports_as_json():
    r = kpdev("ports", "--no-probe", "--json")
    assert r.returncode == 0, r.stderr
    records = json.loads(r.stdout)
    assert isinstance(records, list)
    from serial.tools.list_ports import comports

    assert sorted(x["device"] for x in records) == sorted(p.device for p in comports())


def test_an_agent_that_needs_a_key():
    proc, port = serve_sim("sim-linux", "--listen", "pty", "--key", KEY)
    try:
        found = probe(port, timeout=1.0)  # an agent, but one that will not talk without it
        assert found["agent"] is True and "--key" in found["error"] and "board" not in found
        found = probe(port, timeout=5.0, key=bytes.fromhex(KEY))
        assert found["agent"] is True and found["auth"] is True
        r = kpdev("ports", port, "--key", KEY, "--json")
        assert json.loads(r.stdout)[0]["probe"]["auth"] is True, r.stderr
    finally:
        proc.terminate()
        proc.wait(10)
