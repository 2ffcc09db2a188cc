"""The ``kpdev`` command line.  Only this module prints or uses Rich."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from kpdev import __version__
from kpdev.host.boards.catalog import get_board, load_boards
from kpdev.host.cli.agent import agent_app
from kpdev.host.cli.boards import ports
from kpdev.host.cli.config import config_app
from kpdev.host.cli.demo import demo
from kpdev.host.cli.doctor import doctor
from kpdev.host.cli.evaluate import deploy_pack, profile, recognize, report
from kpdev.host.cli.evaluate import eval_ as eval_command
from kpdev.host.cli.learn import learn_app
from kpdev.host.cli.options import (
    BoardOpt,
    JsonOpt,
    KeyOpt,
    PortOpt,
    TimeoutOpt,
    emit,
    err,
    log_event,
    out,
)
from kpdev.host.cli.pack import pack_app
from kpdev.host.cli.power import clock, power_app
from kpdev.host.cli.render import human_bytes, jsonable, named_errors
from kpdev.host.cli.sim import sim
from kpdev.host.client.session import open_session, resolve_board
from kpdev.host.errors import AuthError, BoardError, ConfigError, LinkError, UsageError
from kpdev.host.link.transport import open_url
from kpdev.host.packs.deploy import install_hint
from kpdev.protocol import ops
from kpdev.protocol.errors import DeviceError, KpdevError, ProtocolError
from kpdev.protocol.formats import EXTENSIONS

app = typer.Typer(
    name="kpdev",
    help="Put ML models on small devices and measure them there.\n\n"
    "Every device command runs against a board from the catalog (--board) or a port "
    "(--port). A simulated board given with --board and no --port starts in the background "
    "on first use and keeps running like a plugged-in board (kpdev sim list|stop), so "
    "everything works with no hardware.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
model_app = typer.Typer(
    help="Inspect and manage the models stored on a device.", no_args_is_help=True
)
app.add_typer(model_app, name="model")
app.add_typer(agent_app, name="agent")
app.add_typer(power_app, name="power")
app.add_typer(pack_app, name="pack")
app.add_typer(learn_app, name="learn")
app.add_typer(config_app, name="config")
app.command()(clock)
app.command(name="eval")(eval_command)
app.command()(recognize)
app.command()(profile)
app.command()(report)
app.command()(demo)
app.command()(sim)
app.command()(ports)
app.command()(doctor)


def session(board, port, key, timeout=10.0):
    """A connected client; simulated boards start and stop with it."""
    return open_session(board, port, key, timeout=timeout, on_event=log_event)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        # Not into a pipe or a log: there a failing command must leave one line on stderr.
        disable=not enabled or not err.is_terminal,
        transient=False,
    )


# -- catalog and simulators ----------------------------------------------------------------
@app.command()
def boards(json_: JsonOpt = False) -> None:
    """List the boards in the catalog: the shipped boards.yml merged with your own.

    Your own boards come from boards.yml beside your config file (`kpdev config path --json`)
    and from `kpdev --catalog FILE` or $KPDEV_CATALOG: a new id adds a board, a known id
    takes the fields given.
    """
    catalog = load_boards()
    if json_:
        emit(
            [
                {
                    "id": b.id,
                    "name": b.name,
                    "runtime": b.runtime,
                    "simulated": b.simulated,
                    "ram_kb": b.ram_kb,
                    "storage_kb": b.storage_kb,
                    "flash_kb": b.flash_kb,
                    "accelerators": list(b.accelerators),
                    "link": b.link,
                    "usb": list(b.usb),
                    "catalog": b.source,
                }
                for b in catalog.values()
            ]
        )
        return
    _print_boards(list(catalog.values()), out.width)


def _print_boards(boards: list, width: int) -> None:
    """The catalog as a table as wide as the terminal (or $COLUMNS, or 80 into a pipe); board ids
    are never cut: the other columns wrap, fold into one, or the table gives way to lines."""
    idw = max(len(b.id) for b in boards)
    cells = [
        (
            b.id,
            b.name,
            b.runtime,
            human_bytes(b.ram_kb * 1024),
            human_bytes(b.storage_kb * 1024),
            ", ".join(b.accelerators) or "-",
            b.describe_link(),
        )
        for b in boards
    ]
    if width >= idw + 84:  # room for every column
        table = Table(title="kpdev boards")
        table.add_column("board", no_wrap=True, min_width=idw)
        table.add_column("name", overflow="fold", ratio=2)
        table.add_column("runtime", no_wrap=True)
        table.add_column("RAM", no_wrap=True, justify="right")
        table.add_column("storage", no_wrap=True, justify="right")
        table.add_column("accelerators", overflow="fold", ratio=1)
        table.add_column("link", overflow="fold", ratio=2)
        for row in cells:
            table.add_row(*row)
    elif width >= idw + 20:  # the id, and the rest folded into one column
        table = Table(title="kpdev boards")
        table.add_column("board", no_wrap=True, min_width=idw)
        table.add_column("details", overflow="fold")
        for bid, name, runtime, ram, storage, acc, link in cells:
            accel = "" if acc == "-" else f" · {acc}"
            table.add_row(
                bid, f"{name}\n{runtime} · RAM {ram} · storage {storage}{accel} · {link}"
            )
    else:  # narrower than any table: one line per board, the terminal wraps them
        for bid, name, runtime, ram, storage, acc, link in cells:
            accel = "" if acc == "-" else f", {acc}"
            out.print(
                f"{bid}  {name}; {runtime}, RAM {ram}, storage {storage}{accel}, {link}",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )
        return
    out.print(table)


# -- device commands -----------------------------------------------------------------------
@app.command()
def info(
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Show the agent: versions, runtime, backends, memory, storage, link limits."""
    with session(board, port, key, timeout) as c:
        data = c.info()
    if json_:
        emit(data)
        return
    table = Table(show_header=False, title=f"kpdev agent on {data.get('board')}")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("agent", f"{data['agent']} (protocol {data['proto']})")
    table.add_row("runtime", f"{data['runtime']} {data['runtime_version']} ({data['platform']})")
    backends = data.get("backends") or {}
    table.add_row(
        "backends", ", ".join(f"{k} {v}" for k, v in backends.items()) or "none on this runtime"
    )
    for k, v in (data.get("memory") or {}).items():
        table.add_row(k.replace("_", " "), human_bytes(v))
    st = data.get("storage") or {}
    table.add_row(
        "storage", f"{human_bytes(st.get('used'))} used of {human_bytes(st.get('quota'))}"
    )
    table.add_row("max payload", human_bytes(data.get("max_payload")))
    table.add_row("window", str(data.get("window")))
    table.add_row("authenticated", "yes" if data.get("auth") else "no")
    table.add_row("uptime", f"{data.get('uptime_ms', 0) / 1000:.1f} s")
    out.print(table)


