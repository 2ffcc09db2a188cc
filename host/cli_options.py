"""Options and consoles the CLI's command modules share (host/cli.py, cli_power.py, ...).

Only the CLI uses Rich: these consoles are the one place output goes.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

BoardOpt = Annotated[
    str | None,
    typer.Option(
        "--board",
        "-b",
        help="Board from the catalog (see `kpdev boards`); default $KPDEV_BOARD or sim-mcu.",
        envvar="KPDEV_BOARD",
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
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for each device reply.", min=0.1)
]
