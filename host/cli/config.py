"""``kpdev config get|set|unset|path``: the user's settings file (host/config.py)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from kpdev.host import config
from kpdev.host.cli.options import JsonOpt, complete_board, emit, err, out, sub_app
from kpdev.protocol.errors import KpdevError

_KEYS_HELP = "; ".join(f"{k}: {v}" for k, v in config.KEYS.items())


def _say(text: str) -> None:
    # Paths and values verbatim: no markup, no highlighting, never wrapped by Rich.
    out.print(text, markup=False, highlight=False, soft_wrap=True)


config_app = sub_app(
    "Your kpdev settings, kept in a TOML file: $KPDEV_CONFIG, else "
    "$XDG_CONFIG_HOME/kpdev/config.toml, else ~/.config/kpdev/config.toml (`kpdev config path` "
    f"prints it). Keys: {_KEYS_HELP}. Every config command takes --json.",
    short_help="Your settings: the default board.",
)

KeyArg = Annotated[
    str,
    typer.Argument(metavar="KEY", help=f"One of: {', '.join(config.KEYS)}.", show_default=False),
]


def _complete_value(ctx: typer.Context, incomplete: str) -> list[str]:
    return complete_board(incomplete) if ctx.params.get("key") == "board" else []


@config_app.command("get")
def get(
    key: Annotated[
        str | None,
        typer.Argument(
            metavar="KEY",
            help=f"One of: {', '.join(config.KEYS)}; default: every setting.",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Print a setting's value (exit 1 when it is not set), or every setting."""
    path = config.config_path()
    settings = config.read_config(path)
    env_board = os.environ.get("KPDEV_BOARD")
    if key is not None:
        config.check_key(key)
        if key not in settings:
            raise KpdevError(f"{key} is not set in {path}; set it with: kpdev config set {key} …")
        if json_:
            emit({"path": path, "key": key, "value": settings[key]})
        else:
            _say(settings[key])
        if key == "board" and env_board:
            err.print(f"KPDEV_BOARD={env_board} overrides it", style="dim", markup=False)
        return
    if json_:
        emit({"path": path, "exists": path.exists(), "settings": settings})
        return
    if not settings:
        err.print(f"no settings in {path}", style="dim", markup=False)
    for k, v in sorted(settings.items()):
        _say(f'{k} = "{v}"')
    if env_board and "board" in settings:
        err.print(f"KPDEV_BOARD={env_board} overrides board", style="dim", markup=False)


@config_app.command("set")
def set_(
    key: KeyArg,
    value: Annotated[
        str,
        typer.Argument(
            metavar="VALUE",
            help="The new value; a board must be in the catalog (`kpdev boards`).",
            autocompletion=_complete_value,
            show_default=False,
        ),
    ],
    json_: JsonOpt = False,
) -> None:
    """Set a setting, e.g. `kpdev config set board sim-mcu`."""
    path = config.set_value(key, value)
    if json_:
        emit({"path": path, "key": key, "value": value})
        return
    _say(f"{key} = {value} in {path}")


@config_app.command("unset")
def unset(key: KeyArg, json_: JsonOpt = False) -> None:
    """Remove a setting; its default applies again."""
    path = config.config_path()
    removed = config.unset_value(key)
    if json_:
        emit({"path": path, "key": key, "removed": removed})
        return
    _say(f"removed {key} from {path}" if removed else f"{key} was not set in {path}")


@config_app.command("path")
def path(json_: JsonOpt = False) -> None:
    """Print where the config file is, whether or not it exists yet.

    For an editor or a script: `$EDITOR "$(kpdev config path)"`. With --json, also the
    user's board catalog (boards.yml beside it) and whether each exists.
    """
    cfg = config.config_path()
    catalog = config.user_catalog_path()
    if json_:
        emit(
            {
                "config": cfg,
                "exists": cfg.exists(),
                "catalog": catalog,
                "catalog_exists": catalog.exists(),
            }
        )
        return
    _say(str(cfg))
