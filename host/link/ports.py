"""Serial ports on this machine: which catalog board each one looks like, and whether a kpdev
agent answers there.

A port matches a board by the board's ``port`` pattern (a ``/dev/serial/by-id/...`` wildcard,
matched against the port and its by-id links) or by its USB ``VID:PID`` (``usb:`` in
boards.yml). The listing takes the ports as pyserial describes them (``ListPortInfo``), so
that any list, not only this machine's, can be described.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kpdev.host.boards.catalog import Board, load_boards
from kpdev.host.client.client import Client
from kpdev.host.errors import AuthError, LinkError, LinkTimeout
from kpdev.protocol.errors import KpdevError

BY_ID = "/dev/serial/by-id"


def serial_ports() -> list:
    """This machine's serial ports (pyserial's ``comports()``), sorted by device."""
    from serial.tools.list_ports import comports

    return sorted(comports(), key=lambda p: p.device)


def port_for(device: str):
    """A pyserial ``ListPortInfo`` for a device path (a pty, a port comports() did not list)."""
    from serial.tools.list_ports_common import ListPortInfo

    return ListPortInfo(device, skip_link_detection=True)


def usb_id(port) -> str | None:
    """``VID:PID`` in upper-case hex, or None for a port that is not USB."""
    if getattr(port, "vid", None) is None or getattr(port, "pid", None) is None:
        return None
    return f"{port.vid:04X}:{port.pid:04X}"


def by_id_links(device: str, folder: str = BY_ID) -> list[str]:
    """The stable ``/dev/serial/by-id`` names that point at ``device``."""
    real = os.path.realpath(device)
    return sorted(p for p in glob.glob(os.path.join(folder, "*")) if os.path.realpath(p) == real)


def matching_boards(port, catalog: dict[str, Board]) -> list[dict[str, str]]:
    """The catalog boards a port looks like: [{"board": id, "by": "usb"|"port"}]."""
    device = port.device
    names = [device, *by_id_links(device)]
    real = os.path.realpath(device)
    usb = usb_id(port)
    found = []
    for b in catalog.values():
        if b.simulated:
            continue
        if usb and usb in b.usb:
            found.append({"board": b.id, "by": "usb"})
            continue
        pattern = b.link.get("port") if b.link.get("type") == "serial" else None
        if pattern and (
            any(fnmatch.fnmatch(n, pattern) for n in names)
            or real in {os.path.realpath(p) for p in glob.glob(pattern)}
        ):
            found.append({"board": b.id, "by": "port"})
    return found


def probe(
    url: str, timeout: float = 1.0, key: bytes | None = None, baud: int = 115200
) -> dict[str, Any]:
    """Whether a kpdev agent answers HELLO on ``url`` within ``timeout`` seconds:
    {"agent": True, "board", "version", "runtime", "auth"} or {"agent": False, "error"}."""
    from kpdev.host.link.transport import open_url

    try:
        link = open_url(url, baud, timeout=min(timeout, 0.2))
    except LinkError as e:
        return {"agent": False, "error": str(e)}
    client = Client(link, key, timeout=timeout)
    try:
        info = client.hello()
    except LinkTimeout:
        why = "no kpdev agent answered" + ("" if key else " (or it needs --key)")
        return {"agent": False, "error": f"{why} within {timeout:g} s"}
    except AuthError as e:
        return {"agent": True, "error": str(e)}
    except KpdevError as e:
        return {"agent": False, "error": str(e)}
    finally:
        client.close()
    return {
        "agent": True,
        "board": info.get("board"),
        "version": info.get("agent"),
        "runtime": info.get("runtime"),
        "auth": bool(info.get("auth")),
    }


def describe_ports(
    ports: Iterable,
    catalog: dict[str, Board] | None = None,
    probe_agents: bool = True,
    timeout: float = 1.0,
    key: bytes | None = None,
) -> list[dict[str, Any]]:
    """One record per port: device, description, USB id and serial number, by-id links, the
    catalog boards it matches and, with ``probe_agents``, what a HELLO there found (all ports
    probed at once, each for at most ``timeout`` seconds)."""
    catalog = load_boards() if catalog is None else catalog
    records = []
    for port in ports:
        records.append(
            {
                "device": port.device,
                "description": None if port.description in (None, "n/a") else port.description,
                "usb": usb_id(port),
                "serial_number": getattr(port, "serial_number", None),
                "by_id": by_id_links(port.device),
                "boards": matching_boards(port, catalog),
            }
        )
    if probe_agents and records:

        def one(record: dict[str, Any]) -> dict[str, Any]:
            first = record["boards"][0]["board"] if record["boards"] else None
            baud = int(catalog[first].link.get("baud", 115200)) if first else 115200
            return probe(record["device"], timeout, key, baud)

        with ThreadPoolExecutor(max_workers=min(8, len(records))) as pool:
            for record, found in zip(records, pool.map(one, records), strict=True):
                record["probe"] = found
    return records
