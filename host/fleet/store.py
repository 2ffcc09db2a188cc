"""Named fleets: ``kpdev fleet add NAME MEMBER...``, kept in fleets.json beside the user's
config file (replaced whole on every change, never half-written)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from kpdev.host.atomic import write_atomic
from kpdev.host.config import config_path
from kpdev.host.errors import ConfigError, UsageError

FLEETS_NAME = "fleets.json"
KIND = "kpdev-fleets"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def fleets_path() -> Path:
    """Where named fleets are kept: fleets.json beside the config file."""
    return config_path().parent / FLEETS_NAME


def read_fleets(path: Path | None = None) -> dict[str, list[str]]:
    """Every named fleet, {name: [member as written]}; empty when the file does not exist."""
    path = path or fleets_path()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read the named fleets ({e}); fix or remove it")
    fleets = doc.get("fleets") if isinstance(doc, dict) else None
    if not isinstance(fleets, dict) or not all(
        isinstance(v, list) and all(isinstance(m, str) for m in v) for v in fleets.values()
    ):
        raise ConfigError(f'{path}: not a kpdev fleets file ("fleets": {{NAME: [MEMBER, ...]}})')
    return fleets


def _write(fleets: dict[str, list[str]]) -> Path:
    path = fleets_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"kind": KIND, "fleets": fleets}, indent=2) + "\n"
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def add_fleet(name: str, members: list[str], replace: bool = False) -> Path:
    """Store fleet ``name``; members are checked as a run would read them (places are only
    resolved when used).  UsageError for a bad name, an empty or wrong member, or a fleet of
    that name already there (unless ``replace``)."""
    from kpdev.host.fleet.select import Selection, check_unique

    if not _NAME.match(name):
        raise UsageError(f"fleet name {name!r}: use 1-64 of A-Z a-z 0-9 _ . - (e.g. lab-picos)")
    if not members:
        raise UsageError(f"fleet {name}: give at least one member (a board, a port, place:NAME)")
    sel = Selection()
    for m in members:
        sel.add(m)
    check_unique(sel.members)
    fleets = read_fleets()
    if name in fleets and not replace:
        raise UsageError(
            f"fleet {name} exists ({' '.join(fleets[name])}); pass --replace to overwrite it"
        )
    fleets[name] = list(members)
    return _write(fleets)


def remove_fleet(name: str) -> Path:
    """Forget fleet ``name``; UsageError naming the known ones when there is none."""
    fleets = read_fleets()
    if name not in fleets:
        raise UsageError(_unknown(name, fleets))
    del fleets[name]
    return _write(fleets)


def get_fleet(name: str) -> list[str]:
    """The members of fleet ``name`` as written; UsageError naming the known ones."""
    fleets = read_fleets()
    if name not in fleets:
        raise UsageError(_unknown(name, fleets))
    return list(fleets[name])


def _unknown(name: str, fleets: dict) -> str:
    known = ", ".join(fleets) or "none yet"
    return f"no fleet named {name!r} (known: {known}); add one: kpdev fleet add {name} BOARD..."
