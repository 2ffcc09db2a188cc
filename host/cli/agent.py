"""``kpdev agent build|install|stop``: put the agent on a MicroPython board."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kpdev.host.boards.catalog import get_board
from kpdev.host.cli.options import (
    AgentBoardOpt,
    AgentKeyOpt,
    AgentPortOpt,
    JsonOpt,
    emit,
    err,
    out,
    sub_app,
)
from kpdev.host.errors import LinkError, UsageError
from kpdev.host.plain import human_bytes

if TYPE_CHECKING:
    from kpdev.host.agent import build as agent_build
    from kpdev.host.boards.catalog import Board

agent_app = sub_app(
    "Put the kpdev agent on a MicroPython board: build its files (.mpy compiled for the "
    "board's CPU, and a main.py that starts the agent at boot), copy them with mpremote, stop "
    "it again. Every agent command takes --json.",
    short_help="Put the kpdev agent on a MicroPython board: build, install, stop.",
)

SourceOpt = Annotated[
    bool,
    typer.Option(
        "--source",
        help="Use the .py sources instead of .mpy compiled with mpy-cross (more RAM on the "
        "board: it compiles them at import).",
    ),
]


@agent_app.command()
def build(
    board: AgentBoardOpt,
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Directory to lay the board's files out in (created if needed); its lib/kpdev "
            "is replaced.",
            show_default=False,
        ),
    ],
    source: SourceOpt = False,
    key: AgentKeyOpt = None,
    romfs_: Annotated[
        bool,
        typer.Option(
            "--romfs",
            help="Also pack lib/ into OUT/agent.romfs, a ROMFS image for boards with a ROMFS "
            "partition (MicroPython 1.25+): the agent's code then runs from flash and leaves "
            "about a third more heap free. Write it with: mpremote connect PORT romfs deploy "
            "OUT/agent.romfs, then copy main.py.",
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Lay out a MicroPython board's files: lib/kpdev/... and main.py.

    The tree is what goes on the board's flash: `kpdev agent install` copies
    it, or `mpremote connect PORT cp -r lib main.py :`. Only the backends the
    board can run go in; main.py starts the agent on the USB serial at boot.
    With --romfs, lib/ is also packed into a ROMFS image.
    """
    from kpdev.host.agent import build as agent_build
    from kpdev.host.agent import romfs
    from kpdev.host.client.session import parse_key

    b = get_board(board)
    if romfs_ and source:
        raise UsageError("--romfs packs compiled .mpy files: drop --source")
    tree = agent_build.build_tree(b, str(out_dir), source=source, key=parse_key(key))
    data = {
        "board": b.id,
        "out": str(out_dir),
        "compiled": tree.compiled,
        "march": tree.march,
        "files": tree.describe(),
        "bytes": tree.size,
    }
    if romfs_:
        image = romfs.write_image(str(out_dir / "lib"), str(out_dir / "agent.romfs"))
        data["romfs"] = {"path": image, "bytes": os.path.getsize(image)}
    if json_:
        emit(data)
        return
    out.print(
        f"{b.id}: {len(tree.files)} files, {human_bytes(tree.size)} ({tree.kind}) in {out_dir}"
    )
    if romfs_:
        out.print(f"ROMFS image: {data['romfs']['path']} ({human_bytes(data['romfs']['bytes'])})")
    if b.simulated:  # nothing to install: kpdev runs this board's agent itself
        err.print(
            f"{b.id} is simulated: kpdev starts its agent itself (serve it on a port with: "
            f"kpdev sim {b.id} --listen pty); these are the files a board of its kind would get",
            style="dim",
        )
        return
    if romfs_:
        err.print(
            f"write it with: mpremote connect PORT romfs deploy {data['romfs']['path']} "
            f"+ cp {out_dir / 'main.py'} :main.py",
            style="dim",
        )
        return
    err.print(
        f"put them on the board with: kpdev agent install --board {b.id} --port PORT",
        style="dim",
    )


def _port_of(b: Board | None, port: str | None) -> str:
    """The port given, or the board's from the catalog; raises when it is not there."""
    if port is None:
        if b is None:
            raise UsageError("pass --port (the board's serial port) or --board")
        if b.simulated:
            raise UsageError(
                f"{b.id} is simulated: kpdev starts its agent itself; pass --port for a board"
            )
        port = b.default_url()
    if "://" not in port and os.sep in port and not os.path.exists(port):
        raise LinkError(
            f"no such port {port}: plug the board in, or list the ports with: "
            "python -m mpremote devs"
        )
    return port


