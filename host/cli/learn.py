"""``kpdev learn``: edge-learning sessions on the device, and its learned state kept or exported.

``kpdev learn run PACK ...`` runs a session; ``kpdev learn info|save|reset|enable|disable|export``
work on what the device's learner holds.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kpdev.host.atomic import refuse_existing
from kpdev.host.cli.options import (
    BoardOpt,
    DatasetOpt,
    ForceOpt,
    FractionOpt,
    JsonOpt,
    KeyOpt,
    PortOpt,
    SeedOpt,
    TimeoutOpt,
    WindowOpt,
    emit,
    err,
    out,
    parse_window,
    session,
    sub_app,
)
from kpdev.host.errors import UsageError
from kpdev.host.plain import human_bytes

if TYPE_CHECKING:  # imported where used, so that commands start fast
    from rich.table import Table

learn_app = sub_app(
    "Edge learning on the device: `kpdev learn run PACK --dataset D --shots K` teaches the "
    "pack's learner K labelled samples per class over the link, scores it on held-out data "
    "after each round and writes a session log and a learning curve; `save` keeps what it "
    "learned across reboots, `reset` forgets it, `export` writes it into a new pack version. "
    "The pack needs a learner (kpdev pack build --learner memory|akida).",
    short_help="Edge-learning sessions: teach the device, keep it, export it as a pack.",
)


def _labels(text: str | None, option: str) -> list[str] | None:
    if text is None:
        return None
    labels = [x.strip() for x in text.split(",") if x.strip()]
    if not labels:
        raise UsageError(f"{option} {text!r}: give class labels separated by commas")
    if len(set(labels)) != len(labels):
        raise UsageError(f"{option} {text!r}: a class is named twice")
    return labels


def _record_path(board: str | None, port: str | None) -> Path:
    from kpdev.host.boards.sim import home

    where = (port or board or "default").replace("/", "_").replace(":", "_")
    return home() / "learn" / f"{where}.json"


def _round_table(rows: list[dict[str, Any]], scored: list[str]) -> Table:
    from rich.table import Table

    table = Table(title="learning curve (held-out accuracy)", title_justify="left")
    table.add_column("round", justify="right")
    table.add_column("shots/class", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("before learning", justify="right")
    table.add_column("ms/shot (host clock)", justify="right")
    for label in scored:
        table.add_column(label, justify="right")
    for row in rows:
        pre = row.get("prequential_accuracy")
        ms = row.get("learn_ms_per_sample")
        table.add_row(
            str(row["round"]),
            str(row["shots_per_class"]),
            f"[bold]{row['accuracy']:.3f}[/bold]",
            "-" if pre is None else f"{pre:.3f}",
            "-" if ms is None else f"{ms:.2f}",
            *[
                "-" if row["per_class"].get(c) is None else f"{row['per_class'][c]:.2f}"
                for c in scored
            ],
        )
    return table


@learn_app.command("run")
def run(
    pack_path: Annotated[
        Path,
        typer.Argument(metavar="PACK.kp", help="A pack with a learner.", show_default=False),
    ],
    dataset: DatasetOpt,
    shots: Annotated[
        int, typer.Option("--shots", "-k", help="Labelled samples per class per round.", min=1)
    ] = 5,
    rounds: Annotated[
        int,
        typer.Option("--rounds", "-r", help="Rounds; each teaches --shots more per class.", min=1),
    ] = 1,
    classes: Annotated[
        str | None,
        typer.Option(
            "--classes",
            "-c",
            metavar="A,B,...",
            help="Classes to teach and score (the learner must know them); default: every "
            "class of the learner the dataset has (or only --new-classes, when given).",
            show_default=False,
        ),
    ] = None,
    new_classes: Annotated[
        str | None,
        typer.Option(
            "--new-classes",
            metavar="A,B,...",
            help="Dataset classes the pack was not built with: added to the learner, then "
            "taught (class-incremental learning); the old classes stay scored.",
            show_default=False,
        ),
    ] = None,
    seed: SeedOpt = 0,
    test_fraction: FractionOpt = None,
    window: WindowOpt = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for session.json and learning_curve.png; default "
            "kpdev-learn/SESSION here.",
            show_default=False,
        ),
    ] = None,
    save: Annotated[
        bool,
        typer.Option(
            "--save/--no-save",
            help="Save the learned state on the device at the end (kept across reboots); "
            "without it, what was learned stays in the device's RAM, as on any board.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Overwrite session.json when --out already holds one."),
    ] = False,
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Run an edge-learning session: teach the device few shots, score each round.

    Deploys the pack first when the device runs another one.
    Round 0 scores the learner as it starts; each round then
    sends --shots new labelled samples per class (drawn with
    --seed from the dataset's train side), which the device
    learns one batch at a time, predicting each before it
    learns it; then the device classifies the held-out side.
    The live table shows the curve; the session log (JSON) and
    the plot go to --out. What was learned stays in the device's
    RAM until `kpdev learn save` or --save, on a simulated
    board as on a real one.

    Examples:

      kpdev learn run learn.kp -b sim-mcu -d host/demo/basicmotions.npz -k 5

      kpdev learn run two.kp -b sim-linux -d data.npz \\
        --new-classes Running,Badminton -k 3 -r 3
    """
    from rich.console import Group
    from rich.live import Live

    from kpdev.host.cli.render import progress_bar, progress_view
    from kpdev.host.client.session import resolve_board
    from kpdev.host.datasets import load_dataset
    from kpdev.host.learning.session import (
        ensure_active,
        new_session_id,
        run_session,
        write_session,
    )
    from kpdev.host.packs.pack import read_pack

    if out_dir is not None:
        refuse_existing(out_dir / "session.json", force, "session log")
    pack = read_pack(pack_path)
    if pack.learning is None:
        raise UsageError(
            f"{pack_path}: the pack has no learner; build one with kpdev pack build --learner "
            "memory|akida"
        )
    pipeline = pack.manifest.get("pipeline")
    cut = parse_window(window)
    if cut is None and pipeline:
        cut = (pipeline["window"]["size"], pipeline["window"]["stride"])
    data = load_dataset(dataset, window=cut)
    session_id = new_session_id()
    plan = {
        "shots": shots,
        "rounds": rounds,
        "classes": _labels(classes, "--classes"),
        "new_classes": _labels(new_classes, "--new-classes"),
        "seed": seed,
        "test_fraction": test_fraction,
    }
    b = resolve_board(board, port)
    rows: list[dict[str, Any]] = []
    bar = progress_view(not json_)
    task = bar.add_task("learning", total=None)
    live_on = not json_ and err.is_terminal

    def view() -> Group:
        scored = list(rows[0]["per_class"]) if rows else []
        return Group(_round_table(rows, scored), bar)

    with session(board, port, key, timeout) as c:
        with progress_bar(not json_, f"deploy {pack.name}", unit="bytes") as deploy_progress:
            ensure_active(c, pack, data, board=b, progress=deploy_progress, **plan)
        live = Live(view(), console=err, refresh_per_second=8, transient=True) if live_on else None

        def on_round(row: dict[str, Any]) -> None:
            rows.append(row)
            if live is not None:
                live.update(view())

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            if live is not None:
                live.update(view())

        with live or contextlib.nullcontext():
            log = run_session(
                c,
                pack,
                data,
                **plan,
                session=session_id,
                on_round=on_round,
                progress=progress,
                save=save,
            )
    folder = out_dir or Path("kpdev-learn") / session_id
    paths = write_session(log, folder)
    record = _record_path(board, port)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(
        json.dumps(
            {
                "pack": str(pack_path.resolve()),
                "name": pack.name,
                "version": pack.manifest["version"],
                "session": session_id,
            }
        )
    )
    if json_:
        emit({"log": log, "files": {k: str(v) for k, v in paths.items()}})
        return
    out.print(_round_table(log["rows"], log["scored"]))
    first, last = log["rows"][0], log["rows"][-1]
    out.print(
        f"session [bold]{session_id}[/bold]: {log['learner']} learner on {log['board']} went from "
        f"{first['accuracy']:.3f} to [bold]{last['accuracy']:.3f}[/bold] with "
        f"{last['shots_per_class']} shots per class"
        + (f", new classes {', '.join(log['new_classes'])}" if log["new_classes"] else "")
    )
    where = "" if out_dir is not None else " (choose another folder with --out)"
    out.print(f"  files in {folder.resolve()}{where}:")
    for what, path in paths.items():
        out.print(f"  {what}: {path}")
    if save:
        out.print(f"  saved on the device ({human_bytes(log['saved']['bytes'])})")
    else:
        out.print("  not saved on the device: kpdev learn save keeps it across reboots")


