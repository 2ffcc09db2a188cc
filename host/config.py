"""The user's kpdev configuration: a small TOML file of ``key = "value"`` lines.

It lives at ``$KPDEV_CONFIG``, else ``$XDG_CONFIG_HOME/kpdev/config.toml``, else
``~/.config/kpdev/config.toml``; the user's own board catalog (``boards.yml``) sits beside it.
kpdev writes the file itself (``kpdev config set``), atomically, one ``key = "value"`` line a
key; it reads any TOML whose values for kpdev's keys are strings.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from kpdev.host.atomic import write_atomic
from kpdev.host.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the flat key = "value" files kpdev writes
    tomllib = None

# Every key the file may hold, and what it means (kpdev config --help lists them).
KEYS = {
    "board": "default board for device commands when neither --board nor --port is given "
    "(an id from `kpdev boards`); $KPDEV_BOARD overrides it",
    "labgrid-coordinator": "the labgrid coordinator (HOST[:PORT], port 20408 by default) whose "
    "places --place and place: fleet members name (docs/labgrid.md); $LG_COORDINATOR overrides it",
}
CATALOG_NAME = "boards.yml"
_LINE = re.compile(r'^\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*")\s*(?:#.*)?$')


def config_path() -> Path:
    """The config file: $KPDEV_CONFIG, else $XDG_CONFIG_HOME/kpdev/config.toml, else
    ~/.config/kpdev/config.toml (it need not exist)."""
    env = os.environ.get("KPDEV_CONFIG")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "kpdev" / "config.toml"


def user_catalog_path() -> Path:
    """The user's own board catalog, beside the config file (it need not exist)."""
    return config_path().parent / CATALOG_NAME


def _parse(text: str, path: Path) -> dict:
    if tomllib is not None:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config {path} is not valid TOML: {e}") from None
    data = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise ConfigError(f'config {path}, line {n}: write it as key = "value"')
        data[m.group(1)] = json.loads(m.group(2))
    return data


def read_config(path: Path | None = None) -> dict[str, str]:
    """The settings in the config file ({} when there is none); ConfigError naming the file
    and the problem when kpdev cannot use it."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config {path}: {getattr(e, 'strerror', None) or e}")
    data = _parse(text, path)
    for key, value in data.items():
        if key not in KEYS:
            raise ConfigError(f"config {path}: unknown key {key!r}; kpdev knows {_known()}")
        if not isinstance(value, str):
            raise ConfigError(f'config {path}: {key} must be a string, e.g. {key} = "..."')
    return data


def _known() -> str:
    return ", ".join(KEYS)


def check_key(key: str) -> str:
    """``key`` when kpdev knows it; ConfigError listing the known keys otherwise."""
    if key not in KEYS:
        raise ConfigError(f"unknown config key {key!r}; kpdev knows {_known()}")
    return key


def _write(data: dict[str, str], path: Path) -> Path:
    lines = ["# kpdev configuration (kpdev config set KEY VALUE writes this file)"]
    # json.dumps escapes as a TOML basic string does (\" \\ \n \uXXXX).
    lines += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in sorted(data.items())]
    text = "\n".join(lines) + "\n"
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def set_value(key: str, value: str) -> Path:
    """Set ``key`` to ``value`` in the config file (created if needed); the file's path.

    A board must be in the catalog (BoardError listing the known ones otherwise).
    """
    check_key(key)
    if key == "board":
        from kpdev.host.boards.catalog import get_board

        get_board(value)
    path = config_path()
    data = read_config(path)
    data[key] = value
    return _write(data, path)


def unset_value(key: str) -> bool:
    """Remove ``key`` from the config file; whether it was there."""
    check_key(key)
    path = config_path()
    data = read_config(path)
    if key not in data:
        return False
    del data[key]
    _write(data, path)
    return True


def default_board() -> tuple[str, str] | None:
    """The board to use when none is named, and where that choice comes from:
    ($KPDEV_BOARD, "KPDEV_BOARD"), else (the config's board, its path); None when neither."""
    env = os.environ.get("KPDEV_BOARD")
    if env:
        return env, "KPDEV_BOARD"
    path = config_path()
    name = read_config(path).get("board")
    if name:
        return name, str(path)
    return None


NO_BOARD = (
    "no board given: pass --board NAME (see kpdev boards) or --port PORT, set KPDEV_BOARD, "
    "or choose a default with: kpdev config set board NAME"
)
