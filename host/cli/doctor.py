"""``kpdev doctor``: one line per check of this machine (host/doctor.py), each problem with what
to do about it."""

from __future__ import annotations

import typer
from rich.text import Text

from kpdev.host.cli.options import JsonOpt, emit, out


def doctor(json_: JsonOpt = False) -> None:
    """Check this machine for kpdev, one line per check, each problem with what to do.

    Python and kpdev, the MicroPython unix port and mpy-cross, each optional backend and tool
    (by its installed version; nothing is imported), your config file and board catalog, and
    each serial port with the board it matches. Optional parts that are not installed are
    "optional, missing", with the pip extra that brings them. Exits 1 only when something
    kpdev needs fails; --json prints {"ok": ..., "checks": [...]} either way.
    """
    from kpdev.host.doctor import FAIL, MISSING, OK, WARN, healthy, run_checks

    marks = {OK: ("✓", "green"), MISSING: ("-", "dim"), WARN: ("!", "yellow"), FAIL: ("✗", "red")}
    lines = run_checks()
    ok = healthy(lines)
    if json_:
        emit({"ok": ok, "checks": [line.as_dict() for line in lines]})
    else:
        width = max(len(line.name) for line in lines)
        for line in lines:
            mark, style = marks.get(line.status, ("?", ""))
            text = Text.assemble((mark, style), " ", (line.name.ljust(width), "bold"), " ")
            text.append(line.detail, style="dim" if line.status == MISSING else "")
            if line.fix:
                text.append(f"  → {line.fix}", style="cyan")
            out.print(text, soft_wrap=True)
        problems = sum(line.status == FAIL for line in lines)
        missing = sum(line.status == MISSING for line in lines)
        out.print(
            ("kpdev works" if ok else f"{problems} problem(s) to fix")
            + (f"; {missing} optional part(s) not installed" if missing else ""),
            style="bold" if ok else "bold red",
        )
    if not ok:
        raise typer.Exit(1)
