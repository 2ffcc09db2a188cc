"""``kpdev fleet add|list|remove`` (named fleets), and what every command that runs on several
boards at once shares: telling a fleet from one board, the Rich view with one task a board,
and the tables of per-board results.

The work is in ``kpdev.host.fleet``; this module parses, calls it and renders."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from kpdev.host.cli.options import JsonOpt, emit, err, escape, out, sub_app
from kpdev.host.cli.render import progress_view
from kpdev.host.errors import BoardError, UsageError
from kpdev.host.fleet.runner import Outcome, Watch, run_all
from kpdev.host.fleet.select import Member, Selection, opened, selection
from kpdev.host.plain import human_bytes

fleet_app = sub_app(
    "Named fleets of boards: kpdev eval/deploy/profile/info/stats --fleet NAME run on all of "
    "them at once."
)


# -- one board or a fleet ------------------------------------------------------------------
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


def report_failures(outcomes: list[Outcome], what: str) -> None:
    """One line on stderr a failed member; BoardError when none finished."""
    for o in outcomes:
        if not o.ok:
            err.print(f"{o.member.name}: failed: {o.error}", style="red", markup=False)
    if outcomes and not any(o.ok for o in outcomes):
        raise BoardError(f"{what}: no board of the fleet finished (see the lines above)")


def outcome_rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """The --json list of a simple fleet command: member, status, reason, result."""
    return [dict(o.row(), result=o.result) for o in outcomes]


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
    from rich.table import Table

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


# -- deploy, info, stats, profile on a fleet -------------------------------------------------
def _catalog(member: Member, c):
    from kpdev.host.fleet.evaluate import catalog_board

    return catalog_board(member, c)


def deploy_fleet(path, sel: Selection, *, key, timeout: float, json_: bool, force: bool) -> None:
    """``kpdev deploy PACK.kp`` on every board at once: check, upload, test vectors, activate,
    each board on its own; one row a board."""
    from rich.table import Table

    from kpdev.host.packs.deploy import deploy_pack
    from kpdev.host.packs.pack import read_pack

    if path.suffix != ".kp":
        raise UsageError(
            "on a fleet, deploy takes a Knowledge Pack (.kp): its test vectors are checked on "
            "every board; deploy a bare model to one board at a time"
        )
    pack = read_pack(path)

    def work(c, member, progress):
        progress.status("deploying")
        plan = deploy_pack(c, pack, _catalog(member, c), force=force,
                           progress=lambda d, t: progress(d, t))  # fmt: skip
        plan["link"] = c.link_report()
        return plan

    outcomes = _run(sel, work, key=key, timeout=timeout, json_=json_, what="deploy")
    if json_:
        emit({"pack": pack.name, "members": outcome_rows(outcomes)})
        return
    t = Table(title=f"deploy {pack.name} {pack.manifest['version']}", title_justify="left")
    for col in ("board", "status", "vectors", "model bytes", "seconds"):
        t.add_column(col, justify="left" if col in ("board", "status") else "right")
    for o in outcomes:
        if not o.ok:
            t.add_row(*failed_row(o, 5))
            continue
        vec = o.result.get("vectors") or []
        good = sum(1 for v in vec if v["match"])
        t.add_row(
            escape(o.member.name),
            "[green]active[/green]" if o.result["active"] else "stored",
            f"{good}/{len(vec)} match" if vec else "-",
            human_bytes(o.result.get("model_bytes")),
            f"{o.seconds:.1f}",
        )
    out.print(t)


def info_fleet(sel: Selection, *, key, timeout: float, json_: bool) -> None:
    """``kpdev info`` of every board at once: one row a board."""
    from rich.table import Table

    outcomes = _run(sel, lambda c, m, p: c.info(), key=key, timeout=timeout, json_=json_,
                    what="info")  # fmt: skip
    if json_:
        emit({"members": outcome_rows(outcomes)})
        return
    t = Table(title="kpdev agents", title_justify="left")
    cols = ("board", "agent", "runtime", "backends", "heap free", "storage used", "uptime")
    for col in cols:
        t.add_column(col)
    for o in outcomes:
        if not o.ok:
            t.add_row(*failed_row(o, len(cols)))
            continue
        d = o.result
        mem = d.get("memory") or {}
        st = d.get("storage") or {}
        t.add_row(
            escape(
                f"{o.member.name} ({d.get('board')})"
                if d.get("board") != o.member.name
                else o.member.name
            ),  # fmt: skip
            f"{d.get('agent')}",
            f"{d.get('runtime')} {d.get('runtime_version')}",
            ", ".join(d.get("backends") or {}) or "-",
            human_bytes(mem.get("heap_free")) if mem.get("heap_free") is not None else "-",
            f"{human_bytes(st.get('used'))} of {human_bytes(st.get('quota'))}",
            f"{d.get('uptime_ms', 0) / 1000:.1f} s",
        )
    out.print(t)


def stats_fleet(sel: Selection, *, reset: bool, key, timeout: float, json_: bool) -> None:
    """``kpdev stats`` of every board at once: one row a board and model."""
    from rich.table import Table

    outcomes = _run(sel, lambda c, m, p: c.stats(reset), key=key, timeout=timeout, json_=json_,
                    what="stats")  # fmt: skip
    if json_:
        emit({"members": outcome_rows(outcomes)})
        return
    t = Table(title="agent statistics (latency: device clock, last 128)", title_justify="left")
    cols = ("board", "frames in/out", "errors", "model", "count", "p50 µs", "p99 µs", "uptime")
    for col in cols:
        t.add_column(col, justify="left" if col in ("board", "model") else "right")
    for o in outcomes:
        if not o.ok:
            t.add_row(*failed_row(o, len(cols)))
            continue
        d = o.result
        errors = sum((d.get("errors") or {}).values())
        models = d.get("models") or {"-": {}}
        for i, (name, m) in enumerate(models.items()):
            t.add_row(
                escape(o.member.name) if i == 0 else "",
                f"{d['frames_in']}/{d['frames_out']}" if i == 0 else "",
                str(errors) if i == 0 else "",
                escape(name),
                str(m.get("count", "-")),
                _f(m.get("p50_us")),
                _f(m.get("p99_us")),
                f"{d.get('uptime_ms', 0) / 1000:.1f} s" if i == 0 else "",
            )
    out.print(t)


def profile_fleet(pack_path, sel: Selection, *, runs: int, warmup: int, key, timeout: float,
                  json_: bool) -> None:  # fmt: skip
    """``kpdev profile`` on every board at once: each board's total and its largest stage."""
    from rich.table import Table

    from kpdev.host.evaluation.evaluate import profile_pack
    from kpdev.host.packs.deploy import deploy_pack
    from kpdev.host.packs.pack import read_pack

    pack = read_pack(pack_path) if pack_path else None

    def work(c, member, progress):
        if pack is not None:
            progress.status("deploying")
            deploy_pack(c, pack, _catalog(member, c))
        progress.status("profiling")
        return profile_pack(c, pack, runs, warmup)

    outcomes = _run(sel, work, key=key, timeout=timeout, json_=json_, what="profile")
    if json_:
        emit({"members": outcome_rows(outcomes)})
        return
    t = Table(title=f"profile: {runs} runs after {warmup} warm-up", title_justify="left")
    cols = ("board", "total median µs", "p10-p90 µs", "largest stage", "share", "noisy")
    for col in cols:
        t.add_column(col, justify="left" if col in ("board", "largest stage") else "right")
    for o in outcomes:
        if not o.ok:
            t.add_row(*failed_row(o, len(cols)))
            continue
        d = o.result
        tot = d["total"]
        top = max(d["stages"], key=lambda s: s["us"]) if d["stages"] else None
        t.add_row(
            escape(o.member.name),
            f"{tot['median']:.1f}",
            f"{tot['p10']:.1f}-{tot['p90']:.1f}",
            escape(top["name"]) if top else "-",
            f"{top['share']:.1f} %" if top else "-",
            "yes" if d["noisy"] else "no",
        )
    out.print(t)


def _f(v) -> str:
    return "-" if v is None else f"{v:.0f}"


def _run(sel: Selection, work, *, key, timeout: float, json_: bool, what: str) -> list[Outcome]:
    with fleet_run(sel, json_) as (members, watch):
        outcomes = run_all(members, work, key=key, timeout=timeout, watch=watch)
    report_failures(outcomes, what)
    return outcomes
