"""``kpdev fleet add|list|remove`` (named fleets), and what every command that runs on several
boards at once shares: telling a fleet from one board, the Rich view with one task a board,
and the tables of per-board results.

The work is in ``kpdev.host.fleet``; this module parses, calls it and renders."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from kpdev.host.cli.options import JsonOpt, emit, err, out, sub_app
from kpdev.host.cli.render import progress_view
from kpdev.host.errors import BoardError
from kpdev.host.fleet.runner import Outcome, Watch, run_all
from kpdev.host.fleet.select import Member, Selection, opened, selection

fleet_app = sub_app(
    "Named fleets of boards: kpdev eval/deploy/profile/info/stats --fleet NAME run on all of "
    "them at once."
)


# -- one board or a fleet ------------------------------------------------------------------
def single(
    boards: list[str] | None, ports: list[str] | None, fleet: str | None, places: list[str] | None
) -> tuple[str | None, str | None] | None:
    """(board, port) when the command runs on one board, exactly as the one-board commands;
    None when the options select a fleet (several, sim-mcu*N, --fleet, --place)."""
    boards, ports = list(boards or []), list(ports or [])
    if fleet or places or len(boards) + len(ports) > 1:
        return None
    if boards and ("*" in boards[0] or "," in boards[0]):
        return None
    if ports and "," in ports[0]:
        return None
    return (boards[0] if boards else None, ports[0] if ports else None)


def selected(
    boards: list[str] | None, ports: list[str] | None, fleet: str | None, places: list[str] | None
) -> Selection:
    """The fleet the options select."""
    return selection(boards, ports, places, fleet)


class RichWatch(Watch):
    """One Rich progress task a board, on stderr (off under --json or when stderr is no
    terminal); failures are also printed as one line each once the view is gone."""

    def __init__(self, members: list[Member], enabled: bool, total: int | None = None):
        self.view = progress_view(enabled)
        self._lock = threading.Lock()
        self.tasks = {
            m.name: self.view.add_task(f"{escape(m.name)}: waiting", total=total) for m in members
        }

    def _set(self, member: Member, **kw) -> None:
        with self._lock:
            self.view.update(self.tasks[member.name], **kw)

    def status(self, member: Member, text: str) -> None:
        self._set(member, description=f"{escape(member.name)}: {escape(text)}")

    def progress(self, member: Member, done: int, total: int | None) -> None:
        self._set(member, completed=done, total=total)

    def failed(self, member: Member, reason: str) -> None:
        self._set(member, description=f"[red]{escape(member.name)}: failed[/red]")

    def finished(self, member: Member) -> None:
        self._set(member, description=f"[green]{escape(member.name)}: done[/green]")


@contextmanager
def fleet_run(sel: Selection, json_: bool, total: int | None = None) -> Iterator[tuple]:
    """The members (labgrid places acquired until the end) and the Rich view over them."""
    with opened(sel) as members:
        watch = RichWatch(members, not json_, total)
        with watch.view:
            yield members, watch


def run_simple(
    sel: Selection,
    work: Callable,
    *,
    key: str | None,
    timeout: float,
    json_: bool,
    what: str,
) -> list[Outcome]:
    """``work(client, member, progress)`` on every member, with the view; BoardError when no
    member finished."""
    with fleet_run(sel, json_) as (members, watch):
        outcomes = run_all(members, work, key=key, timeout=timeout, watch=watch)
    report_failures(outcomes, what)
    return outcomes


def report_failures(outcomes: list[Outcome], what: str) -> None:
    """One line on stderr a failed member; BoardError when none finished."""
    for o in outcomes:
        if not o.ok:
            err.print(f"{o.member.name}: failed: {o.error}", style="red", markup=False)
    if outcomes and not any(o.ok for o in outcomes):
        raise BoardError(f"{what}: no board of the fleet finished (see the lines above)")


def outcome_rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """The --json list of a simple fleet command: member, status, reason, result."""
    return [
        {
            "member": o.member.name,
            "board": o.member.board,
            "port": o.member.port,
            "place": o.member.place,
            "status": "ok" if o.ok else "failed",
            "reason": o.error,
            "seconds": o.seconds,
            "result": o.result,
        }
        for o in outcomes
    ]


def failed_row(o: Outcome, columns: int) -> list[str]:
    return [o.member.name, "[red]failed[/red]", escape(o.error or "")] + [""] * (columns - 3)


# -- kpdev fleet add|list|remove -------------------------------------------------------------
@fleet_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The fleet's name, e.g. lab-picos.")],
    members: Annotated[
        list[str],
        typer.Argument(
            help="Members: catalog boards (sim-mcu), instances (sim-mcu*3 or sim-mcu#2), ports "
            "(/dev/ttyACM0, rfc2217://HOST:PORT; BOARD@PORT names the board behind one), labgrid "
            "places (place:PATTERN).",
            show_default=False,
        ),
    ],
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite a fleet of that name.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Name a fleet of boards, kept in fleets.json beside your config file."""
    from kpdev.host.fleet.store import add_fleet

    path = add_fleet(name, members, replace=replace)
    if json_:
        emit({"fleet": name, "members": members, "path": str(path)})
        return
    out.print(f"fleet {name}: {' '.join(members)} (saved in {path})", markup=False)


@fleet_app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The fleet to forget.")],
    json_: JsonOpt = False,
) -> None:
    """Forget a named fleet (its boards are not touched)."""
    from kpdev.host.fleet.store import remove_fleet

    path = remove_fleet(name)
    if json_:
        emit({"removed": name, "path": str(path)})
        return
    out.print(f"fleet {name} removed from {path}", markup=False)


@fleet_app.command("list")
def list_(
    name: Annotated[
        str | None, typer.Argument(help="Only this fleet; default: every named fleet.")
    ] = None,
    probe: Annotated[
        bool,
        typer.Option(
            "--probe/--no-probe",
            help="Say HELLO to each port member to tell whether its agent answers (2 s each, "
            "all at once). Simulated boards are never started by listing them.",
        ),
    ] = True,
    json_: JsonOpt = False,
) -> None:
    """The named fleets and the state of each member: board type, agent answering or not (for a
    simulated board: its background agent running), and for labgrid places free or acquired by
    whom."""
    from kpdev.host.fleet.status import member_states
    from kpdev.host.fleet.store import fleets_path, get_fleet, read_fleets

    fleets = {name: get_fleet(name)} if name else read_fleets()
    data = {f: member_states(ms, probe=probe) for f, ms in fleets.items()}
    if json_:
        emit({"path": str(fleets_path()), "fleets": data})
        return
    if not data:
        out.print(
            f"no named fleets yet ({fleets_path()}); add one: kpdev fleet add lab sim-mcu*2",
            markup=False,
        )
        return
    for fname, rows in data.items():
        t = Table(title=f"fleet {fname}", title_justify="left")
        for col in ("member", "board", "kind", "state"):
            t.add_column(col)
        for r in rows:
            t.add_row(
                escape(r["member"]), escape(r.get("board") or "-"), r["kind"], escape(r["state"])
            )
        out.print(t)
