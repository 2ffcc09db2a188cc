"""``kpdev sim``: simulated boards that run in the background, and serving one on a pty or TCP."""

from __future__ import annotations

import signal
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from kpdev.host.boards.catalog import Board, get_board, load_boards
from kpdev.host.cli.options import JsonOpt, KeyOpt, emit, err, out
from kpdev.host.errors import UsageError

if TYPE_CHECKING:  # imported where used, so that commands start fast
    from rich.table import Table


_ACTIONS = ("start", "stop", "status", "list", "serve")


def _simulated(name: str | None, action: str) -> Board:
    if not name:
        raise UsageError(f"kpdev sim {action} needs a board, e.g. kpdev sim {action} sim-mcu")
    b = get_board(name)
    if not b.simulated:
        raise UsageError(f"{name} is a real board; `kpdev sim` runs simulated ones only")
    return b


def _ago(t: float | None) -> str:
    if not t:
        return "-"
    s = max(0.0, time.time() - t)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _status_rows(items: list[dict]) -> Table:
    from rich.table import Table

    table = Table(title="simulated boards")
    for col in ("board", "state", "up for", "agent pid", "reboots", "in use by", "idle stop"):
        table.add_column(col, no_wrap=col == "board")
    for d in items:
        running = d.get("running")
        table.add_row(
            d["board"],
            "running" if running else "stopped",
            _ago(d.get("agent_started")) if running else "-",
            str(d.get("agent_pid") or "-") if running else "-",
            str(d.get("reboots", "-")) if running else "-",
            d.get("in_use_by") or "-",
            (f"{d['idle_s']:g} s" if d.get("idle_s") else "never") if running else "-",
        )
    return table


def sim(
    what: Annotated[
        str | None,
        typer.Argument(
            metavar="ACTION|BOARD",
            help="start, stop, status or list (then the board); or a simulated board to "
            "serve with --listen.",
            show_default=False,
        ),
    ] = None,
    board: Annotated[
        str | None,
        typer.Argument(metavar="BOARD", help="The board, after an action.", show_default=False),
    ] = None,
    listen: Annotated[
        str,
        typer.Option(
            "--listen",
            help="Serve the board for another program: pty (prints the /dev/pts path) or "
            "tcp://HOST:PORT (port 0 picks a free one).",
        ),
    ] = "pty",
    key: KeyOpt = None,
    insecure: Annotated[
        bool,
        typer.Option("--insecure", help="Allow TCP beyond loopback without a key."),
    ] = False,
    idle: Annotated[
        float | None,
        typer.Option(
            "--idle",
            help="start: stop the board after this many seconds with no command "
            "(0: never; default $KPDEV_SIM_IDLE or 1800).",
            min=0,
            show_default=False,
        ),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="stop: every running simulated board.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Run simulated boards in the background, as plugged-in boards are.

    A simulated board starts on the first command that names it (--board sim-...) and keeps
    running between commands, with its RAM (statistics, uptime, what a learner learned) and
    its files, until `kpdev sim stop` or an idle time; `kpdev reboot` restarts its agent.

      kpdev sim list                      every simulated board, running or not
      kpdev sim start sim-mcu [--idle S]  start it now (with --key: it requires the key)
      kpdev sim status sim-mcu            pid, uptime, reboots, who is using it
      kpdev sim stop sim-mcu | --all      stop it (RAM is lost, files stay)
      kpdev sim sim-mcu --listen pty      serve it on a pty, as a USB board appears
      kpdev sim sim-linux --listen tcp://127.0.0.1:5555

    A served board is in use while a program has the pty open (or a TCP connection); other
    commands wait their turn.
    """
    from kpdev.host.boards import simserver
    from kpdev.host.client.session import parse_key

    if what is None:
        what = "list"
    if what in _ACTIONS:
        action, name = what, board
    else:
        action, name = "serve", what
        if board is not None:
            raise UsageError(
                f"unexpected {board!r}: write kpdev sim BOARD --listen ..., "
                f"or kpdev sim {'|'.join(_ACTIONS)} BOARD"
            )
    if action == "list":
        items = [simserver.status(b) for b in load_boards().values() if b.simulated]
        # Running instances of a board (sim-mcu#2, started by a fleet) after the catalog's own.
        items += [d for d in simserver.running_boards() if "#" in d["board"]]
        if json_:
            emit(items)
        else:
            out.print(_status_rows(items))
        return
    if action == "stop":
        if all_:
            stopped = simserver.stop_all()
        else:
            b = _simulated(name, action)
            stopped = [b.id] if simserver.stop(b) else []
        if json_:
            emit({"stopped": stopped})
        elif stopped:
            out.print(f"stopped {', '.join(stopped)}")
        else:
            out.print("no simulated board was running" + (f" as {name}" if name else ""))
        return
    b = _simulated(name, action)
    keyb = parse_key(key)
    if action == "status":
        data = simserver.status(b)
        emit(data) if json_ else out.print(_status_rows([data]))
        return
    if action == "start":
        data = simserver.ensure_running(b, keyb, idle_s=idle)
        if json_:
            emit(data)
        else:
            out.print(
                f"{b.id} running (server pid {data['pid']}, agent pid {data['agent_pid']}"
                + (", key required" if data.get("auth") else "")
                + ")"
            )
        return
    _serve(b, keyb, listen, insecure, json_)


def _serve(b: Board, keyb: bytes | None, listen: str, insecure: bool, json_: bool) -> None:
    from kpdev.device.links import is_loopback
    from kpdev.host.boards import simbridge

    stopping = []

    def _stop(signum, frame):  # `kill` of this process ends the serving; the board runs on
        stopping.append(signum)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)

    def announce(url: str) -> None:
        import os

        if json_:
            emit({"board": b.id, "port": url, "pid": os.getpid()})
        else:
            err.print(f"[bold]{b.name}[/bold] serving on [cyan]{url}[/cyan]  (Ctrl-C to stop)")
            out.print(url)
        sys.stdout.flush()

    def log(text: str) -> None:
        if not json_:
            err.print(f"[dim]{text}[/dim]")

    try:
        if listen == "pty":
            simbridge.serve_pty(b, keyb, announce, log, stop=lambda: bool(stopping))
        elif listen.startswith("tcp://"):
            host, _, port_text = listen[6:].rpartition(":")
            host = host.strip("[]")
            if not host or not port_text.isdigit():
                raise UsageError(f"bad --listen {listen!r}: use tcp://HOST:PORT or pty")
            if not is_loopback(host) and not keyb and not insecure:
                raise UsageError(
                    f"refusing to listen on {host} without a key: pass --key (or set KPDEV_KEY),"
                    " or --insecure to allow anyone on the network"
                )

            def announce_tcp(h: str, port: int) -> None:
                announce(f"socket://{'[' + h + ']' if ':' in h else h}:{port}")

            simbridge.serve_tcp(
                b, keyb, host, int(port_text), announce_tcp, log, stop=lambda: bool(stopping)
            )
        else:
            raise UsageError(f"bad --listen {listen!r}: use pty or tcp://HOST:PORT")
    except KeyboardInterrupt:
        pass
