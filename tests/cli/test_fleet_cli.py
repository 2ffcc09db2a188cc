"""``kpdev fleet add|list|remove`` through the CLI: named fleets, and each member's state
without starting anything."""

from support.cli import cli, cli_json, kpdev, one_line_error


def test_add_list_remove_a_named_fleet(kpdev_home):
    made = cli_json("fleet", "add", "lab", "sim-mcu*2", "sim-linux", "sim-mcu-64k@/dev/nope-9")
    assert made["members"] == ["sim-mcu*2", "sim-linux", "sim-mcu-64k@/dev/nope-9"]
    listed = cli_json("fleet", "list")
    rows = listed["fleets"]["lab"]
    assert [r["member"] for r in rows] == ["sim-mcu", "sim-mcu#2", "sim-linux",
                                           "sim-mcu-64k@/dev/nope-9"]  # fmt: skip
    # listing starts no simulated board; the port is probed and does not answer
    assert rows[1]["kind"] == "simulated" and rows[1]["answering"] is False
    assert "not running" in rows[1]["state"]
    assert rows[3]["kind"] == "port" and rows[3]["answering"] is False
    assert "nope-9" in rows[3]["state"]
    assert "fleet lab" in cli("fleet", "list", "--no-probe").stdout
    cli_json("fleet", "remove", "lab")
    assert cli_json("fleet", "list")["fleets"] == {}


def test_fleet_errors_are_one_line(kpdev_home):
    r = kpdev("fleet", "add", "lab", "sim-mcu*0")
    assert "N goes from 1 to" in one_line_error(r, 2)
    r = kpdev("fleet", "remove", "nosuch")
    assert "no fleet named 'nosuch'" in one_line_error(r, 2)
    r = kpdev("fleet", "add", "two", "sim-mcu", "sim-mcu")
    assert "twice" in one_line_error(r, 2)
