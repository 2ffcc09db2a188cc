"""``kpdev power [enable|disable]`` and ``kpdev clock``: power measurement and clock modes."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kpdev.host.cli.options import (
    BoardOpt,
    JsonOpt,
    KeyOpt,
    PortOpt,
    TimeoutOpt,
    out,
    session,
    sub_app,
)
from kpdev.host.errors import LinkError
from kpdev.host.plain import jsonable

power_app = sub_app(
    "Measure the device's power: its power source (a sensor, the Akida SoC's meter, or "
    "the board's power model, always labelled estimated) from boards.yml. Without a command: "
    "read the power events since the last read (measurement is switched on for the command's "
    "duration when it is off). Every power command takes --json.",
    short_help="Measure the device's power: a sensor, the SoC's meter, or the board's power "
    "model (labelled estimated).",
    invoke_without_command=True,
)

if TYPE_CHECKING:  # imported where used, so that commands start fast
    from rich.console import Group

    from kpdev.host.client.client import Client


def _emit(data: Any, lines: bool = False) -> None:
    # One JSON document, or one compact line per reading when watching.
    text = json.dumps(jsonable(data), separators=(",", ":")) if lines else None
    sys.stdout.write((text or json.dumps(jsonable(data), indent=2)) + "\n")
    sys.stdout.flush()


def readings(c: Client, polls: int | None, interval: float) -> Iterator[dict[str, Any]]:
    """Read the power events ``polls`` times (None: until interrupted), ``interval`` apart.

    Measurement is switched on first when it is off, and off again at the end.
    """
    first = c.power_read()
    switched = not first["enabled"]
    if switched:
        c.power_enable(True)
    try:
        n = 0
        while polls is None or n < polls:
            if n:
                time.sleep(interval)
            data = first if n == 0 and not switched else c.power_read()
            if n == 0 and switched:  # events left from an earlier measurement come first
                data["events"] = first["events"] + data["events"]
                data["dropped"] = first.get("dropped", 0) + data.get("dropped", 0)
            floor = c.power_floor()
            estimated = bool(data["estimated"])
            yield {
                "board": c.device.get("board"),
                "source": data["source"],
                "estimated": estimated,
                "enabled": True,
                "floor_mw": floor.get("floor_mw"),
                "floor_basis": floor.get("basis"),
                "dropped": data.get("dropped", 0),
                "capacity": data.get("capacity"),
                "events": [dict(e, estimated=estimated) for e in data["events"]],
                "rails": data.get("rails") or {},
            }
            n += 1
    finally:
        if switched:
            try:
                c.power_disable()
            except LinkError:
                pass  # the device is gone (Ctrl-C reaches a simulated board too): nothing to undo


def _num(value: float | None, scale: float = 1.0, digits: int = 4) -> str:
    return "-" if value is None else f"{value / scale:.{digits}g}"


def _render(snap: dict[str, Any], history: list[dict[str, Any]]) -> Group:
    from rich.console import Group
    from rich.table import Table

    est = snap["estimated"]
    mark = "≈" if est else ""
    head = Table(show_header=False, title=f"power on {snap['board']}: {snap['source']}")
    head.add_column(style="bold")
    head.add_column()
    head.add_row("figures", "ESTIMATED from the board's power model" if est else "measured")
    head.add_row("floor", f"{mark}{_num(snap['floor_mw'])} mW ({snap['floor_basis']})")
    head.add_row("dropped", f"{snap['dropped']} (ring of {snap['capacity']})")
    events = Table(title="events" + (" (estimated)" if est else ""))
    for col in ("ts ms", "voltage V", "current mA", "power mW" + (" (estimated)" if est else "")):
        events.add_column(col, justify="right")
    for e in history[-20:]:
        events.add_row(
            str(e["ts_ms"]),
            _num(e["voltage_uv"], 1e6),
            _num(e["current_ma"]),
            mark + _num(e["power_mw"]),
        )
    parts = [head, events]
    if snap["rails"]:
        rails = Table(title="rails")
        for col in ("rail", "voltage V", "current mA", "power mW"):
            rails.add_column(col, justify="right" if col != "rail" else "left")
        for name, r in snap["rails"].items():
            rails.add_row(
                name, _num(r["voltage_uv"], 1e6), _num(r["current_ma"]), _num(r["power_mw"])
            )
        parts.append(rails)
    return Group(*parts)


@power_app.callback()
def power(
    ctx: typer.Context,
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Keep reading until interrupted (Ctrl-C).")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", "-i", help="Seconds between readings.", min=0.01)
    ] = 1.0,
    count: Annotated[
        int | None,
        typer.Option("--count", "-n", help="Stop after this many readings.", min=1),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Read the power events since the last read: timestamp, voltage, current, power.

    Also shows the floor (idle) power and how many events the device's ring dropped. With
    --watch (or --count N) it keeps reading every --interval seconds: a live table, or one
    JSON line per reading with --json.
    """
    from rich.live import Live

    if ctx.invoked_subcommand is not None:
        return
    polls = count if count is not None else (None if watch else 1)
    many = polls != 1
    history: list[dict[str, Any]] = []
    with session(board, port, key, timeout) as c:
        stream = readings(c, polls, interval)
        try:
            if json_:
                for snap in stream:
                    _emit(snap, lines=many)
                return
            # A live table on a terminal; into a pipe or a log, one table per reading.
            live = Live(console=out, auto_refresh=False) if many and out.is_terminal else None
            with live or nullcontext():
                for snap in stream:
                    history.extend(snap["events"])
                    view = _render(snap, history)
                    if live:
                        live.update(view, refresh=True)
                    else:
                        out.print(view)
        except KeyboardInterrupt:
            if not many:
                raise
        finally:
            stream.close()  # measurement off again if this command switched it on


