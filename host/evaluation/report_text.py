"""How a report writes figures and facts in its cells: numbers, bytes, boards, datasets; ``-``
where a figure is missing or malformed."""

from __future__ import annotations

import math
import numbers
from typing import Any

from kpdev.host.plain import human_bytes


def num(x: Any) -> float | None:
    """``x`` as a float when it is a real, finite number; else None (missing or malformed)."""
    if isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x)):
        return float(x)
    return None


def fmt(x: Any, digits: int = 1, unit: str = "") -> str:
    """``x`` with ``digits`` decimals and ``unit``, or ``-`` when it is not a number."""
    v = num(x)
    if v is None:
        return "-"
    return f"{v:.{digits}f}{unit}"


def fmt_int(x: Any) -> str:
    """``x`` rounded, with thousands separators, or ``-``."""
    v = num(x)
    return "-" if v is None else f"{v:,.0f}"


def byte_text(n: Any) -> str:
    """A byte count as ``812 B`` or ``1.2 KiB (1,234 B)``, or ``-``."""
    v = num(n)
    if v is None:
        return "-"
    return f"{v:,.0f} B" if v < 1024 else f"{human_bytes(int(v))} ({v:,.0f} B)"


def board_label(board: Any) -> str:
    """A board as ``name (id)``."""
    if not isinstance(board, dict):
        return "?"
    name, ident = board.get("name"), board.get("id")
    if name and ident and name != ident:
        return f"{name} ({ident})"
    return str(name or ident or "?")


def what_label(doc: dict) -> str:
    """Pack and model of a run, as 'basicmotions 1.0.0 / main'."""
    parts = []
    pack = doc.get("pack")
    if isinstance(pack, dict) and pack.get("name"):
        parts.append(" ".join(str(pack[k]) for k in ("name", "version") if pack.get(k)))
    model = doc.get("model")
    if isinstance(model, dict):
        ident = model.get("id") or model.get("name") or model.get("file")
        if ident:
            parts.append(str(ident))
    return " / ".join(parts) or "-"


def section_of(results: dict, key: str) -> dict | None:
    """``results[key]`` when it is a dict; else None."""
    value = results.get(key)
    return value if isinstance(value, dict) else None


def dataset_sentence(dataset: dict) -> str:
    """A dataset summary as a sentence: 'BasicMotions, test split: 40 windows of 100 samples
    x 6 axes (accel_x, ...) at 10 Hz, 4 classes (Standing 10, ...)'."""
    name = str(dataset.get("name") or "dataset")
    split = dataset.get("split")
    n = num(dataset.get("n")) if dataset.get("n") is not None else num(dataset.get("n_test"))
    shape = dataset.get("shape")
    axes = dataset.get("axes")
    what = ""
    if isinstance(shape, list) and shape and all(num(d) is not None for d in shape):
        dims = [int(d) for d in shape]
        if len(dims) == 2 and isinstance(axes, list) and len(axes) == dims[1]:
            what = f"windows of {dims[0]} samples x {dims[1]} axes ({', '.join(map(str, axes))})"
        elif len(dims) == 2:
            what = f"windows of {dims[0]} samples x {dims[1]} axes"
        else:
            what = "samples of " + " x ".join(map(str, dims)) + " values"
    text = name + (f", {split} split" if split else "")
    if n is not None:
        text += f": {n:,.0f} " + (what if what else "samples")
    elif what:
        text += f": {what}"
    if num(dataset.get("rate_hz")) is not None:
        text += f" at {num(dataset['rate_hz']):g} Hz"
    classes = dataset.get("classes")
    counts = dataset.get("counts")
    if isinstance(classes, list) and classes:
        text += f", {len(classes)} classes"
        if isinstance(counts, dict) and counts:
            text += " (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"
    if dataset.get("seed") is not None:
        text += f", seed {dataset['seed']}"
    return text


def energy_text(energy: Any) -> str:
    """Energy per inference with its method, as ``21.80 µJ (estimated ...)``, or ``-``."""
    if not isinstance(energy, dict) or num(energy.get("uj_per_inference")) is None:
        return "-"
    text = fmt(energy["uj_per_inference"], 2, " µJ")
    if isinstance(energy.get("method"), str):
        return f"{text} ({energy['method']})"
    return text + " (estimated)" if energy.get("estimated") else text


def plain_text(v: Any) -> str:
    """A JSON value as a line of text: ``key value, ...``."""
    if isinstance(v, dict):
        return ", ".join(f"{k} {plain_text(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(plain_text(x) for x in v)
    return str(v)
