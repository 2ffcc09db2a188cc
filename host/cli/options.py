"""What the CLI's command modules share: option types, consoles, output and parsing helpers.

- The ``Annotated`` option types, defined once with one help text each: ``BoardOpt``,
  ``PortOpt``, ``KeyOpt``, ``JsonOpt``, ``TimeoutOpt``, ``ForceOpt``; the data options
  ``DatasetOpt``, ``WindowOpt``, ``FractionOpt``, ``SeedOpt``; the ``Agent*Opt`` variants that
  say what board, port and key mean when installing the agent.
- ``sub_app(help)``: every sub-app (``kpdev pack``, ``kpdev model``, ...) made the same way.
- ``session(...)``: a connected client for a command.
- ``out``/``err`` (the consoles: only the CLI uses Rich, and this is where its output goes),
  ``emit`` (the one JSON document of --json), ``log_event``.
- Parsing of option values: ``parse_window``, ``parse_number``, ``key_value``; ``single``
  (one board, or a fleet?).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from kpdev.host.config import default_board
from kpdev.host.errors import UsageError
from kpdev.host.plain import jsonable
from kpdev.protocol.errors import KpdevError


class _Console:
    """A Rich console made on first use: a command that prints nothing through Rich (``--json``,
    ``--help``) does not import it.  Stands in for ``rich.console.Console`` (attributes, and
    ``with`` as Rich's Live uses it)."""

    def __init__(self, **settings: Any) -> None:
        self._settings = settings
        self._console = None

    def _real(self):
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._settings)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def __enter__(self):
        return self._real().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._real().__exit__(*exc)


out = _Console(highlight=False)
err = _Console(stderr=True, highlight=False)


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


def default_boards_option(ctx: typer.Context, value: list[str] | None) -> list[str]:
    """--board of a command that takes several boards: as given; with no --board, --port,
    --fleet or --place, the user's default board as ``default_board_option`` finds it."""
    if value or ctx.resilient_parsing:
        return list(value or [])
    if any(ctx.params.get(k) for k in ("port", "fleet", "place")):
        return []
    name = default_board_option(ctx, None)
    return [name] if name else []


# Commands that run on several boards at once (eval, profile, deploy, info, stats) take these;
# one --board or --port runs exactly as the one-board commands do.
BoardsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--board",
        "-b",
        metavar="BOARD",
        help="Board from the catalog (see `kpdev boards`); repeat it or list several with commas "
        "for a fleet, and write sim-mcu*3 for three instances of a simulated board (each its "
        "own agent and storage; instance 2 is sim-mcu#2). Default: $KPDEV_BOARD, else the board "
        "set with `kpdev config set board NAME`.",
        callback=default_boards_option,
        autocompletion=complete_board,
        show_default=False,
    ),
]
PortsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--port",
        "-p",
        metavar="PORT",
        help="Device link: /dev/ttyACM0, /dev/pts/N, socket://HOST:PORT or rfc2217://HOST:PORT; "
        "repeat it for a fleet.",
        show_default=False,
    ),
]
FleetOpt = Annotated[
    str | None,
    typer.Option(
        "--fleet",
        "-F",
        metavar="NAME",
        help="A named fleet (kpdev fleet add NAME MEMBER...): run on all its members at once.",
        show_default=False,
    ),
]
PlaceOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--place",
        metavar="PATTERN",
        help="labgrid place name or pattern (lab-pico-*), repeatable: acquired for the run and "
        "released after it; coordinator from $LG_COORDINATOR or `kpdev config set "
        "labgrid-coordinator HOST:PORT`. Needs labgrid (kpdev's fleet extra).",
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

