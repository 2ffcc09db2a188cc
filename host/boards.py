"""The board catalog (``boards.yml``): what each board is and how to reach it."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from kpdev.host.errors import BoardError

RUNTIMES = ("micropython", "linux")
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


def catalog_path() -> str:
    """The catalog in use: $KPDEV_BOARDS or the packaged boards.yml."""
    env = os.environ.get("KPDEV_BOARDS")
    if env:
        return env
    return str(resources.files("kpdev").joinpath("boards.yml"))


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


def _board(bid: str, raw: dict[str, Any]) -> Board:
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
            link=dict(raw["link"]),
            ram_kb=int(raw["ram_kb"]),
            storage_kb=int(raw["storage_kb"]),
            flash_kb=raw.get("flash_kb"),
            accelerators=tuple(raw.get("accelerators") or ()),
            simulated=bool(raw.get("simulated", False)),
            sim=dict(raw.get("sim") or {}),
            agent=dict(raw.get("agent") or {}),
            mpy_march=march,
            power=_power(bid, raw.get("power")),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise BoardError(f"board {bid} in {catalog_path()} is incomplete: {e}") from None


def load_boards(path: str | None = None) -> dict[str, Board]:
    """All boards of the catalog, by id."""
    path = path or catalog_path()
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except OSError as e:
        raise BoardError(f"cannot read board catalog {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise BoardError(f"board catalog {path} is not valid YAML: {e}") from None
    return {bid: _board(bid, entry) for bid, entry in raw.items()}


def get_board(bid: str) -> Board:
    """One board by id; the error lists the known ones."""
    boards = load_boards()
    board = boards.get(bid)
    if board is None:
        raise BoardError(f"unknown board {bid!r}; known boards: {', '.join(boards)}")
    return board