def _print_info(info: dict[str, Any]) -> None:
    state = info.get("state") or {}
    out.print(
        f"[bold]{info['learner']}[/bold] learner of {info['pack'][0]} {info['pack'][1]}: "
        f"{len(info['labels'])} classes, {info['samples']} samples learned"
        f" ({'enabled' if info['enabled'] else 'disabled'})"
    )
    counts = state.get("counts")
    for i, label in enumerate(info["labels"]):
        held = f"  {counts[i]} held" if counts else ""
        out.print(f"  {i:>2} {label}{held}")
    saved = "saved" if info["saved"] and not info["dirty"] else "not saved"
    if info["saved"] and info["dirty"]:
        saved = "changed since the last save"
    start = "its saved state" if info["restored"] == "saved" else "the pack"
    out.print(f"  state: {saved}; started from {start}; last session {info['session'] or '-'}")
    if info.get("ignored"):
        out.print(f"  [yellow]{info['ignored']}[/yellow]")


@learn_app.command("info")
def info(
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Show the device's learner: its classes, samples learned, saved or not."""
    with session(board, port, key, timeout) as c:
        result = c.learn_info()
    if json_:
        emit(result)
        return
    _print_info(result)


@learn_app.command("save")
def save_(
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Save what the device learned: it survives reboots.

    The save is atomic: one cut short keeps the previous save.
    """
    with session(board, port, key, timeout) as c:
        result = c.learn_save()
    if json_:
        emit(result)
        return
    out.print(
        f"saved the learner state on the device: {human_bytes(result['bytes'])}, "
        f"{result['samples']} samples, sha256 {result['sha256'][:12]}..."
    )


@learn_app.command("reset")
def reset(
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Forget what the device learned, in RAM and saved: back to the pack's own learner."""
    with session(board, port, key, timeout) as c:
        result = c.learn_reset()
    if json_:
        emit(result)
        return
    out.print("the learner is back to the pack's own state; the saved state is removed")
    _print_info(result)


def _enable(on: bool, board, port, key, timeout, json_) -> None:
    with session(board, port, key, timeout) as c:
        result = c.learn_enable(on)
    if json_:
        emit(result)
        return
    out.print(f"learning {'enabled' if result['enabled'] else 'disabled'} on the device")


@learn_app.command("enable")
def enable(
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Let the device learn again (LEARN requests are taken)."""
    _enable(True, board, port, key, timeout, json_)


@learn_app.command("disable")
def disable(
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Stop the device learning; it keeps classifying with what it knows."""
    _enable(False, board, port, key, timeout, json_)


@learn_app.command("export")
def export(
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="PACK.kp",
            help="The new pack to write; default NAME-learned.kp here.",
            show_default=False,
        ),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(
            "--pack",
            metavar="PACK.kp",
            help="The pack the device runs; default: the one of the last `kpdev learn` on "
            "this board.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option(
            "--version",
            help="Version of the new pack; default VERSION+learned.SESSION.",
            show_default=False,
        ),
    ] = None,
    force: ForceOpt = False,
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Read the device's learned state back into a new pack version.

    The new pack holds what the device learned (the memory
    learner's samples, or the Akida model with its learned
    weights) and records in its manifest (learning.learned) that
    it was learned on this board and in which session. It
    predicts as the device does: on the host (kpdev recognize
    --platform host) and on any board it is deployed to.
    """
    from kpdev.host.cli.render import progress_bar
    from kpdev.host.learning.session import export_pack
    from kpdev.host.packs.pack import read_pack

    if source is None:
        record = _record_path(board, port)
        if not record.exists():
            raise UsageError(
                "no pack recorded for this board: give the pack the device runs with --pack"
            )
        source = Path(json.loads(record.read_text())["pack"])
    pack = read_pack(source)
    if pack.learning is None:
        raise UsageError(f"{source}: the pack has no learner; nothing to export")
    target = out_path or Path(f"{pack.name}-learned.kp")
    refuse_existing(target, force, "pack")
    with session(board, port, key, timeout) as c:
        with progress_bar(not json_, "export", unit="bytes") as progress:
            data = c.learn_export(progress)
        where = c.device.get("board")
    path, learned = export_pack(pack, data, target, board=where, version=version)
    new = read_pack(path)
    if json_:
        emit({"path": str(path), "version": new.manifest["version"], "learned": learned})
        return
    out.print(
        f"wrote [bold]{path}[/bold]: {new.name} {new.manifest['version']}, learned on {where} "
        f"(session {learned['session']}, {learned['samples']} samples, "
        f"{len(new.learning['classes'])} classes: {', '.join(new.learning['classes'])})"
    )
