"""Fleet selection, named fleets and the shard queue: the pure logic, no board started."""

import json
import threading

import pytest

from kpdev.host.boards.catalog import get_board
from kpdev.host.boards.sim import state_dir
from kpdev.host.boards.simserver import socket_path
from kpdev.host.cli.options import single
from kpdev.host.errors import BoardError, UsageError
from kpdev.host.fleet.runner import ShardQueue
from kpdev.host.fleet.select import Member, Selection, check_unique, expand_board, selection
from kpdev.host.fleet.store import add_fleet, fleets_path, get_fleet, read_fleets, remove_fleet
from kpdev.protocol.errors import KpdevError


def test_instances_are_boards_of_their_own():
    one, two = get_board("sim-mcu"), get_board("sim-mcu#2")
    assert two.id == "sim-mcu#2" and two.ram_kb == one.ram_kb and two.simulated
    assert get_board("sim-mcu#1") == one
    assert state_dir(one) != state_dir(two) and socket_path(one) != socket_path(two)
    with pytest.raises(BoardError, match="only simulated boards have instances"):
        get_board("rpi-pico#2")
    for bad in ("sim-mcu#0", "sim-mcu#x", "sim-mcu#"):
        with pytest.raises(BoardError, match="ID#N"):
            get_board(bad)


def test_board_times_n_expands_to_instances():
    assert expand_board("sim-mcu*3") == ["sim-mcu", "sim-mcu#2", "sim-mcu#3"]
    assert expand_board("sim-linux") == ["sim-linux"]
    assert expand_board("rpi-pico*1") == ["rpi-pico"]
    for bad, why in (
        ("rpi-pico*2", "only simulated"),
        ("sim-mcu*0", "1 to"),
        ("sim-mcu#2*2", "plain board id"),
        ("nosuch*2", "unknown board"),
    ):
        with pytest.raises(KpdevError, match=why):
            expand_board(bad)


def test_selection_reads_boards_ports_and_places():
    sel = selection(["sim-mcu*2,sim-linux"], ["/dev/ttyACM0"], ["lab-*"])
    assert [m.name for m in sel.members] == ["sim-mcu", "sim-mcu#2", "sim-linux", "/dev/ttyACM0"]
    assert sel.members[3] == Member("/dev/ttyACM0", port="/dev/ttyACM0")
    assert sel.places == ["lab-*"]
    s = Selection()
    for text in ("rpi-pico@/dev/ttyACM1", "rfc2217://lab:4001", "port:COM3", "place:pico-*"):
        s.add(text)
    assert s.members[0] == Member("rpi-pico@/dev/ttyACM1", board="rpi-pico", port="/dev/ttyACM1")
    assert [m.port for m in s.members[1:]] == ["rfc2217://lab:4001", "COM3"]
    assert s.places == ["pico-*"]
    with pytest.raises(UsageError, match="looks like a port"):
        selection(["/dev/ttyACM0"])
    with pytest.raises(UsageError, match="twice"):
        check_unique(selection(["sim-mcu", "sim-mcu*2"]).members)


def test_one_board_runs_as_before():
    assert single(["sim-mcu"], [], None, None) == ("sim-mcu", None)
    assert single([], ["/dev/x"], None, None) == (None, "/dev/x")
    assert single([], [], None, None) == (None, None)
    for fleet in (
        (["sim-mcu*2"], [], None, None),
        (["a", "b"], [], None, None),
        ([], [], "lab", None),
        ([], [], None, ["p"]),
        (["a,b"], [], None, None),
    ):
        assert single(*fleet) is None


