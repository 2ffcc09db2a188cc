"""The ``kpdev`` root app: every command and sub-app mounted in one place, and ``main()``, the
one place errors are caught and turned into a line on stderr and an exit code.

Commands live in one module per noun (see ``kpdev.host.cli``); this module only mounts them, in
the help panels a user reads them in.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from kpdev import __version__
from kpdev.host.cli import (
    agent,
    boards,
    config,
    demo,
    device,
    doctor,
    evaluate,
    firmware,
    fleet,
    learn,
    model,
    pack,
    power,
    report,
    sim,
)
from kpdev.host.cli.options import emit, out
from kpdev.host.errors import AuthError, BoardError, ConfigError, LinkError, UsageError
from kpdev.protocol.errors import DeviceError, KpdevError, ProtocolError

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

# (help panel, [(name, command function or sub-app)]), in the order `kpdev --help` shows them.
COMMANDS = (
    (
        "Boards",
        [
            ("boards", boards.boards),
            ("ports", boards.ports),
            ("sim", sim.sim),
            ("fleet", fleet.fleet_app),
        ],
    ),
    (
        "Device",
        [
            ("info", device.info),
            ("ping", device.ping),
            ("stats", device.stats),
            ("infer", device.infer),
            ("reboot", device.reboot),
            ("repl", device.repl),
        ],
    ),
    (
        "Models and packs",
        [
            ("deploy", model.deploy),
            ("models", model.models),
            ("model", model.model_app),
            ("pack", pack.pack_app),
        ],
    ),
    (
        "Measure",
        [
            ("eval", evaluate.eval_),
            ("profile", evaluate.profile),
            ("recognize", evaluate.recognize),
            ("report", report.report),
            ("power", power.power_app),
            ("clock", power.clock),
        ],
    ),
    ("Learn on the device", [("learn", learn.learn_app)]),
    (
        "Set up",
        [
            ("demo", demo.demo),
            ("agent", agent.agent_app),
            ("firmware", firmware.firmware_app),
            ("config", config.config_app),
            ("doctor", doctor.doctor),
        ],
    ),
)
for _panel, _entries in COMMANDS:
    for _name, _entry in _entries:
        if isinstance(_entry, typer.Typer):
            app.add_typer(_entry, name=_name, rich_help_panel=_panel)
        else:
            app.command(name=_name, rich_help_panel=_panel)(_entry)


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
