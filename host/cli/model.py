"""Models on a device: ``kpdev deploy`` (a model file or a Knowledge Pack), ``kpdev models`` and
``kpdev model info|activate|delete``.  The deploy policies live in ``kpdev.host.packs.deploy``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kpdev.host.cli.options import (
    BoardOpt,
    BoardsOpt,
    FleetOpt,
    JsonOpt,
    KeyOpt,
    PlaceOpt,
    PortOpt,
    PortsOpt,
    TimeoutOpt,
    emit,
    err,
    key_value,
    out,
    session,
    single,
    sub_app,
)
from kpdev.host.errors import UsageError
from kpdev.host.plain import human_bytes
from kpdev.protocol import ops
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.formats import EXTENSIONS

model_app = sub_app("Inspect and manage the models stored on a device.")


def deploy(
    model_file: Annotated[
        Path,
        typer.Argument(
            help=f"Knowledge Pack (.kp) or model file ({', '.join(EXTENSIONS)}).",
            show_default=False,
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Name on the device; default: the file's stem."),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="Backend to run it with, e.g. tflite_micro; default: "
            "the agent's first choice for the format.",
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-O",
            help="Load option KEY=VALUE for the backend, repeatable, e.g. iree: driver=local-task,"
            " function=main; litert: threads=2; akida: virtual=AKD1000, output=forward; "
            "tflite_int8: kernels=plain, weights=file. A VALUE that reads as a number is one.",
            show_default=False,
        ),
    ] = None,
    activate: Annotated[
        bool, typer.Option("--activate/--no-activate", help="Make it the active model.")
    ] = True,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Only check that it would deploy, and send nothing: backends, the model's load "
            "(tried on this machine), free heap, storage and request sizes, from what the device "
            "reports or, when none answers, the catalog.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Pack: activate even when a model's test vectors differ on the device."
        ),
    ] = False,
    keep_unloadable: Annotated[
        bool,
        typer.Option(
            "--keep-unloadable",
            help="Model file: keep it stored even when the device cannot load it "
            "(it is never activated); by default such a model is not stored.",
        ),
    ] = False,
    board: BoardsOpt = None,
    port: PortsOpt = None,
    fleet: FleetOpt = None,
    place: PlaceOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Upload a Knowledge Pack or a model to the device and activate it.

    A pack (.kp) is checked against the board before anything is sent (storage and RAM from
    boards.yml, the agent's backends); its models are uploaded (resuming an interrupted upload)
    and checked with the pack's test vectors, then the pack is switched in atomically and its
    pipeline checked too: one line per vector, match or mismatch (bit-exact for integer models).

    A model file is checked (its format, --backend and --option) before anything is sent, and
    uploaded under --name; the device stores the load options with it and uses them whenever it
    loads it.  The device loads it before storing it: one it cannot load is not stored (the model
    of that name and the active model stay as they were) unless --keep-unloadable, and never
    activated.

    On several boards (--board repeated, sim-mcu*3, --fleet, --place) a pack is deployed to all
    of them at once, its test vectors checked on each: one row a board, failed boards with the
    reason; non-zero exit only when no board took it.
    """
    from kpdev.host.cli.render import progress_bar
    from kpdev.host.client.session import resolve_board

    one = single(board, port, fleet, place)
    if one is None:
        if name or backend or option or keep_unloadable or dry_run:
            raise UsageError(
                "on a fleet, deploy takes a pack as it is: leave out --name, --backend, "
                "--option, --keep-unloadable and --dry-run"
            )
        from kpdev.host.cli.fleet import deploy_fleet, selected

        sel = selected(board, port, fleet, place)
        deploy_fleet(model_file, sel, key=key, timeout=timeout, json_=json_, force=force)
        return
    board, port = one
    if model_file.suffix == ".kp":
        if name or backend or option or keep_unloadable:
            raise UsageError(
                "--name, --backend, --option and --keep-unloadable apply to model files; "
                "a pack names its models"
            )
        if dry_run:
            _dry_run(model_file, None, {}, board, port, key, timeout, json_)
            return
        _deploy_pack(model_file, board, port, key, timeout, json_, force)
        return
    if force:
        raise UsageError("--force applies to Knowledge Packs (.kp)")
    from kpdev.host.packs.deploy import deploy_model, read_model_file

    name = name or model_file.stem
    meta = dict(key_value(item, "--option", "driver=local-task") for item in option or [])
    if backend:
        meta["backend"] = backend
    if dry_run:
        _dry_run(model_file, name, meta, board, port, key, timeout, json_)
        return
    data, fmt = read_model_file(model_file)
    b = resolve_board(board, port)
    with session(board, port, key, timeout) as c:
        with progress_bar(not json_, f"upload {name}", len(data), unit="bytes") as progress:
            try:
                result = deploy_model(
                    c,
                    name,
                    data,
                    fmt,
                    meta,
                    activate=activate,
                    keep_unloadable=keep_unloadable,
                    board=b,
                    progress=progress,
                )
            except DeviceError as e:
                if isinstance(getattr(e, "detail", None), dict):
                    e.detail["link"] = c.link_report()
                raise
        result["link"] = c.link_report()
    if json_:
        emit(result)
        return
    resumed = f", resumed at {result['resumed_from']}" if result["resumed_from"] else ""
    out.print(
        f"deployed [bold]{name}[/bold] ({human_bytes(result['size'])}, sha256 "
        f"{result['sha256'][:12]}…{resumed}) to {result['board']} in {result['seconds']:.2f} s"
        + (" [green]active[/green]" if result.get("active") else "")
    )
    if result["io"]:
        _print_io(result["backend"], result["io"])
    for line in memory_lines(result.get("details"), result.get("tflm_arena_reference_bytes")):
        out.print(line)