def test_named_fleets_are_kept_beside_the_config(kpdev_home):
    assert read_fleets() == {}
    path = add_fleet("lab", ["sim-mcu*2", "sim-linux", "place:pico-*"])
    assert path == fleets_path() and path.parent == (kpdev_home / "config.toml").parent
    assert json.loads(path.read_text())["fleets"]["lab"] == [
        "sim-mcu*2",
        "sim-linux",
        "place:pico-*",
    ]
    assert get_fleet("lab")[0] == "sim-mcu*2"
    assert [m.name for m in selection(fleet="lab").members] == [
        "sim-mcu",
        "sim-mcu#2",
        "sim-linux",
    ]
    with pytest.raises(UsageError, match="exists"):
        add_fleet("lab", ["sim-linux"])
    add_fleet("lab", ["sim-linux"], replace=True)
    assert get_fleet("lab") == ["sim-linux"]
    for name, members, why in (
        ("bad name", ["sim-mcu"], "fleet name"),
        ("x", [], "at least one"),
        ("x", ["nosuch"], "unknown board"),
    ):
        with pytest.raises(KpdevError, match=why):
            add_fleet(name, members)
    remove_fleet("lab")
    with pytest.raises(UsageError, match="no fleet named 'lab'"):
        get_fleet("lab")


def test_shard_queue_gives_a_failed_chunk_to_another_and_loses_none():
    q = ShardQueue(10, 3)
    a = q.take("a")
    b = q.take("b")
    assert (a, b) == ((0, 3), (3, 6))
    q.give_back(a)  # a's board failed
    assert q.take("b") == (0, 3)  # handed on first
    q.finish(b)
    q.finish((0, 3))
    rest = [q.take("b"), q.take("b")]
    assert rest == [(6, 9), (9, 10)]
    assert q.missing() == [(9, 10), (6, 9)][::-1]
    for span in rest:
        q.finish(span)
    assert q.take("b") is None and q.missing() == [] and q.done_count() == 10
    assert q.requeued == 1


def test_shard_queue_waits_for_a_held_chunk_that_may_come_back():
    q = ShardQueue(4, 4)
    span = q.take("slow")
    got = []
    t = threading.Thread(target=lambda: got.append(q.take("fast")))
    t.start()
    t.join(0.3)
    assert t.is_alive()  # nothing queued, but a chunk is held: wait
    q.give_back(span)
    t.join(5)
    assert got == [(0, 4)]


def test_places_are_acquired_for_the_run_and_released_after(monkeypatch):
    # A stand-in for kpdev.host.fleet.labgrid (the labgrid branch's module, same interface), so
    # the selection's part is tested on its own; tests/e2e/test_labgrid.py runs the real one.
    import contextlib
    import sys
    import types
    from dataclasses import dataclass

    import kpdev.host.fleet as fleet_pkg
    from kpdev.host.fleet.select import opened

    @dataclass(frozen=True)
    class Place:
        name: str
        url: str | None
        board: str | None
        owner: str | None
        speed: int | None = None

    log = []

    @contextlib.contextmanager
    def acquired(patterns, coordinator):
        log.append(("acquire", tuple(patterns), coordinator))
        try:
            yield [Place("lab-1", "rfc2217://h:4001", "sim-mcu", "me"),
                   Place("lab-2", "rfc2217://h:4002", None, "me")]  # fmt: skip
        finally:
            log.append(("release",))

    fake = types.SimpleNamespace(coordinator=lambda explicit=None: "h:20408", acquired=acquired)
    monkeypatch.setitem(sys.modules, "kpdev.host.fleet.labgrid", fake)
    monkeypatch.setattr(fleet_pkg, "labgrid", fake, raising=False)
    sel = selection(["sim-linux"], places=["lab-*"])
    with opened(sel) as members:
        assert log == [("acquire", ("lab-*",), "h:20408")]
        assert members[0] == Member("sim-linux", board="sim-linux")
        assert members[1] == Member("place lab-1", board="sim-mcu", port="rfc2217://h:4001",
                                    place="lab-1")  # fmt: skip
        assert members[2].board is None and members[2].port == "rfc2217://h:4002"
    assert log[-1] == ("release",)
    log.clear()
    with pytest.raises(KeyboardInterrupt), opened(sel):
        raise KeyboardInterrupt
    assert log[-1] == ("release",)
