"""Options and consoles the CLI's command modules share (host/cli/app.py, cli_power.py, ...).

Only the CLI uses Rich: these consoles are the one place output goes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kpdev.host.cli.render import jsonable
from kpdev.host.config import default_board
from kpdev.host.errors import UsageError
from kpdev.protocol.errors import KpdevError

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def complete_board(incomplete: str) -> list[str]:
    """Board ids from the catalog that start with what was typed (shell completion)."""
    from kpdev.host.boards.catalog import load_boards

    try:
        return [bid for bid in load_boards() if bid.startswith(incomplete)]
    except KpdevError:
        return []


def default_board_option(ctx: typer.Context, value: str | None) -> str | None:
    """--board as given; without --board and --port, the user's default board, named in one
    dim line on stderr (stdout stays clean for --json).

    Click handles the options typed on the command line before the others, so when --board was
    not typed, a --port that was is already in ``ctx.params``.
    """
    if value is not None or ctx.resilient_parsing or ctx.params.get("port"):
        return value
    choice = default_board()
    if choice is None:
        return None  # the command says how to choose one when it needs a board
    name, source = choice
    err.print(f"using board {name} (from {source})", style="dim", markup=False, soft_wrap=True)
    return name


BoardOpt = Annotated[
    str | None,
    typer.Option(
        "--board",
        "-b",
        help="Board from the catalog (see `kpdev boards`); default: $KPDEV_BOARD, else the "
        "board set with `kpdev config set board NAME`.",
        callback=default_board_option,
        autocompletion=complete_board,
        show_default=False,
    ),
]
PortOpt = Annotated[
    str | None,
    typer.Option(
        "--port",
        "-p",
        help="Device link: /dev/ttyACM0, /dev/pts/N, socket://HOST:PORT or rfc2217://HOST:PORT.",
        show_default=False,
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="Pre-shared key (hex) to authenticate frames; default $KPDEV_KEY.",
        envvar="KPDEV_KEY",
        show_default=False,
        show_envvar=False,
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON on stdout, nothing else.")
]
ForceOpt = Annotated[
    bool,
    typer.Option("--force", help="Overwrite the output file when it exists."),
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for each device reply.", min=0.1)
]


def emit(data: Any) -> None:
    """One JSON document on stdout (the whole of stdout under --json)."""
    sys.stdout.write(json.dumps(jsonable(data), indent=2) + "\n")


def log_event(op: int, body: Any) -> None:
    """A device LOG event, dimmed on stderr."""
    if isinstance(body, dict) and "msg" in body:
        err.print(f"[dim]device {body.get('lvl', 'log')}: {body['msg']}[/dim]")


def count_progress(enabled: bool) -> Progress:
    """A Rich progress bar counting items, on stderr; off for --json and when not a terminal
    (into a pipe or a log a failing command must leave one line on stderr)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not enabled or not err.is_terminal,
    )


@contextmanager
def progress_bar(enabled: bool, what: str, total: int | None = None) -> Iterator[Callable]:
    """A ``count_progress`` bar with one task; yields the ``progress(done, total)`` callback."""
    with count_progress(enabled) as bar:
        task = bar.add_task(what, total=total)

        def progress(done: int, n: int) -> None:
            bar.update(task, completed=done, total=n)

        yield progress


def parse_window(text: str | None) -> tuple[int, int] | None:
    """``--window SIZE,STRIDE`` -> (size, stride); UsageError saying how to write it."""
    if text is None:
        return None
    size, sep, stride = text.partition(",")
    if not sep or not size.strip().isdigit() or not stride.strip().isdigit():
        raise UsageError(f"--window {text!r}: write it as SIZE,STRIDE in samples, e.g. 100,50")
    if int(size) < 1 or int(stride) < 1:
        raise UsageError(f"--window {text!r}: size and stride must be at least 1")
    return int(size), int(stride)