# The MODEL_INFO details memory_lines words (kpdev model info shows the others as they are).
_MEMORY_KEYS = (
    "heap_held_bytes",
    "arena_size_bytes",
    "invoke_heap_bytes",
    "weights",
    "weights_in_ram_bytes",
    "model_area",
    "model_area_reused",
)


def memory_lines(details: dict | None, tflm_arena: int | None = None) -> list[str]:
    """What a loaded model costs the device's memory, each figure labelled as what it is, with
    TFLM's arena for the same model beside it when the host could compute it."""
    d = details if isinstance(details, dict) else {}
    lines = []
    parts = []
    if isinstance(d.get("heap_held_bytes"), int):
        parts.append(f"holds {human_bytes(d['heap_held_bytes'])} (measured at load)")
    if isinstance(d.get("arena_size_bytes"), int):
        parts.append(f"arena {human_bytes(d['arena_size_bytes'])} (planned)")
    if isinstance(d.get("invoke_heap_bytes"), int):
        parts.append(
            f"one inference allocates {human_bytes(d['invoke_heap_bytes'])} more "
            "(measured at the first run)"
        )
    if isinstance(tflm_arena, int):
        parts.append(f"TFLM arena (reference) {human_bytes(tflm_arena)}")
    if parts:
        lines.append("heap: " + ", ".join(parts))
    if "weights" in d:
        w = f"weights: {d['weights']}"
        if isinstance(d.get("weights_in_ram_bytes"), int):
            w += f", {human_bytes(d['weights_in_ram_bytes'])} in RAM"
        area = d.get("model_area")
        if isinstance(area, dict):
            w += (
                f"; model area {human_bytes(area.get('used'))} used, "
                f"{human_bytes(area.get('free'))} free of {human_bytes(area.get('capacity'))}"
                + (" (bytes already there, reused)" if d.get("model_area_reused") else "")
            )
        lines.append(w)
    return lines


def _print_io(backend: str | None, io: dict) -> None:
    from rich.table import Table

    table = Table(title=f"io spec ({backend})")
    for col in ("", "name", "dtype", "shape", "scale", "zero point"):
        table.add_column(col)
    for kind in ("inputs", "outputs"):
        for spec in io.get(kind, []):
            table.add_row(
                kind[:-1],
                str(spec.get("name")),
                str(spec.get("dtype")),
                str(spec.get("shape")),
                str(spec.get("scale")),
                str(spec.get("zero_point")),
            )
    out.print(table)