# Data: a dataset, how to cut its recordings into windows, and its train/test split.
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        "-d",
        metavar="SPEC",
        help="Labelled data: a .npz (x, y[, classes, axes, fold]), a UEA/UCR .ts file (its "
        "TRAIN/TEST sibling gives the split), a CSV recording or a folder of them, a folder of "
        "WAV folders (one per class), or sklearn:digits.",
        show_default=False,
    ),
]
WindowOpt = Annotated[
    str | None,
    typer.Option(
        "--window",
        metavar="SIZE,STRIDE",
        help="Window size and stride in samples, to cut recordings (CSV, WAV) into windows; "
        "default: the pack pipeline's window.",
        show_default=False,
    ),
]
FractionOpt = Annotated[
    float | None,
    typer.Option(
        "--test-fraction",
        metavar="F",
        help="Share of each class held out for testing (stratified); default: the dataset's own "
        "split when it has one (UEA TRAIN/TEST, an npz fold), else 0.25.",
        min=0.01,
        max=0.99,
        show_default=False,
    ),
]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed of the train/test split (and of test vectors).")
]

# Installing the agent: board, port and key say what they mean there (no default board from
# the config: the board to install for is named; the key is written into the board's main.py).
AgentBoardOpt = Annotated[
    str,
    typer.Option(
        "--board",
        "-b",
        help="Board from the catalog (see `kpdev boards`), e.g. rpi-pico; default $KPDEV_BOARD.",
        envvar="KPDEV_BOARD",
        autocompletion=complete_board,
        show_default=False,
    ),
]
AgentPortOpt = Annotated[
    str | None,
    typer.Option(
        "--port",
        "-p",
        help="The board's USB serial port, e.g. /dev/ttyACM0 or COM3; default: the board's "
        "port from the catalog.",
        show_default=False,
    ),
]
AgentKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="Pre-shared key (hex) the agent will require on every frame; default $KPDEV_KEY. "
        "It is stored in the board's main.py.",
        envvar="KPDEV_KEY",
        show_default=False,
        show_envvar=False,
    ),
]


def sub_app(help: str, **settings: Any) -> typer.Typer:
    """A sub-app (``kpdev NOUN VERB``), all made alike: -h and --help, and its help shown when
    given no verb (unless ``settings`` say otherwise: a noun that acts without a verb)."""
    settings.setdefault("no_args_is_help", not settings.get("invoke_without_command"))
    return typer.Typer(
        help=help,
        context_settings={"help_option_names": ["-h", "--help"]},
        **settings,
    )


def session(board: str | None, port: str | None, key: str | None, timeout: float = 10.0):
    """A connected client for a command (a context manager); device LOG events go to stderr,
    and a simulated board starts in the background on first use."""
    from kpdev.host.client.session import open_session

    return open_session(board, port, key, timeout=timeout, on_event=log_event)


def escape(text: str) -> str:
    """``text`` with Rich markup escaped (``rich.markup.escape``, imported when first used: a
    module that only might draw a table need not load Rich to start)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def emit(data: Any) -> None:
    """One JSON document on stdout (the whole of stdout under --json)."""
    sys.stdout.write(json.dumps(jsonable(data), indent=2) + "\n")


def log_event(op: int, body: Any) -> None:
    """A device LOG event, dimmed on stderr."""
    if isinstance(body, dict) and "msg" in body:
        err.print(f"[dim]device {body.get('lvl', 'log')}: {body['msg']}[/dim]")


def single(
    boards: list[str] | None, ports: list[str] | None, fleet: str | None, places: list[str] | None
) -> tuple[str | None, str | None] | None:
    """(board, port) when the command runs on one board, exactly as the one-board commands;
    None when the options select a fleet (several, sim-mcu*N, --fleet, --place): then the
    command runs through ``kpdev.host.cli.fleet``, imported only for that."""
    boards, ports = list(boards or []), list(ports or [])
    if fleet or places or len(boards) + len(ports) > 1:
        return None
    if boards and ("*" in boards[0] or "," in boards[0]):
        return None
    if ports and "," in ports[0]:
        return None
    return (boards[0] if boards else None, ports[0] if ports else None)


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


def parse_number(text: str) -> Any:
    """An option value: an int or a float when it reads as one, else the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def key_value(item: str, option: str, example: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value as ``parse_number`` reads it); UsageError saying how to
    write it."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{option} {item!r}: write it as KEY=VALUE, e.g. {example}")
    return key.strip(), parse_number(value.strip())
