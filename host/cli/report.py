"""``kpdev report``: Markdown and HTML reports from measurements, recognitions and sessions."""

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
            help="Measurements files (kpdev eval --out), recognitions (kpdev recognize --out) "
            "or learning sessions (session.json of kpdev learn run); several runs are "
            "compared side by side.",
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
    labels: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            help="A name for each file, in order (repeat it: --label fast --label small); "
            "default: the label kpdev eval --label stored, else the board and the pack.",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Write a Markdown and an HTML report with figures from measurements files.

    Per run: the dataset, the host and its load; accuracy, per-class scores, confusion matrix;
    device latency (table, histogram, each inference in the order of the run) and throughput
    (over device time and over wall time); energy per inference with its method; memory and
    storage (peak heap or RSS, arenas, model bytes) against the board's limits; the models on
    the device (Akida's layers and hardware mapping); the profile with its "other" row. Several
    runs get a comparison of every figure they share. A recognition gets its windows, a
    learning session its rounds and learning curve. Every figure says what it is (device or
    host time, estimated, upper bound).
    """
    from kpdev.host.evaluation.report import attach_profile, read_report_input, write_report

    if labels and len(labels) != len(files):
        raise UsageError(
            f"{len(labels)} --label for {len(files)} files: give one --label a file, in order"
        )
    docs = [read_report_input(f) for f in files]
    if profile_file:
        try:
            prof = json.loads(profile_file.read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read profile {profile_file}: {e}")
        if docs[0].get("kind") != "kpdev-measurements":
            raise UsageError(
                f"--profile goes with the first file's run, and {files[0]} is no eval run: put "
                "the measurements file first"
            )
        docs[0] = attach_profile(docs[0], prof, str(profile_file))
    made = write_report(docs, out_dir, names=labels or None)
    if json_:
        emit({k: [str(f) for f in v] if isinstance(v, list) else str(v) for k, v in made.items()})
        return
    out.print(
        f"report written: {made['markdown']} and {made['html']} ({len(made['figures'])} figures)"
    )
