"""Rendering the CLI shares: progress bars, and plain-data views of device replies for its tables.

One progress-bar factory: ``progress_view(enabled, unit)`` makes a Rich ``Progress`` on stderr that
counts items or bytes (for several tasks at once); ``progress_bar`` wraps it with one task and
yields the ``progress(done, total)`` callback the library takes.  Bars are off under --json and
when stderr is not a terminal (into a pipe or a log a failing command must leave one line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from kpdev.host.cli.options import err
from kpdev.protocol.names import error_name

if TYPE_CHECKING:
    from rich.progress import Progress


def progress_view(enabled: bool, unit: str = "items") -> Progress:
    """A Rich progress display on stderr counting ``unit`` ("items" or "bytes")."""
    from rich.progress import (  # a command that shows no bar does not pay for it
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    if unit == "bytes":
        columns = (DownloadColumn(), TransferSpeedColumn())
    else:
        columns = (MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        *columns,
        console=err,
        disable=not enabled or not err.is_terminal,
    )


@contextmanager
def progress_bar(
    enabled: bool, what: str, total: int | None = None, unit: str = "items"
) -> Iterator[Callable[[int, int], None]]:
    """One bar; yields the ``progress(done, total)`` callback library functions take.  The bar
    shows from the first call, so work that turns out not to be needed shows none."""
    with progress_view(enabled, unit) as bar:
        task = bar.add_task(what, total=total, visible=False)  # shown once work starts

        def update(done: int, n: int) -> None:
            bar.update(task, completed=done, total=n, visible=True)

        yield update


def named_errors(errors: dict) -> dict[str, int]:
    """{code: count} -> {'NAME (code)': count}."""
    return {f"{error_name(int(code))} ({code})": n for code, n in sorted(errors.items())}
