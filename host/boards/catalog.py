"""The board catalog (``boards.yml``): what each board is and how to reach it."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from kpdev.host.atomic import write_atomic
from kpdev.host.config import user_catalog_path
from kpdev.host.errors import BoardError
from kpdev.protocol.errors import KpdevError

RUNTIMES = ("micropython", "linux")
# The fields a catalog entry may have; a new board needs REQUIRED_FIELDS.
FIELDS = (
    "name", "runtime", "link", "ram_kb", "storage_kb", "flash_kb", "accelerators", "simulated",
    "sim", "agent", "mpy_march", "power", "usb",
)  # fmt: skip
REQUIRED_FIELDS = ("name", "runtime", "link", "ram_kb", "storage_kb")
# Link types and the settings each one needs.
LINK_FIELDS = {"serial": ("port",), "tcp": ("host", "port"), "sim": ()}
_USB_ID = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}$")
# mpy-cross's -march names: the native-code architectures a MicroPython board can run.
MPY_MARCHES = (
    "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
    "xtensa", "xtensawin", "rv32imc", "rv64imc",
)  # fmt: skip
# Power sources the agent has (device/power.py SOURCES), and the settings each one needs.
POWER_SOURCES = {
    "estimate": ("idle_mw", "active_mw"),
    "sysfs": (),
    "ina219": (),
    "ina226": (),
    "akida": (),
}


@dataclass(frozen=True)
class Board:
    """One catalog entry."""

    id: str
    name: str
    runtime: str
    link: dict[str, Any]
    ram_kb: int
    storage_kb: int
    flash_kb: int | None = None
    accelerators: tuple[str, ...] = ()
    simulated: bool = False
    sim: dict[str, Any] = field(default_factory=dict)
    agent: dict[str, Any] = field(default_factory=dict)
    mpy_march: str | None = None  # mpy-cross -march for the board's CPU (MicroPython boards)
    power: dict[str, Any] = field(default_factory=dict)  # the agent's power source settings
    usb: tuple[str, ...] = ()  # USB VID:PID (hex) the board shows up with, for kpdev ports
    source: str = ""  # the catalog file that last set its fields

    @property
    def quota(self) -> int:
        """Model storage quota in bytes."""
        return self.storage_kb * 1024

    def describe_link(self) -> str:
        """The default link as a user would type it."""
        kind = self.link.get("type")
        if kind == "serial":
            return f"{self.link['port']} @ {self.link.get('baud', 115200)}"
        if kind == "tcp":
            return f"socket://{self.link['host']}:{self.link['port']}"
        return "simulated (started by kpdev)"

    def default_url(self) -> str:
        """URL of the board's default link; resolves a serial port wildcard."""
        kind = self.link.get("type")
        if kind == "tcp":
            return f"socket://{self.link['host']}:{self.link['port']}"
        if kind == "serial":
            pattern = self.link["port"]
            found = sorted(glob.glob(pattern))
            if not found:
                raise BoardError(
                    f"no {self.id} connected: nothing matches {pattern}; plug it in or pass --port"
                )
            return found[0]
        raise BoardError(f"{self.id} is simulated: it has no port to open")


def shipped_catalog_path() -> Path:
    """The boards.yml shipped with kpdev."""
    return Path(str(resources.files("kpdev").joinpath("boards.yml")))


def catalog_paths() -> list[Path]:
    """The catalog files merged, in order: the shipped boards.yml, the user's own (boards.yml
    beside the config file) when it exists, then $KPDEV_CATALOG (``--catalog``) when set."""
    paths = [shipped_catalog_path()]
    user = user_catalog_path()
    if user.is_file():
        paths.append(user)
    env = os.environ.get("KPDEV_CATALOG")
    if env:
        paths.append(Path(env).expanduser())
    return paths


def _power(bid: str, raw: Any) -> dict[str, Any]:
    # The board's power settings, checked here so that a typo fails before an agent starts.
    if raw is None:
        return {}
    if not isinstance(raw, dict) or raw.get("source") not in POWER_SOURCES:
        raise BoardError(f"board {bid}: power needs a source, one of {', '.join(POWER_SOURCES)}")
    for key in POWER_SOURCES[raw["source"]]:
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise BoardError(f"board {bid}: power source {raw['source']} needs {key} (mW)")
    return dict(raw)


