"""The report's section for a recognition (``kpdev recognize --out``): its windows, their
classes and times, and its classification when the recording was labelled."""

from __future__ import annotations

from pathlib import Path

from kpdev.host.evaluation.report_blocks import Figure, Heading, Table
from kpdev.host.evaluation.report_figures import latency_over_time
from kpdev.host.evaluation.report_runs import classification_blocks
from kpdev.host.evaluation.report_text import fmt, fmt_int, num


def recognition_blocks(name: str, slug: str, doc: dict, out_dir: Path, figures: list) -> list:
    """The section of a recognition: its facts, classification, windows and times."""
    windows = [w for w in doc.get("windows") or [] if isinstance(w, dict)]
    platform = doc.get("platform")
    time_is = (
        "the device's own time per window (pipeline + models)"
        if platform == "device"
        else "the host's time to emulate each window (not a device figure)"
    )
    facts = [
        ["pack", str(doc.get("pack", "-"))],
        ["ran on", f"{doc.get('board', '?')} ({platform or '?'})"],
        ["recording", str(doc.get("signal", "-"))],
        ["created", str(doc.get("created", "-"))],
        ["windows", fmt_int(len(windows))],
        ["µs per window", time_is],
    ]
    skipped = doc.get("skipped") if isinstance(doc.get("skipped"), dict) else {}
    if skipped:
        facts.append(
            [
                "left out",
                ", ".join(f"{k} ({v})" for k, v in skipped.items())
                + ": windows of classes the pack does not know, not scored",
            ]
        )
    blocks: list = [Heading(2, f"Recognition: {name}"), Table(["", ""], facts)]
    cls = doc.get("classification")
    if isinstance(cls, dict) and num(cls.get("accuracy")) is not None:
        blocks += classification_blocks(
            name, slug, cls, out_dir, figures, "windows", "the recording"
        )
    if windows:
        truth = any(w.get("label") for w in windows)
        header = ["window", "start", "class", "score", "µs"] + (["label"] if truth else [])
        rows = []
        for w in windows:
            row = [
                fmt_int(w.get("window")),
                fmt_int(w.get("start")),
                str(w.get("class")),
                fmt(w.get("score"), 3),
                fmt(w.get("us"), 0),
            ]
            if truth:
                ok = w.get("label") == w.get("class")
                mark = " (not scored)" if w.get("label") in skipped else " (wrong)"
                row.append(str(w.get("label")) + ("" if ok else mark))
            rows.append(row)
        blocks += [Heading(3, "Windows"), Table(header, rows, (0, 1, 3, 4))]
        timed = [w for w in windows if num(w.get("us")) is not None]
        if timed:
            # Numbered as the table numbers the windows, so a point can be found in it.
            xs = [w["window"] if isinstance(w.get("window"), int) else None for w in timed]
            path = latency_over_time(
                [float(w["us"]) for w in timed],
                f"{name}: µs per window",
                out_dir / f"{slug}-timeline.png",
                "window",
                xs if None not in xs else None,
            )
            figures.append(path)
            blocks.append(Figure(path, f"{name}: time per window"))
    return blocks
