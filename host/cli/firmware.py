"""``kpdev firmware build``: MicroPython firmware for the emulated Cortex-M boards."""

from __future__ import annotations

from typing import Annotated

import typer

from kpdev.host.boards import qemu
from kpdev.host.boards.catalog import get_board
from kpdev.host.cli.options import JsonOpt, emit, err, out, sub_app
from kpdev.host.cli.render import progress_bar

firmware_app = sub_app(
    "Firmware for the emulated Cortex-M boards (qemu-...): MicroPython's ports/qemu built with "
    "kpdev's board files, cached under KPDEV_HOME by source hash and board settings.",
    short_help="Build MicroPython firmware for the emulated Cortex-M boards.",
)


@firmware_app.command()
def build(
    board: Annotated[
        str, typer.Argument(metavar="BOARD", help="An emulated board, e.g. qemu-m3-128k.")
    ],
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            metavar="TARBALL_OR_DIR",
            help=f"MicroPython source: a tree or .tar.gz (default ${qemu.SOURCE_ENV}).",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Build again even when the cache has it.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Build BOARD's firmware (or find it in the cache) and print where it is.

    Needs qemu-system-arm, gcc-arm-none-eabi and libnewlib-arm-none-eabi (Debian packages),
    and MicroPython's source; a first build takes a minute or two, another heap size of the
    same CPU a few seconds.
    """
    b = get_board(board)
    with progress_bar(not json_, f"building {b.id} firmware", unit="files") as progress:
        fw = qemu.build_firmware(b, source, progress=progress, force=force)
    if json_:
        emit({"board": b.id, **fw.describe()})
        return
    how = "cached" if fw.cached else f"built in {fw.seconds:.0f} s"
    err.print(f"[dim]{b.id}: {how} from {fw.source}[/dim]")
    out.print(str(fw.path))
