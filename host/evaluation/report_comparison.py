"""The report's comparison of several runs: every figure any of them measured, side by side,
and a bar chart of accuracy, latency and throughput."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kpdev.host.evaluation.metrics import KIND
from kpdev.host.evaluation.report_blocks import Figure, Heading, Para, Table
from kpdev.host.evaluation.report_figures import comparison_bars
from kpdev.host.evaluation.report_text import (
    board_label,
    energy_text,
    fmt,
    fmt_int,
    num,
    what_label,
)


# What the comparison lists: label, how to find the number, digits, a note in the label.
def _get(*path: str):
    def find(doc: dict) -> Any:
        value: Any = doc.get("results")
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    return find


def _pack_arena(doc: dict) -> Any:
    cost = _get("footprint", "cost")(doc)
    arenas = [
        num(m.get("arena_bytes"))
        for m in ((cost or {}).get("models") or {}).values()
        if isinstance(m, dict)
    ]
    arenas = [a for a in arenas if a is not None]
    return max(arenas) if arenas else None


_FIGURES = [
    ("accuracy", _get("classification", "accuracy"), 4),
    ("macro F1", _get("classification", "macro_f1"), 4),
    ("samples", _get("classification", "n"), 0),
    ("latency mean (µs, device)", _get("latency_us", "mean"), 1),
    ("latency p50 (µs, device)", _get("latency_us", "p50"), 1),
    ("latency p90 (µs, device)", _get("latency_us", "p90"), 1),
    ("latency p99 (µs, device)", _get("latency_us", "p99"), 1),
    ("latency min (µs, device)", _get("latency_us", "min"), 1),
    ("latency max (µs, device)", _get("latency_us", "max"), 1),
    ("latency std (µs, device)", _get("latency_us", "std"), 1),
    ("throughput (/s of device time)", _get("throughput", "device_per_s"), 1),
    ("throughput (/s of wall time, link incl.)", _get("throughput", "wall_per_s"), 1),
    ("energy / inference (µJ)", _get("energy", "uj_per_inference"), 2),
    ("peak heap (B, upper bound)", _get("device_memory", "heap_peak"), 0),
    ("peak live heap (B, lower bound)", _get("device_memory", "heap_live_peak"), 0),
    ("peak RSS of the agent (B)", _get("device_memory", "rss_peak"), 0),
    ("model bytes", _get("footprint", "model_bytes"), 0),
    ("largest arena (B, planned on the host)", _pack_arena, 0),
    ("pack RAM planned (B)", _get("footprint", "cost", "ram_bytes"), 0),
    ("store in use (B)", _get("device_memory", "storage", "used"), 0),
    ("board RAM (B, catalog)", _get("footprint", "ram_bytes"), 0),
    ("link bytes / inference", _get("link", "per_inference"), 0),
    ("wall time (s)", _get("wall_s"), 2),
    ("profile total mean (µs, device)", _get("profile", "total_us"), 1),
    ("host load at the start (1 min)", lambda d: (_get("host", "load_start")(d) or [None])[0], 2),
]


def comparison_blocks(names: list[str], docs: list[dict], out_dir: Path, figures: list[Path]):
    """The comparison of the runs among the inputs (nothing for fewer than two), and its chart."""
    runs = [d for d in docs if d.get("kind") == KIND]
    names = [n for n, d in zip(names, docs, strict=True) if d.get("kind") == KIND]
    if len(runs) < 2:
        return []
    rows = [
        ["board"] + [board_label(d.get("board")) for d in runs],
        ["pack / model"] + [what_label(d) for d in runs],
    ]
    for label, find, digits in _FIGURES:
        values = [num(find(d)) for d in runs]
        if all(v is None for v in values):
            continue
        if label.startswith("energy"):
            cells = [energy_text(_get("energy")(d)) for d in runs]
        elif digits == 0:
            cells = [fmt_int(v) for v in values]
        else:
            cells = [fmt(v, digits) for v in values]
        rows.append([label] + cells)
    header = ["figure"] + names
    blocks: list = [
        Heading(2, "Comparison"),
        Para("every figure any of the runs measured; - where a run has none"),
        Table(header, rows, tuple(range(1, len(header)))),
    ]
    accuracy = [num(_get("classification", "accuracy")(d)) for d in runs]
    p50 = [num(_get("latency_us", "p50")(d)) for d in runs]
    rate = [num(_get("throughput", "device_per_s")(d)) for d in runs]
    path = comparison_bars(names, accuracy, p50, rate, out_dir / "comparison.png")
    if path is not None:
        figures.append(path)
        blocks.append(Figure(path, "accuracy, p50 latency and throughput by run"))
    return blocks