def _link(bid: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("type") not in LINK_FIELDS:
        raise BoardError(f"board {bid}: link needs a type, one of {', '.join(LINK_FIELDS)}")
    missing = [k for k in LINK_FIELDS[raw["type"]] if k not in raw]
    if missing:
        raise BoardError(f"board {bid}: a {raw['type']} link needs {', '.join(missing)}")
    return dict(raw)


def _usb(bid: str, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    ids = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(x, str) and _USB_ID.match(x) for x in ids):
        raise BoardError(f"board {bid}: usb is a list of VID:PID in hex, e.g. [2E8A:0005]")
    return tuple(x.upper() for x in ids)


def _whole(bid: str, raw: dict[str, Any], key: str) -> int | None:
    value = raw.get(key)
    if value is None and key not in REQUIRED_FIELDS:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BoardError(f"board {bid}: {key} must be a whole number of KB, not {value!r}")
    return value


def _board(bid: str, raw: dict[str, Any], source: str = "") -> Board:
    missing = [k for k in REQUIRED_FIELDS if k not in raw]
    if missing:
        raise BoardError(f"board {bid} needs {', '.join(missing)}")
    try:
        runtime = raw["runtime"]
        if runtime not in RUNTIMES:
            raise BoardError(f"board {bid}: runtime must be one of {', '.join(RUNTIMES)}")
        march = raw.get("mpy_march")
        if march is not None and march not in MPY_MARCHES:
            raise BoardError(f"board {bid}: mpy_march must be one of {', '.join(MPY_MARCHES)}")
        return Board(
            id=bid,
            name=str(raw["name"]),
            runtime=runtime,
            link=_link(bid, raw["link"]),
            ram_kb=_whole(bid, raw, "ram_kb"),
            storage_kb=_whole(bid, raw, "storage_kb"),
            flash_kb=_whole(bid, raw, "flash_kb"),
            accelerators=tuple(raw.get("accelerators") or ()),
            simulated=bool(raw.get("simulated", False)),
            sim=dict(raw.get("sim") or {}),
            agent=dict(raw.get("agent") or {}),
            mpy_march=march,
            power=_power(bid, raw.get("power")),
            usb=_usb(bid, raw.get("usb")),
            source=source,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise BoardError(f"board {bid}: a field has the wrong type ({e})") from None


def _cache_path(path: Path) -> Path:
    # Under kpdev's data directory ($KPDEV_HOME, as kpdev.host.boards.sim.home()), one file a
    # catalog file.
    home = os.environ.get("KPDEV_HOME") or os.path.join(Path.home(), ".local", "share", "kpdev")
    name = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:20]
    return Path(home) / "cache" / f"catalog-{name}.json"


def _parse_yaml(path: Path, text: str) -> Any:
    """The YAML document ``text`` of catalog file ``path``; BoardError in one line otherwise."""
    import yaml

    # libyaml's parser when PyYAML has it: the pure-Python one takes ~0.1 s for boards.yml.  A
    # file it refuses is read again by the pure-Python parser, whose messages (and marks) say
    # what is wrong as they always have.
    try:
        try:
            return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or " ".join(str(e).split())
        raise BoardError(f"board catalog {path}: not valid YAML{where}: {problem}") from None


def _load_yaml(path: Path) -> Any:
    """Catalog file ``path`` as parsed YAML.

    Nearly every command reads the catalog, and importing PyYAML and parsing boards.yml cost
    more than the rest of a quick command's own work: a JSON copy of what the file held
    (KPDEV_HOME/cache, one a catalog file, with the SHA-256 of the text it was parsed from)
    serves while the text is the same.  A document JSON would not give back as it is (keys
    that are not strings, dates) is parsed every time.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise BoardError(f"board catalog {path}: no such file") from None
    except OSError as e:
        raise BoardError(f"board catalog {path}: cannot read it: {e.strerror}") from None
    digest = hashlib.sha256(data).hexdigest()
    cache = _cache_path(path)
    try:
        with open(cache, encoding="utf-8") as f:
            kept = json.load(f)
        if kept["sha256"] == digest:
            return kept["document"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no copy yet, or a broken one: parse, and keep a new one
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BoardError(f"board catalog {path}: cannot read it: not UTF-8 ({e.reason})") from None
    raw = _parse_yaml(path, text)
    try:
        dumped = json.dumps({"sha256": digest, "document": raw})
        if json.loads(dumped)["document"] == raw:
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(cache, lambda f: f.write(dumped.encode()))
    except (TypeError, ValueError, OSError, KpdevError):
        pass  # not JSON as it is, or nowhere to keep it: parsed again next time
    return raw


def _read_catalog(path: Path) -> dict[str, dict[str, Any]]:
    """One catalog file's entries, checked for shape; BoardError in one line otherwise."""
    raw = _load_yaml(path)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BoardError(
            f"board catalog {path}: expected board ids, each with its fields "
            f"(a mapping), not a {type(raw).__name__}"
        )
    for bid, entry in raw.items():
        if not isinstance(entry, dict):
            raise BoardError(f"board catalog {path}: board {bid} must be a mapping of fields")
        unknown = sorted(set(entry) - set(FIELDS))
        if unknown:
            raise BoardError(
                f"board catalog {path}: board {bid} has unknown field(s) {', '.join(unknown)}; "
                f"fields: {', '.join(FIELDS)}"
            )
    return {str(bid): entry for bid, entry in raw.items()}


def merge_fields(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the fields of ``over``; nested mappings are merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_fields(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_boards(path: str | os.PathLike | None = None) -> dict[str, Board]:
    """All boards of the catalog, by id: the files of ``catalog_paths()`` merged in order (a new
    id adds a board, a known one takes the fields given), or only the file ``path``."""
    paths = [Path(path)] if path else catalog_paths()
    entries: dict[str, dict[str, Any]] = {}
    sources: dict[str, Path] = {}
    for p in paths:
        for bid, entry in _read_catalog(p).items():
            entries[bid] = merge_fields(entries.get(bid, {}), entry)
            sources[bid] = p
    boards = {}
    for bid, entry in entries.items():
        try:
            boards[bid] = _board(bid, entry, str(sources[bid]))
        except BoardError as e:
            raise BoardError(f"board catalog {sources[bid]}: {e}") from None
    return boards


INSTANCE_SEP = "#"  # sim-mcu#2: the second instance of simulated board sim-mcu


def split_instance(bid: str) -> tuple[str, int]:
    """``sim-mcu#2`` -> ("sim-mcu", 2); a plain id is instance 1.  BoardError for a suffix
    that is not a whole number from 1."""
    base, sep, n = bid.partition(INSTANCE_SEP)
    if not sep:
        return bid, 1
    if not n.isdigit() or int(n) < 1:
        raise BoardError(
            f"board {bid!r}: an instance is written ID{INSTANCE_SEP}N with N from 1, e.g. "
            f"sim-mcu{INSTANCE_SEP}2"
        )
    return base, int(n)


def instance_id(bid: str, n: int) -> str:
    """The id of instance ``n`` of board ``bid``: instance 1 is the board itself."""
    return bid if n == 1 else f"{bid}{INSTANCE_SEP}{n}"


def get_board(bid: str) -> Board:
    """One board by id; the error lists the known ones.

    ``ID#N`` (N >= 2) is instance N of a simulated board: the same board under its own id, so
    it runs its own agent process with its own state directory (its own "flash") and server.
    """
    boards = load_boards()
    base, n = split_instance(bid)
    board = boards.get(base)
    if board is None:
        raise BoardError(f"unknown board {base!r}; known boards: {', '.join(boards)}")
    if n == 1:
        return board
    if not board.simulated:
        raise BoardError(
            f"board {bid!r}: only simulated boards have instances; reach each real "
            f"{base} by its own --port"
        )
    return replace(board, id=instance_id(base, n))