def _switch(on: bool, board, port, key, timeout, json_) -> None:
    with session(board, port, key, timeout) as c:
        data = c.power_enable(on)
    data["board"] = c.device.get("board")
    if json_:
        _emit(data)
        return
    label = " (estimated from the board's power model)" if data["estimated"] else ""
    out.print(
        f"power measurement {'on' if data['enabled'] else 'off'} on {data['board']}: "
        f"source {data['source']}{label}"
    )


@power_app.command()
def enable(
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Switch power measurement on: events are kept (in a bounded ring) until read.

    On a simulated board started for one command the setting ends with the command: serve
    it with `kpdev sim` and pass --port to keep it.
    """
    _switch(True, board, port, key, timeout, json_)


@power_app.command()
def disable(
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Switch power measurement off (the events not yet read stay readable)."""
    _switch(False, board, port, key, timeout, json_)


def clock(
    mode: Annotated[
        str | None,
        typer.Argument(
            help="Mode to switch to: an Akida clock mode (Performance, Economy, LowPower), a "
            "cpufreq governor (e.g. performance, powersave) or a MicroPython CPU frequency in "
            "Hz. Without it: show the mode.",
            show_default=False,
        ),
    ] = None,
    board: BoardOpt = None,
    port: PortOpt = None,
    key: KeyOpt = None,
    timeout: TimeoutOpt = 10.0,
    json_: JsonOpt = False,
) -> None:
    """Show or set the device's clock / performance mode.

    Akida clock modes where the board's power source is akida, machine.freq() on MicroPython,
    the cpufreq governor on Linux. A device without a clock it can set refuses with a one-line
    error.
    """
    with session(board, port, key, timeout) as c:
        data = c.clock(mode)
    data["board"] = c.device.get("board")
    if json_:
        _emit(data)
        return
    now = data.get("mode")
    if now is None and data.get("cpus"):
        now = ", ".join(f"{cpu} {g}" for cpu, g in data["cpus"].items())
    freq = f" at {data['freq_hz'] / 1e6:g} MHz" if data.get("freq_hz") else ""
    out.print(f"clock ({data['kind']}) on {data['board']}: [bold]{now}[/bold]{freq}")
    out.print(
        f"modes: {', '.join(data.get('modes') or []) or '-'}"
        + ("" if data.get("writable") else "  (read-only here)")
    )
