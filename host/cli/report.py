"""``kpdev report``: Markdown and HTML reports from measurements files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kpdev.host.cli.options import JsonOpt, emit, out
from kpdev.host.errors import UsageError


def report(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Measurements files (from kpdev eval); several are compared side by side.",
            show_default=False,
        ),
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for report.md, report.html, figures.")
    ] = Path("kpdev-report"),
    profile_file: Annotated[
        Path | None,
        typer.Option(
            "--profile",
            help="A profile JSON (kpdev profile --out) of the first run's board and pack, to "
            "include with it.",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Write a Markdown and an HTML report with figures from measurements files.

    Per run: accuracy, per-class scores, confusion matrix, latency histogram; for several runs,
    a comparison table and chart.
    """
    from kpdev.host.evaluation.metrics import read_measurements
    from kpdev.host.evaluation.report import attach_profile, write_report

    docs = [read_measurements(f) for f in files]
    if profile_file:
        try:
            prof = json.loads(profile_file.read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read profile {profile_file}: {e}")
        docs[0] = attach_profile(docs[0], prof, str(profile_file))
    made = write_report(docs, out_dir)
    if json_:
        emit({k: [str(f) for f in v] if isinstance(v, list) else str(v) for k, v in made.items()})
        return
    out.print(
        f"report written: {made['markdown']} and {made['html']} ({len(made['figures'])} figures)"
    )