@agent_app.command()
def install(
    board: AgentBoardOpt,
    port: AgentPortOpt = None,
    key: AgentKeyOpt = None,
    source: SourceOpt = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", help="Seconds to wait for the agent's answer after the reset.", min=0.1
        ),
    ] = 15.0,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Build the files and list what would be copied; touch no board."
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Install the agent on a MicroPython board over its USB serial port.

    Stops an agent already running there, asks the board which MicroPython
    it runs (refusing files it could not load or that do not fit), replaces
    lib/kpdev and main.py with mpremote, soft-resets the board so that
    main.py starts the agent, and checks it with HELLO. The models the board
    stores stay.
    """
    from kpdev.host.agent import build as agent_build
    from kpdev.host.cli.render import progress_bar
    from kpdev.host.client.session import parse_key

    b = get_board(board)
    keyb = parse_key(key)
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="kpdev-agent-") as tmp:
            tree = agent_build.build_tree(b, tmp, source=source, key=keyb)
        _dry_run(b, port, tree, json_)
        return
    port = _port_of(b, port)
    say = (lambda text: None) if json_ else (lambda text: err.print(text, markup=False))
    with progress_bar(not json_, f"copy to {b.id}", unit="bytes") as progress:
        data = agent_build.install(
            b, port, key=keyb, source=source, timeout=timeout, progress=progress, say=say
        )
    info = data["agent"]
    if json_:
        emit(data)
        return
    _print_agent(info, port)


def _dry_run(b: Board, port: str | None, tree: agent_build.AgentTree, json_: bool) -> None:
    data = {
        "board": b.id,
        "port": port,
        "dry_run": True,
        "files": [dict(f, dest=":" + f["path"]) for f in tree.describe()],
        "bytes": tree.size,
    }
    if json_:
        emit(data)
        return
    from rich.table import Table

    table = Table(title=f"would copy to {port or b.id} ({tree.kind})")
    table.add_column("file on the board")
    table.add_column("size", justify="right")
    for rel, size in tree.files:
        table.add_row(rel, human_bytes(size))
    table.add_row(f"{len(tree.files)} files", human_bytes(tree.size), style="bold")
    out.print(table)


def _print_agent(info: dict[str, Any], port: str) -> None:
    from rich.table import Table

    table = Table(show_header=False, title=f"kpdev agent answers on {port}")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("board", str(info.get("board")))
    table.add_row("agent", f"{info.get('agent')} (protocol {info.get('proto')})")
    table.add_row(
        "runtime", f"{info.get('runtime')} {info.get('runtime_version')} ({info.get('platform')})"
    )
    backends = info.get("backends") or {}
    table.add_row(
        "backends", ", ".join(f"{k} {v}" for k, v in backends.items()) or "none on this runtime"
    )
    for k, v in (info.get("memory") or {}).items():
        table.add_row(k.replace("_", " "), human_bytes(v))
    st = info.get("storage") or {}
    used, quota = human_bytes(st.get("used")), human_bytes(st.get("quota"))
    table.add_row("storage", f"{used} used of {quota}")
    table.add_row("authenticated", "yes" if info.get("auth") else "no")
    out.print(table)


@agent_app.command()
def stop(
    port: AgentPortOpt = None,
    board: Annotated[
        str | None,
        typer.Option(
            "--board",
            "-b",
            help="Board from the catalog, for its default port and baud rate; default "
            "$KPDEV_BOARD.",
            envvar="KPDEV_BOARD",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Stop the agent on a board and give its USB serial port back to the REPL.

    For mpremote, Thonny or a terminal, which cannot stop the agent: it reads
    Ctrl-C as data. The agent starts again at the next reset; to keep it off,
    create the file kpdev-off on the board:
    `mpremote connect PORT fs touch :kpdev-off`.
    """
    from kpdev.host.agent import build as agent_build

    b = get_board(board) if board else None
    port = _port_of(b, port)
    baud = int(b.link.get("baud", 115200)) if b else 115200
    if not agent_build.stop_agent(port, baud):
        raise LinkError(
            f"no REPL prompt on {port} after stopping the agent (an agent that holds a key "
            f"never gives the console back): see what it prints with: mpremote connect {port} repl"
        )
    if json_:
        emit({"port": port, "stopped": True})
        return
    out.print(f"the REPL has {port} until the next reset")
