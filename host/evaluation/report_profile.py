"""The report's section for a run's profile (``kpdev profile``): time per stage, with medians
and spreads, and a bar chart."""

from __future__ import annotations

from pathlib import Path

from kpdev.host.evaluation.report_blocks import Figure, Heading, Para, Table
from kpdev.host.evaluation.report_figures import profile_bars
from kpdev.host.evaluation.report_text import fmt, fmt_int, num


def profile_blocks(name: str, slug: str, profile: dict, out_dir: Path, figures: list) -> list:
    """The section of a profile: time per stage, its spread and a bar chart."""
    stages = profile.get("stages")
    if not (isinstance(stages, list) and stages and all(isinstance(s, dict) for s in stages)):
        return []
    total = num(profile.get("total_us")) or sum(num(s.get("us")) or 0.0 for s in stages)
    blocks: list = [Heading(3, "Profile")]
    runs = num(profile.get("runs"))
    other = profile.get("other")
    bars = list(stages)
    if isinstance(other, dict) and num(other.get("median")) is not None:
        # Per-run times: medians and spreads, and the time beyond the stages.
        bars.append(other)
        note = (
            f"{runs:.0f} runs after {fmt_int(profile.get('warmup'))} warm-up, mean total "
            f"{fmt(total, 1)} µs (device time); shares are of the mean total; other is what the "
            "whole classification took beyond its stages"
        )
        if profile.get("noisy"):
            note += (
                f"; the total spreads over {fmt(100 * (num(profile.get('spread')) or 0), 0)}"
                " % of its median between runs: the board or its host was busy"
            )
        blocks.append(Para(note))
        rows = [
            [
                str(s.get("name", "?")),
                fmt(s.get("median"), 1),
                f"{fmt(s.get('p10'), 1)}-{fmt(s.get('p90'), 1)}",
                fmt(s.get("us"), 1),
                fmt(s.get("share"), 1, " %"),
            ]
            for s in bars
        ]
        tot = profile.get("total") if isinstance(profile.get("total"), dict) else {}
        share_sum = sum(num(s.get("share")) or 0.0 for s in bars)
        rows.append(
            [
                "total",
                fmt(tot.get("median"), 1),
                f"{fmt(tot.get('p10'), 1)}-{fmt(tot.get('p90'), 1)}",
                fmt(total, 1),
                fmt(share_sum, 1, " %"),
            ]
        )
        header = ["stage", "median µs", "p10-p90 µs", "mean µs", "share"]
        blocks.append(Table(header, rows, (1, 2, 3, 4)))
    else:
        if runs is not None:
            blocks.append(Para(f"mean of {runs:.0f} runs, {fmt(total, 1)} µs in all"))
        rows = [
            [
                str(s.get("name", "?")),
                fmt(s.get("us"), 1),
                fmt_int(s.get("cycles")),
                fmt(100 * (num(s.get("us")) or 0.0) / total, 1, " %") if total else "-",
            ]
            for s in stages
        ]
        blocks.append(Table(["stage", "µs", "cycles", "share"], rows, (1, 2, 3)))
    path = profile_bars(bars, f"{name}: mean time per stage", out_dir / f"{slug}-profile.png")
    figures.append(path)
    blocks.append(Figure(path, f"{name}: profile"))
    return blocks
