"""Which boards a fleet command runs on: members parsed from what the user typed.

A member is written as one of:

- a catalog board id, ``sim-mcu``; an instance of a simulated board, ``sim-mcu#2`` (its own
  agent process and its own state directory); ``sim-mcu*3`` for instances 1-3 at once;
- a port (anything with ``/`` or ``://``, or written ``port:URL``): ``/dev/ttyACM0``,
  ``rfc2217://lab1:4001``; ``BOARD@PORT`` names the catalog board behind it;
- a labgrid place pattern, ``place:lab-pico-*`` (resolved and acquired through
  ``kpdev.host.fleet.labgrid``, imported only when a selection names places).

``Selection`` keeps the members that need nothing more and the place patterns; ``opened``
turns it into the final list of ``Member``, acquiring places for as long as the run lasts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from kpdev.host.boards.catalog import get_board, instance_id, split_instance
from kpdev.host.errors import UsageError

_TIMES = re.compile(r"^(?P<board>[^*]+)\*(?P<n>[0-9]+)$")
MAX_INSTANCES = 64


@dataclass(frozen=True)
class Member:
    """One board of a fleet, ready to open: a catalog board (simulated ones start in the
    background) or a port, with the labgrid place it came from."""

    name: str  # how the run names it: sim-mcu#2, /dev/ttyACM0, place lab-1
    board: str | None = None  # catalog id (an instance id for simulated instances)
    port: str | None = None  # link URL; None: the board's own (a simulated board's server)
    place: str | None = None  # the labgrid place it was acquired as


@dataclass
class Selection:
    """Members as typed, in order, and the labgrid place patterns still to resolve."""

    members: list[Member] = field(default_factory=list)
    places: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.members and not self.places

    def add(self, text: str) -> None:
        """Add one member as written (see the module docstring)."""
        text = text.strip()
        if not text:
            raise UsageError("an empty fleet member: name a board, a port or place:PATTERN")
        if text.startswith("place:"):
            pattern = text[len("place:") :]
            if not pattern:
                raise UsageError(f"{text!r}: write place:PATTERN, e.g. place:lab-pico-*")
            self.places.append(pattern)
            return
        if text.startswith("port:"):
            self.members.append(port_member(text[len("port:") :]))
            return
        if "@" in text:
            board, _, port = text.partition("@")
            get_board(board)  # a typo is told now, not after the fleet started
            self.members.append(Member(f"{board}@{port}", board=board, port=port))
            return
        if "/" in text or "://" in text:
            self.members.append(port_member(text))
            return
        for bid in expand_board(text):
            self.members.append(Member(bid, board=bid))


def port_member(url: str) -> Member:
    if not url:
        raise UsageError("port: needs a link, e.g. port:/dev/ttyACM0 or port:rfc2217://HOST:PORT")
    return Member(url, port=url)


def expand_board(text: str) -> list[str]:
    """``sim-mcu*3`` -> [sim-mcu, sim-mcu#2, sim-mcu#3]; a board id -> [it] (checked against
    the catalog)."""
    m = _TIMES.match(text)
    if not m:
        get_board(text)
        return [text]
    bid, n = m.group("board"), int(m.group("n"))
    if split_instance(bid)[1] != 1:
        raise UsageError(f"{text!r}: write BOARD*N with a plain board id, e.g. sim-mcu*3")
    if not 1 <= n <= MAX_INSTANCES:
        raise UsageError(f"{text!r}: N goes from 1 to {MAX_INSTANCES}")
    board = get_board(bid)
    if not board.simulated and n > 1:
        raise UsageError(
            f"{text!r}: only simulated boards have instances; list each real {bid} by its port "
            f"({bid}@/dev/ttyACM0 {bid}@/dev/ttyACM1)"
        )
    return [instance_id(bid, i) for i in range(1, n + 1)]


def selection(
    boards: list[str] | None = None,
    ports: list[str] | None = None,
    places: list[str] | None = None,
    fleet: str | None = None,
) -> Selection:
    """The members of a named ``fleet`` (from the user's fleets file), then ``--board``,
    ``--port`` and ``--place`` values, in that order; each value may list several members
    separated by commas."""
    sel = Selection()
    if fleet:
        from kpdev.host.fleet.store import get_fleet

        for item in get_fleet(fleet):
            sel.add(item)
    for value in boards or []:
        for item in _split(value):
            if "/" in item or "://" in item:
                raise UsageError(f"--board {item!r} looks like a port: pass it with --port")
            sel.add(item)
    for value in ports or []:
        for item in _split(value):
            sel.members.append(port_member(item))
    for value in places or []:
        sel.places += _split(value)
    return sel


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def check_unique(members: list[Member]) -> list[Member]:
    """``members`` unchanged; UsageError when one board or port comes twice (two agents on one
    state directory, or two clients on one serial port, would fight)."""
    seen: dict[str, str] = {}
    for m in members:
        key = f"port {m.port}" if m.port else f"board {m.board}"
        if key in seen:
            raise UsageError(
                f"{key} is in the fleet twice ({seen[key]} and {m.name}); for several "
                "simulated boards of one kind use BOARD*N (sim-mcu*3)"
            )
        seen[key] = m.name
    return members


@contextmanager
def opened(sel: Selection, coordinator: str | None = None) -> Iterator[list[Member]]:
    """The members of ``sel``, with its labgrid places acquired (all or none) for the time of
    the ``with`` and released after it, however it ends (errors, Ctrl-C)."""
    if sel.empty:
        raise UsageError("no boards selected: give --board, --port, --fleet or --place")
    if not sel.places:
        yield check_unique(list(sel.members))
        return
    try:
        from kpdev.host.fleet import labgrid
    except ImportError as e:
        raise UsageError(f"--place needs labgrid support, which cannot load: {e}") from None
    where = labgrid.coordinator(coordinator)
    with labgrid.acquired(sel.places, where) as held:
        members = list(sel.members)
        for p in held:
            if not p.url:
                raise UsageError(
                    f"labgrid place {p.name} has no serial port (NetworkSerialPort) to reach "
                    "its board through"
                )
            members.append(Member(f"place {p.name}", board=p.board, port=p.url, place=p.name))
        yield check_unique(members)
