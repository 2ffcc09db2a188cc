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
from kpdev.host.cli.lazy import epilog, mount, typed
from kpdev.host.cli.options import emit
from kpdev.host.errors import AuthError, BoardError, ConfigError, LinkError, UsageError
from kpdev.protocol.errors import DeviceError, KpdevError, ProtocolError

# (help panel, [(name, "module:attribute" in kpdev.host.cli, the line the help shows)]), in the
# order `kpdev --help` shows them.  A module is imported when its command runs (or its help is
# asked for), not to list it (host/cli/lazy.py); tests/cli/test_cli_startup.py checks each line
# against the command's own help (its short_help, else the first paragraph of its help).
COMMANDS = (
    (
        "Boards",
        (
            ("boards", "boards:boards",
             "List the boards in the catalog: the shipped boards.yml merged with your own."),
            ("ports", "boards:ports",
             "List serial ports, the catalog board each one matches, and whether an agent "
             "answers."),
            ("sim", "sim:sim",
             "Run simulated boards in the background, as plugged-in boards are."),
            ("fleet", "fleet:fleet_app",
             "Named fleets of boards: kpdev eval/deploy/profile/info/stats --fleet NAME run on "
             "all of them at once."),
        ),
    ),
    (
        "Device",
        (
            ("info", "device:info",
             "Show the agent: versions, runtime, backends, memory, storage, link limits."),
            ("ping", "device:ping", "Measure round trips to the agent."),
            ("stats", "device:stats",
             "Show the agent's counters: frames, errors, inference latency and energy, memory, "
             "uptime."),
            ("infer", "device:infer",
             "Run inference on the device; a batch is pipelined within the agent's window."),
            ("reboot", "device:reboot", "Restart the agent (a hard reset on a microcontroller)."),
            ("repl", "device:repl", "Open the on-device REPL."),
        ),
    ),
    (
        "Models and packs",
        (
            ("deploy", "model:deploy",
             "Upload a Knowledge Pack or a model to the device and activate it."),
            ("models", "model:models", "List the models stored on the device."),
            ("model", "model:model_app", "Inspect and manage the models stored on a device."),
            ("pack", "pack:pack_app",
             "Build and inspect Knowledge Packs (.kp): models, pipeline, test vectors."),
        ),
    ),
    (
        "Measure",
        (
            ("eval", "evaluate:eval_",
             "Evaluate a pack or model on the device against a dataset's test split."),
            ("profile", "evaluate:profile",
             "Time each stage on the device: every feature generator, scaling, each model."),
            ("recognize", "evaluate:recognize",
             "Run a raw recording through a pack's pipeline and models; print the class of "
             "each window."),
            ("report", "report:report",
             "Write a Markdown and an HTML report with figures from measurements files."),
            ("power", "power:power_app",
             "Measure the device's power: a sensor, the SoC's meter, or the board's power model "
             "(labelled estimated)."),
            ("clock", "power:clock", "Show or set the device's clock / performance mode."),
        ),
    ),
    (
        "Learn on the device",
        (
            ("learn", "learn:learn_app",
             "Edge-learning sessions: teach the device, keep it, export it as a pack."),
        ),
    ),
    (
        "Set up",
        (
            ("demo", "demo:demo",
             "Run the whole job on a simulated board: build a Knowledge Pack for a real motion "
             "dataset (UEA BasicMotions), deploy it, evaluate it on the held-out recordings, "
             "profile each stage, recognize a continuous recording and write a report "
             "(Markdown and HTML with figures)."),
            ("agent", "agent:agent_app",
             "Put the kpdev agent on a MicroPython board: build, install, stop."),
            ("firmware", "firmware:firmware_app",
             "Build MicroPython firmware for the emulated Cortex-M boards."),
            ("config", "config:config_app", "Your settings: the default board."),
            ("doctor", "doctor:doctor",
             "Check this machine for kpdev, one line per check, each problem with what to do."),
        ),
    ),
)  # fmt: skip


app = typer.Typer(
    name="kpdev",
    help="Put ML models on small devices and measure them there.\n\n"
    "Every device command runs against a board from the catalog (--board) or a port "
    "(--port). A simulated board given with --board and no --port starts in the background "
    "on first use and keeps running like a plugged-in board (kpdev sim list|stop), so "
    "everything works with no hardware.",
    epilog=epilog(COMMANDS),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Click's plain help for the root: Typer's Rich formatter imports rich.markdown and
    # rich.traceback whatever the help holds, several times `python -c pass` (bench/cli_speed.py).
    # The commands' own help is Typer's, as it always was.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Shell completion walks every command's options: there, the commands themselves.
mount(app, COMMANDS, now=bool(os.environ.get("_KPDEV_COMPLETE")))


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"kpdev {__version__}\n")
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
    typed(args)
    try:
        code = app(args=args, prog_name="kpdev", standalone_mode=False)
    except typer.TyperException as e:  # usage errors: unknown option, missing argument, ...
        if type(e).__name__ == "NoArgsIsHelpError":  # a group given no command: its help
            text = e.format_message()  # empty when Typer's Rich help printed it already
            if text.strip():
                sys.stdout.write(text + "\n")
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
