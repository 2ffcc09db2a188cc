"""Device commands: ``kpdev info``, ``ping``, ``stats``, ``reboot``, ``repl`` and ``infer``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kpdev.host.boards.catalog import get_board
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
    out,
    session,
    single,
)
from kpdev.host.errors import BoardError, LinkError, UsageError
from kpdev.host.plain import human_bytes
from kpdev.protocol.errors import DeviceError, KpdevError

if TYPE_CHECKING:  # imported where used, so that commands start fast
    import numpy as np


def info(
    board: BoardsOpt = None,
    port: PortsOpt = None,
    fleet: FleetOpt = None,
    place: PlaceOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Show the agent: versions, runtime, backends, memory, storage, link limits.

    On several boards (--board repeated, sim-mcu*3, --fleet, --place): one row a board."""
    one = single(board, port, fleet, place)
    if one is None:
        from kpdev.host.cli.fleet import info_fleet, selected

        info_fleet(selected(board, port, fleet, place), key=key, timeout=timeout, json_=json_)
        return
    board, port = one
    with session(board, port, key, timeout) as c:
        data = c.info()
    if json_:
        emit(data)
        return
    from rich.table import Table

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


def _load_input(path: Path) -> np.ndarray:
    import numpy as np

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
    import numpy as np

    from kpdev.host.cli.render import progress_view
    from kpdev.host.evaluation.metrics import clock_note, instructions

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
            with progress_view(not json_ and len(batch) > 1) as bar:
                task = bar.add_task("infer", total=len(batch))
                for outputs, us in c.infer_many(batch, detail["name"]):
                    results.append((outputs, us))
                    bar.advance(task)
        link = c.link_report()
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
        "clock": c.device.get("clock"),
        "outputs": first,
        "link": link,
    }
    if json_:
        emit(data)
        return
    for i, y in enumerate(first):
        out.print(f"output {i} {y.dtype} {list(y.shape)}:")
        out.print(np.array2string(y, threshold=64))
    mean = sum(times) / len(times)
    clock = c.device.get("clock")
    n = instructions(mean, clock)
    if n is None:
        out.print(f"{len(times)} inference(s) of {detail['name']}, device time mean {mean:.0f} µs")
    else:
        out.print(
            f"{len(times)} inference(s) of {detail['name']}, mean {n:,.0f} instructions "
            f"({mean:.0f} µs of virtual time)"
        )
        out.print(f"note: {clock_note(clock)}")
    if output is not None:
        out.print(f"outputs written to {output}")


def stats(
    reset: Annotated[
        bool, typer.Option("--reset", help="Zero the counters after reading.")
    ] = False,
    board: BoardsOpt = None,
    port: PortsOpt = None,
    fleet: FleetOpt = None,
    place: PlaceOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Show the agent's counters: frames, errors, inference latency and energy, memory, uptime.

    On several boards (--board repeated, sim-mcu*3, --fleet, --place): one row a board and
    model."""
    one = single(board, port, fleet, place)
    if one is None:
        from kpdev.host.cli.fleet import selected, stats_fleet

        sel = selected(board, port, fleet, place)
        stats_fleet(sel, reset=reset, key=key, timeout=timeout, json_=json_)
        return
    board, port = one
    with session(board, port, key, timeout) as c:
        data = c.stats(reset)
    if json_:
        emit(data)
        return
    _print_stats(data)


def _print_stats(data: dict) -> None:
    from rich.table import Table

    from kpdev.host.cli.render import named_errors
    from kpdev.host.evaluation.metrics import clock_note

    t = Table(show_header=False, title="agent statistics")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("frames in / out", f"{data['frames_in']} / {data['frames_out']}")
    t.add_row(
        "bytes in / out", f"{human_bytes(data['bytes_in'])} / {human_bytes(data['bytes_out'])}"
    )
    # Link errors since the agent started (or the last reset), and those of this connection: a
    # TCP client's reconnect starts the second over, never the first.
    link = data.get("link") or {}
    now = data.get("link_connection") or {}
    for k, v in link.items():
        if v or now.get(k):
            shown = f"{v} since start or reset, {now[k]} this connection" if k in now else str(v)
            t.add_row(k.replace("_", " "), shown)
    for k, v in named_errors(data.get("errors") or {}).items():
        t.add_row(f"errors {k}", str(v))
    if data.get("duplicates"):
        t.add_row("requests sent again, answered from the reply cache", str(data["duplicates"]))
    for k, v in (data.get("memory") or {}).items():
        t.add_row(k.replace("_", " "), human_bytes(v))
    t.add_row("uptime", f"{data.get('uptime_ms', 0) / 1000:.1f} s")
    out.print(t)
    if data.get("models"):
        energy = any(m.get("energy") for m in data["models"].values())
        note = clock_note(data.get("clock"))
        lt = Table(
            title=(
                "inference latency (µs of virtual time; p50 and p99 of the last 128)"
                if note
                else "inference latency (µs, device clock; p50 and p99 of the last 128)"
            )
            + (" and energy" if energy else "")
        )
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
        if note:
            out.print(f"note: {note}")
    _print_packs(data.get("packs") or {})


def _print_packs(packs: dict) -> None:
    # A pack's classifications: the whole CLASSIFY (pipeline + model graph), its energy too.
    from rich.table import Table

    if not packs:
        return
    t = Table(title="classifications (µs): pipeline + model graph, and energy")
    for col in ("pack", "count", "pipeline", "models", "mean", "mJ/inference", "energy"):
        t.add_column(col, justify="left" if col in ("pack", "energy") else "right")
    for name, p in packs.items():
        row = [name, str(p["count"])]
        row += [f"{p[k]:.0f}" for k in ("pipeline_us", "models_us", "mean_us")]
        t.add_row(*row, *_energy_cells(p.get("energy")))
    out.print(t)


def _energy_cells(e: dict | None) -> list[str]:
    # Energy per inference, and how it was had: estimated from the board's power model (at
    # which power), or measured by a sensor (over how many inferences).
    if not e:
        return ["-", "-"]
    if e.get("estimated"):
        return [f"≈{e['mj']:.4g}", f"estimated: power model, {e['mw']:g} mW"]
    return [f"{e['mj']:.4g}", f"measured by {e['source']} ({e['count']})"]


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
    from kpdev.host.client.session import resolve_board
    from kpdev.host.link.transport import open_url

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
        if "qemu" in b.sim:
            raise UsageError(
                f"{b.id} is an emulated board: kpdev repl does not open its REPL yet "
                "(docs/qemu-boards.md); sim-mcu has the agent's REPL"
            )
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
    from kpdev.host.link.transport import open_url

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