@app.command()
def ping(
    count: Annotated[int, typer.Option("--count", "-n", help="How many pings.", min=1)] = 4,
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Measure round trips to the agent."""
    with session(board, port, key, timeout) as c:
        rtts = [c.ping(os.urandom(8)) * 1e3 for _ in range(count)]
    data = {
        "count": count,
        "min_ms": min(rtts),
        "mean_ms": sum(rtts) / len(rtts),
        "max_ms": max(rtts),
        "rtt_ms": rtts,
    }
    if json_:
        emit(data)
    else:
        out.print(
            f"{count} pings: min {data['min_ms']:.3f} ms, mean {data['mean_ms']:.3f} ms, "
            f"max {data['max_ms']:.3f} ms"
        )


def _load_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> dict; values that read as int or float become numbers."""
    meta: dict[str, Any] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise UsageError(f"--option {item!r}: write it as KEY=VALUE, e.g. driver=local-task")
        value: Any = v
        for kind in (int, float):
            try:
                value = kind(v)
                break
            except ValueError:
                continue
        meta[k.strip()] = value
    return meta


@app.command()
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
            help="Pack: only check that it fits the board (storage, RAM, backends); send nothing.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Pack: activate even when a model's test vectors differ on the device."
        ),
    ] = False,
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Upload a Knowledge Pack or a model to the device and activate it.

    A pack (.kp) is checked against the board before anything is sent (storage and RAM from
    boards.yml, the agent's backends); its models are uploaded (resuming an interrupted upload)
    and checked with the pack's test vectors, then the pack is switched in atomically and its
    pipeline checked too: one line per vector, match or mismatch (bit-exact for integer models).

    A model file is uploaded under --name; the device stores the load options with it and uses
    them whenever it loads it.
    """
    if model_file.suffix == ".kp":
        if name or backend or option:
            raise UsageError(
                "--name, --backend and --option apply to model files; a pack names its models"
            )
        deploy_pack(model_file, board, port, key, timeout, json_, dry_run, force)
        return
    if dry_run or force:
        raise UsageError("--dry-run and --force apply to Knowledge Packs (.kp)")
    from kpdev.host.packs.deploy import read_model_file

    data, fmt = read_model_file(model_file)
    name = name or model_file.stem
    b = resolve_board(board, port)
    if b is not None and len(data) > b.quota:
        raise UsageError(
            f"{model_file.name} is {human_bytes(len(data))} but {b.id} stores at most "
            f"{human_bytes(b.quota)}"
        )
    meta = _load_options(option or [])
    if backend:
        meta["backend"] = backend
    with session(board, port, key, timeout) as c, _progress(not json_) as bar:
        task = bar.add_task(f"upload {name}", total=len(data))
        t0 = time.perf_counter()
        # Stored without activating first: a model the device cannot load (an operator its
        # backend lacks, too little memory) must not replace the active one.
        result = c.upload(
            name,
            data,
            fmt,
            meta,
            activate=False,
            progress=lambda done, total: bar.update(task, completed=done),
        )
        seconds = time.perf_counter() - t0
        detail = c.model_info(name)
        if activate and not detail.get("load_error"):
            c.activate(name)
            result["active"] = True
    result.update(
        {
            "board": c.device.get("board"),
            "seconds": seconds,
            "backend": detail.get("backend"),
            "io": detail.get("io"),
            "load_error": detail.get("load_error"),
        }
    )
    if result["load_error"]:
        problem = result["load_error"]
        hint = ""
        if problem["code"] == ops.E_NO_BACKEND:
            hint = install_hint(b or load_boards().get(str(result["board"])), fmt, backend)
        error = DeviceError(
            f"{name} is stored on {result['board']} but cannot run there: "
            f"{problem['msg']} (the active model is unchanged){hint}",
            problem["code"],
        )
        error.detail = jsonable(result)  # under --json, main() puts it in the error object
        raise error
    if json_:
        emit(result)
        return
    resumed = f", resumed at {result['resumed_from']}" if result["resumed_from"] else ""
    out.print(
        f"deployed [bold]{name}[/bold] ({human_bytes(result['size'])}, sha256 "
        f"{result['sha256'][:12]}…{resumed}) to {result['board']} in {seconds:.2f} s"
        + (" [green]active[/green]" if result.get("active") else "")
    )
    if result["io"]:
        _print_io(result["backend"], result["io"])


def _print_io(backend: str | None, io: dict) -> None:
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


@app.command()
def models(
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """List the models stored on the device."""
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
            (m.get("meta") or {}).get("backend", "auto"),
        )
    out.print(table)


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
        for k, v in (data.get("details") or {}).items():
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
    name: Annotated[str, typer.Argument(help="Model to delete.")],
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Delete a stored model."""
    with session(board, port, key, timeout) as c:
        data = c.delete(name)
    emit(data) if json_ else out.print(f"deleted {name}")


def _load_input(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {path} as a .npy array: {e}") from None


def _fits(shape: tuple[int, ...], want: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` fits a spec shape, where -1 takes any size."""
    return len(shape) == len(want) and all(w in (-1, s) for s, w in zip(shape, want, strict=True))


def _batch_of(x: np.ndarray, shape: list[int]) -> list[np.ndarray] | None:
    """The inputs in ``x`` for a model input of ``shape``; None when x is one input.

    A dimension of -1 (a dynamic batch, as Akida and IREE models declare) takes any size, so
    an [N, ...] array goes to such a model as one input.
    """
    want = tuple(shape)
    if _fits(x.shape, want):
        return None
    if _fits(x.shape[1:], want):
        return list(x)
    if want and want[0] == 1 and _fits(x.shape[1:], want[1:]):
        return [row[None, ...] for row in x]
    raise UsageError(
        f"input of shape {list(x.shape)} does not fit the model's input {list(want)} "
        f"(or a batch of them, [N, {', '.join(map(str, want))}])"
    )


@app.command()
def infer(
    input_: Annotated[
        Path, typer.Option("--input", "-i", help=".npy file: one input, or a batch along axis 0.")
    ],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model name; default: the active model.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the outputs to this .npy file.")
    ] = None,
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 30.0,
    json_: JsonOpt = False,
) -> None:
    """Run inference on the device; a batch is pipelined within the agent's window."""
    x = _load_input(input_)
    with session(board, port, key, timeout) as c:
        detail = c.model_info(model)
        if detail.get("load_error"):
            e = detail["load_error"]
            raise DeviceError(f"cannot run {detail['name']}: {e['msg']}", e["code"])
        spec = detail["io"]["inputs"][0]
        batch = _batch_of(x, spec["shape"])
        if batch is None:
            outputs, us = c.infer(x, detail["name"])
            results = [(outputs, us)]
        else:
            results = []
            with _progress(not json_ and len(batch) > 1) as bar:
                task = bar.add_task("infer", total=len(batch))
                for outputs, us in c.infer_many(batch, detail["name"]):
                    results.append((outputs, us))
                    bar.advance(task)
    first = [np.stack([r[0][i] for r in results]) for i in range(len(results[0][0]))]
    if batch is None:
        first = results[0][0]
    if output is not None:
        np.save(output, first[0] if len(first) == 1 else np.concatenate(first, axis=-1))
    times = [r[1] for r in results]
    data = {
        "model": detail["name"],
        "backend": detail.get("backend"),
        "count": len(results),
        "device_us": times if batch is not None else times[0],
        "outputs": first,
    }
    if json_:
        emit(data)
        return
    for i, y in enumerate(first):
        out.print(f"output {i} {y.dtype} {list(y.shape)}:")
        out.print(np.array2string(y, threshold=64))
    mean = sum(times) / len(times)
    out.print(f"{len(times)} inference(s) of {detail['name']}, device time mean {mean:.0f} µs")
    if output is not None:
        out.print(f"outputs written to {output}")


@app.command()
def stats(
    reset: Annotated[
        bool, typer.Option("--reset", help="Zero the counters after reading.")
    ] = False,
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Show the agent's counters: frames, errors, inference latency and energy, memory, uptime."""
    with session(board, port, key, timeout) as c:
        data = c.stats(reset)
    if json_:
        emit(data)
        return
    _print_stats(data)


def _print_stats(data: dict) -> None:
    t = Table(show_header=False, title="agent statistics")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("frames in / out", f"{data['frames_in']} / {data['frames_out']}")
    t.add_row(
        "bytes in / out", f"{human_bytes(data['bytes_in'])} / {human_bytes(data['bytes_out'])}"
    )
    for k, v in (data.get("link") or {}).items():
        if v:
            t.add_row(k.replace("_", " "), str(v))
    for k, v in named_errors(data.get("errors") or {}).items():
        t.add_row(f"errors {k}", str(v))
    for k, v in (data.get("memory") or {}).items():
        t.add_row(k.replace("_", " "), human_bytes(v))
    t.add_row("uptime", f"{data.get('uptime_ms', 0) / 1000:.1f} s")
    out.print(t)
    if data.get("models"):
        energy = any(m.get("energy") for m in data["models"].values())
        lt = Table(title="inference latency (µs)" + (" and energy" if energy else ""))
        cols = ["model", "count", "min", "mean", "p50", "p99", "max"]
        if energy:
            cols += ["mJ/inference", "energy"]
        for col in cols:
            lt.add_column(col, justify="left" if col in ("model", "energy") else "right")
        for name, m in data["models"].items():
            row = [name, str(m["count"])]
            row += [str(m[k]) for k in ("min_us", "mean_us", "p50_us", "p99_us", "max_us")]
            if energy:
                row += _energy_cells(m.get("energy"))
            lt.add_row(*row)
        out.print(lt)


def _energy_cells(e: dict | None) -> list[str]:
    # Energy per inference, and whether it was measured or estimated from the power model.
    if not e:
        return ["-", "-"]
    if e.get("estimated"):
        return [f"≈{e['mj']:.4g}", "estimated"]
    return [f"{e['mj']:.4g}", f"{e['source']} ({e['count']})"]


@app.command()
def reboot(
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Restart the agent (a hard reset on a microcontroller)."""
    with session(board, port, key, timeout) as c:
        data = c.reboot()
    emit(data) if json_ else out.print("agent restarting")


@app.command()
def repl(
    board: BoardOpt = None,
    port: PortOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Open the on-device REPL.

    For a simulated board: an interactive MicroPython (or Python, for sim-linux) with the
    agent importable (`from kpdev.device import repl`) and the board's own files. For a
    MicroPython board on a port: stops the agent loop (Ctrl-C) and hands the port to mpremote.
    """
    if json_:
        raise UsageError("kpdev repl is interactive: it takes no --json")
    from kpdev.host.agent.micropython import micropython_binary, stage_lib
    from kpdev.host.boards import simserver
    from kpdev.host.boards.sim import StateLock, home, state_dir

    b = resolve_board(board, port)
    if port:
        baud = int((b.link.get("baud") if b else None) or 115200)
        served = _simulated_behind(port, baud)
        if served is not None:
            raise UsageError(
                f"{port} serves the simulated board {served} (kpdev sim): it has no REPL "
                f"there; use kpdev repl --board {served}"
            )
        # Two Ctrl-C bytes outside any frame make the agent loop give the port back to the
        # board's REPL; mpremote takes it from there.
        link = open_url(port, baud)
        try:
            link.write(b"\x03\x03")
        finally:
            link.close()
        proc = subprocess.run(
            [sys.executable, "-m", "mpremote", "connect", port, "repl"], check=False
        )
        code = proc.returncode
    else:
        if not b.simulated:
            raise UsageError(f"{b.id} is a real board: pass --port with its serial port")
        # As on a board, the REPL takes the agent's place: the background agent stops (its
        # RAM is lost) and starts again at the next command.
        if simserver.stop(b) and not json_:
            err.print(f"[dim]stopped the running agent of {b.id} for the REPL[/dim]")
        lock = StateLock(b)
        if not lock.acquire():
            raise BoardError(f"{b.id} is in use by process {lock.holder()}: try again later")
        state = state_dir(b)
        env = dict(os.environ, KPDEV_STATE=str(state), KPDEV_BOARD=b.id, KPDEV_QUOTA=str(b.quota))
        hint = (
            "from kpdev.device import repl; print('kpdev agent: repl.models(), "
            "repl.load(name), repl.infer(name, x), repl.stats()')"
        )
        if b.runtime == "micropython":
            env["MICROPYPATH"] = stage_lib(str(home() / "lib")) + ":.frozen"
            heap = b.sim.get("heapsize", "256K")
            argv = [micropython_binary(), "-X", f"heapsize={heap}", "-i", "-c", hint]
        else:
            argv = [sys.executable, "-i", "-c", hint]
        if not json_:
            err.print(f"[bold]{b.name}[/bold] REPL; files in {state}. Ctrl-D to leave.")
        try:
            code = subprocess.run(argv, env=env, cwd=state, check=False).returncode
        finally:
            lock.release()
    if json_:
        emit({"board": b.id if b else None, "port": port, "exit_code": code})
    if code:
        raise typer.Exit(code)


def _simulated_behind(port: str, baud: int) -> str | None:
    """The simulated board an agent on ``port`` says it is, or None (no agent, or a real one)."""
    from kpdev.host.client.client import Client

    try:
        link = open_url(port, baud)
    except LinkError:
        return None
    client = Client(link, None, timeout=2.0)
    try:
        name = client.hello().get("board")
    except KpdevError:
        return None
    finally:
        client.close()
    try:
        return name if get_board(name).simulated else None
    except BoardError:
        return None


def _version(value: bool) -> None:
    if value:
        out.print(f"kpdev {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
    catalog: Annotated[
        Path | None,
        typer.Option(
            "--catalog",
            metavar="FILE",
            help="A board catalog of your own (YAML, as boards.yml) merged over the shipped one "
            "and boards.yml beside your config file: a new id adds a board, a known id takes "
            "the fields given. Default: $KPDEV_CATALOG.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Put ML models on small devices and measure them there."""
    if catalog is not None:
        # In the environment, so that whatever this command starts reads the same catalog.
        os.environ["KPDEV_CATALOG"] = str(catalog.expanduser().resolve())


# Each error kind: (label on stderr, code in the --json error object, exit code).  Caught once,
# in main(); a device error's code is the device's own (protocol/ops.py E_*).
_EXIT = (
    (UsageError, "error", "usage", 2),
    (ConfigError, "config error", "config", 2),
    (BoardError, "board error", "board", 2),
    (AuthError, "authentication error", "auth", 5),
    (LinkError, "link error", "link", 4),
    (DeviceError, "device error", None, 3),
    (ProtocolError, "protocol error", "protocol", 6),
    (KpdevError, "error", "error", 1),
)


def _wants_json(args: list[str]) -> bool:
    """Whether --json is among the options (those before a ``--``)."""
    return "--json" in (args[: args.index("--")] if "--" in args else args)


def _fail(label: str, code: Any, exit_code: int, message: str, as_json: bool, detail=None):
    """One line on stderr and, under --json, one error object on stdout; then exit."""
    message = " ".join(str(message).split())
    sys.stderr.write(f"kpdev: {label}: {message}\n")
    if as_json:
        error: dict[str, Any] = {"code": code, "message": message, "exit": exit_code}
        if detail is not None:
            error["detail"] = detail
        emit({"error": error})
    sys.exit(exit_code)


def _usage_message(e: Exception) -> str:
    # Typer's bundled click errors carry format_message() and the context they arose in.
    message = e.format_message()
    ctx = getattr(e, "ctx", None)
    if ctx is not None:
        message = f"{message.rstrip('.')} (see {ctx.command_path} --help)"
    return message


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turning errors into one line and an exit code
    (and, under --json, one error object on stdout)."""
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    as_json = _wants_json(args)
    try:
        code = app(args=args, prog_name="kpdev", standalone_mode=False)
    except typer.TyperException as e:  # usage errors: unknown option, missing argument, ...
        if type(e).__name__ == "NoArgsIsHelpError":  # the help is printed already
            sys.exit(2)
        exit_code = int(getattr(e, "exit_code", 1))
        kind = "usage" if exit_code == 2 else "error"
        _fail(f"{kind} error" if kind == "usage" else kind, kind, exit_code, _usage_message(e),
              as_json)  # fmt: skip
    except typer.Abort:
        _fail("error", "aborted", 1, "aborted", as_json)
    except (KpdevError, OSError) as e:
        if os.environ.get("KPDEV_DEBUG"):
            raise
        label, kind, exit_code = next(
            ((lbl, k, c) for cls, lbl, k, c in _EXIT if isinstance(e, cls)), ("error", "io", 1)
        )
        if isinstance(e, DeviceError):
            kind = e.code
        msg = str(e) if not isinstance(e, OSError) else f"{e.strerror or e}: {e.filename or ''}"
        _fail(label, kind, exit_code, msg, as_json, getattr(e, "detail", None))
    if code == 130:  # Typer turns Ctrl-C into exit code 130
        _fail("error", "interrupted", 130, "interrupted", as_json)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