def models(
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """List the models stored on the device."""
    from rich.table import Table

    with session(board, port, key, timeout) as c:
        data = c.models()
    if json_:
        emit(data)
        return
    if not data["models"]:
        out.print("no models on the device; add one with `kpdev deploy MODEL_FILE`")
        return
    table = Table(title="models")
    for col in ("", "name", "format", "size", "sha256", "backend"):
        table.add_column(col)
    for m in data["models"]:
        table.add_row(
            "*" if m.get("active") else "",
            m["name"],
            m["format"],
            human_bytes(m["size"]),
            m["sha256"][:16],
            _backend_cell(m),
        )
    out.print(table)


def _backend_cell(m: dict) -> str:
    # The backend the device runs the model with (MODEL_LIST says); what meta asked for is
    # shown only beside it, when it differs.
    if "backend" not in m:
        return "? (agent too old to say)"
    runs = m["backend"] or "none"
    asked = (m.get("meta") or {}).get("backend")
    return runs if asked in (None, runs) else f"{runs} (asked {asked})"


@model_app.command("info")
def model_info(
    name: Annotated[
        str | None, typer.Argument(help="Model name; default: the active model.")
    ] = None,
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Show a stored model: size, checksum, backend and its inputs and outputs."""
    with session(board, port, key, timeout) as c:
        data = c.model_info(name)
    if json_:
        emit(data)
        return
    out.print(
        f"[bold]{data['name']}[/bold] {data['format']} {human_bytes(data['size'])} "
        f"sha256 {data['sha256']}" + (" [green]active[/green]" if data.get("active") else "")
    )
    if data.get("load_error"):
        err.print(f"[yellow]cannot load here:[/yellow] {data['load_error']['msg']}")
    else:
        _print_io(data.get("backend"), data.get("io") or {})
        details = data.get("details") or {}
        shown = memory_lines(details)
        for line in shown:
            out.print(line)
        for k, v in details.items():
            if not shown or k not in _MEMORY_KEYS:
                out.print(f"{k}: {v}")


@model_app.command("activate")
def model_activate(
    name: Annotated[str, typer.Argument(help="Model to make active.")],
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Make a stored model the one INFER uses by default."""
    with session(board, port, key, timeout) as c:
        data = c.activate(name)
    emit(data) if json_ else out.print(f"{name} is now active")


@model_app.command("delete")
def model_delete(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to delete.", show_default=False)
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Delete every stored model.")] = False,
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Delete stored models: the ones named, or --all.  If one is not on the device, none is."""
    from kpdev.host.packs.deploy import delete_models

    if bool(names) == all_:
        raise UsageError("name the models to delete, or give --all (not both)")
    with session(board, port, key, timeout) as c:
        deleted = delete_models(c, None if all_ else names)
    if json_:
        emit({"deleted": deleted})
    else:
        out.print(f"deleted {', '.join(deleted)}" if deleted else "no models to delete")


def _dry_run(
    path: Path, name: str | None, meta: dict, board, port, key, timeout: float, json_: bool
) -> None:
    """``kpdev deploy --dry-run``: every check of the deploy, against the device's own report
    when one answers, else the catalog; a table, and an error when it would not deploy."""
    from kpdev.host.client.session import resolve_board
    from kpdev.host.errors import BoardError, LinkError
    from kpdev.host.packs import fit
    from kpdev.host.packs.deploy import check_load, read_model_file
    from kpdev.host.packs.pack import read_pack

    pack = read_pack(path) if name is None else None
    data, fmt = (None, None) if pack else read_model_file(path)
    b = resolve_board(board, port)
    info, why = None, ""
    try:
        with session(board, port, key, timeout) as c:
            info = dict(c.device)
            info["models"] = c.models().get("models", [])
            info["pack"] = c.pack_get()
    except (LinkError, BoardError) as e:
        if b is None:
            raise
        why = str(e)
    if data is not None:
        check_load(fmt, meta, info or fit.catalog_info(b))
    with out.status("trying the load on this machine", spinner="dots") if not json_ else _null():
        if pack is not None:
            plan = fit.fit_pack(pack, b, info, why)
        else:
            plan = fit.fit_model(name, data, fmt, meta, b, info, why)
    plan["dry_run"] = True
    subject = pack.name if pack else name
    if not json_:
        _print_fit(plan, subject)
    if plan["fits"] is None and not json_:
        err.print(
            f"[yellow]{subject} may not deploy on {plan['board']}: "
            f"{'; '.join(plan['problems'])}[/yellow]"
        )
    elif plan["fits"] is None:
        plan["warning"] = f"{subject} may not deploy on {plan['board']}"
    if plan["fits"] is False:
        said = "would not"
        error = UsageError(
            f"{subject} {said} deploy on {plan['board']}: {'; '.join(plan['problems'])} "
            "(dry run: nothing sent)"
        )
        error.detail = plan
        raise error
    if json_:
        emit(plan)
        return
    if plan["fits"]:
        out.print(
            f"[bold]{subject}[/bold] would deploy on {plan['board']} (dry run: nothing sent)"
        )


def _null():
    import contextlib

    return contextlib.nullcontext()


def _print_fit(plan: dict, subject: str) -> None:
    from rich.table import Table

    t = Table(title=f"dry run of {subject} on {plan['board']}", title_justify="left")
    for col in ("check", "of", "needs", "has", "result", "how, and why not"):
        t.add_column(col, overflow="fold")
    marks = {True: "[green]ok[/green]", False: "[red]NO[/red]", None: "[yellow]unsure[/yellow]"}
    for c in plan["checks"]:
        t.add_row(
            c["check"],
            c["subject"],
            _cell(c["need"], c["check"]),
            _cell(c["have"], c["check"]),
            marks[c["ok"]],
            c["how"] + (f"\n[{_COLOUR[c['ok']]}]{c['why']}[/]" if c["why"] else ""),
        )
    out.print(t)
    out.print(f"[dim]{plan['basis']}[/dim]")


_COLOUR = {False: "red", None: "yellow", True: "default"}


def _cell(value, check: str) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and check in ("heap", "storage", "ram", "request"):
        return human_bytes(value)
    return str(value)


def _deploy_pack(path: Path, board, port, key, timeout: float, json_: bool, force: bool) -> None:
    """``kpdev deploy PACK.kp``: check, upload (resuming), verify, activate; report vectors."""
    from kpdev.host.cli.render import progress_bar
    from kpdev.host.client.session import resolve_board
    from kpdev.host.packs.deploy import deploy_pack as run
    from kpdev.host.packs.pack import read_pack

    pack = read_pack(path)
    b = resolve_board(board, port)
    with session(board, port, key, timeout) as c:
        with progress_bar(not json_, f"upload {pack.name}", unit="bytes") as progress:
            plan = run(c, pack, b, force=force, progress=progress)
        plan["link"] = c.link_report()
    if json_:
        emit(plan)
        return
    out.print(
        f"deployed [bold]{pack.name}[/bold] {pack.manifest['version']} to {plan['board']}: "
        f"{len(plan['models'])} model(s), {human_bytes(plan['model_bytes'])}"
        + (" [green]active[/green]" if plan["active"] else "")
    )
    print_vectors(plan.get("vectors") or [])
    bad = [v for v in plan.get("vectors") or [] if not v["match"]]
    if bad:
        raise DeviceError(
            f"{len(bad)} of {len(plan['vectors'])} test vector checks differ on "
            f"{plan['board']} (the pack is active: --force was given or the pipeline differs)",
            ops.E_INFER,
        )


def print_vectors(vectors: list[dict]) -> None:
    from rich.table import Table

    if not vectors:
        return
    t = Table(title="test vectors on the device", title_justify="left")
    for col in ("vector", "check", "result", "detail"):
        t.add_column(col)
    for v in vectors:
        detail = ""
        if v.get("max_diff") is not None:
            detail = f"max |diff| {v['max_diff']:g}"
        elif v.get("class") is not None:
            detail = f"class {v['class']}" + (f" (label {v['label']})" if v.get("label") else "")
        t.add_row(
            str(v["vector"]),
            v["check"],
            "[green]match[/green]" if v["match"] else "[red]MISMATCH[/red]",
            detail,
        )
    out.print(t)
