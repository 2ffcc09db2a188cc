"""Boards: ``kpdev boards`` (the catalog, host/boards/catalog.py) and ``kpdev ports`` (the serial
ports, the catalog board each one looks like, and whether a kpdev agent answers there:
host/link/ports.py).  Simulated boards have their own module, ``sim``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from kpdev.host.boards.catalog import load_boards
from kpdev.host.cli.options import JsonOpt, KeyOpt, emit, err, out
from kpdev.host.plain import human_bytes

if TYPE_CHECKING:
    from rich.text import Text


def ports(
    port: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="PORT",
            help="Ports to look at (a device path such as /dev/pts/3, or a socket:// URL); "
            "default: every serial port on this machine.",
            show_default=False,
        ),
    ] = None,
    no_probe: Annotated[
        bool,
        typer.Option(
            "--no-probe",
            help="Do not send HELLO: only list the ports and the boards they match (some "
            "devices reset, or take stray bytes as input, when a port is opened).",
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Seconds to wait for an agent on each port.", min=0.05),
    ] = 1.0,
    key: KeyOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List serial ports, the catalog board each one matches, and whether an agent answers.

    A port matches a board by the board's port pattern in boards.yml (a /dev/serial/by-id/
    wildcard) or its USB VID:PID (usb: in boards.yml). Each port is probed with one HELLO
    (all at once, at most --timeout seconds); a board that needs a key answers only with
    --key or $KPDEV_KEY.
    """
    from rich.table import Table
    from rich.text import Text

    from kpdev.host.client.session import parse_key
    from kpdev.host.link.ports import describe_ports, port_for, serial_ports

    found = [port_for(p) for p in port] if port else serial_ports()
    records = describe_ports(found, probe_agents=not no_probe, timeout=timeout, key=parse_key(key))
    if json_:
        emit(records)
        return
    if not records:
        err.print(
            "no serial ports found: plug a board in (USB boards appear as /dev/ttyACM* or "
            "/dev/ttyUSB*), or serve a simulated one with: kpdev sim sim-mcu --listen pty",
            markup=False,
        )
        return
    table = Table(title="serial ports")
    table.add_column("port", no_wrap=True)
    table.add_column("board", overflow="fold")
    table.add_column("agent", overflow="fold")
    table.add_column("USB", no_wrap=True)
    table.add_column("description", overflow="fold")
    for r in records:
        boards = ", ".join(f"{m['board']} ({m['by']})" for m in r["boards"]) or "-"
        table.add_row(
            Text(r["device"]),
            Text(boards),
            _agent_cell(r.get("probe")),
            r["usb"] or "-",
            Text(r["description"] or "-"),
        )
    out.print(table)


def _agent_cell(found: dict | None) -> Text:
    from rich.text import Text

    if found is None:
        return Text("not probed", style="dim")
    if found.get("agent") and not found.get("error"):
        auth = ", key" if found.get("auth") else ""
        return Text.assemble(
            (f"kpdev {found['version']}", "green"),
            f" ({found['board']}, {found['runtime']}{auth})",
        )
    if found.get("agent"):
        return Text.assemble(("kpdev agent", "yellow"), f": {found['error']}")
    return Text(f"no: {found['error']}", style="dim")


# -- catalog and simulators ----------------------------------------------------------------
def boards(json_: JsonOpt = False) -> None:
    """List the boards in the catalog: the shipped boards.yml merged with your own.

    Your own boards come from boards.yml beside your config file (`kpdev config path --json`)
    and from `kpdev --catalog FILE` or $KPDEV_CATALOG: a new id adds a board, a known id
    takes the fields given.
    """
    catalog = load_boards()
    if json_:
        emit(
            [
                {
                    "id": b.id,
                    "name": b.name,
                    "runtime": b.runtime,
                    "simulated": b.simulated,
                    "ram_kb": b.ram_kb,
                    "storage_kb": b.storage_kb,
                    "flash_kb": b.flash_kb,
                    "accelerators": list(b.accelerators),
                    "link": b.link,
                    "usb": list(b.usb),
                    "catalog": b.source,
                }
                for b in catalog.values()
            ]
        )
        return
    _print_boards(list(catalog.values()), out.width)


def _print_boards(boards: list, width: int) -> None:
    """The catalog as a table as wide as the terminal (or $COLUMNS, or 80 into a pipe); board ids
    are never cut: the other columns wrap, fold into one, or the table gives way to lines."""
    from rich.table import Table

    idw = max(len(b.id) for b in boards)
    cells = [
        (
            b.id,
            b.name,
            b.runtime,
            human_bytes(b.ram_kb * 1024),
            human_bytes(b.storage_kb * 1024),
            ", ".join(b.accelerators) or "-",
            b.describe_link(),
        )
        for b in boards
    ]
    if width >= idw + 84:  # room for every column
        table = Table(title="kpdev boards")
        table.add_column("board", no_wrap=True, min_width=idw)
        table.add_column("name", overflow="fold", ratio=2)
        table.add_column("runtime", no_wrap=True)
        table.add_column("RAM", no_wrap=True, justify="right")
        table.add_column("storage", no_wrap=True, justify="right")
        table.add_column("accelerators", overflow="fold", ratio=1)
        table.add_column("link", overflow="fold", ratio=2)
        for row in cells:
            table.add_row(*row)
    elif width >= idw + 20:  # the id, and the rest folded into one column
        table = Table(title="kpdev boards")
        table.add_column("board", no_wrap=True, min_width=idw)
        table.add_column("details", overflow="fold")
        for bid, name, runtime, ram, storage, acc, link in cells:
            accel = "" if acc == "-" else f" · {acc}"
            table.add_row(
                bid, f"{name}\n{runtime} · RAM {ram} · storage {storage}{accel} · {link}"
            )
    else:  # narrower than any table: one line per board, the terminal wraps them
        for bid, name, runtime, ram, storage, acc, link in cells:
            accel = "" if acc == "-" else f", {acc}"
            out.print(
                f"{bid}  {name}; {runtime}, RAM {ram}, storage {storage}{accel}, {link}",
                soft_wrap=True,
                markup=False,
                highlight=False,
            )
        return
    out.print(table)
