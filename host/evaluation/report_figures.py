"""The report's PNG figures, drawn with matplotlib (the ``report`` extra).

matplotlib itself is imported only when a figure is drawn; ``require_matplotlib`` checks for it
before a report writes anything."""

from __future__ import annotations

import math
from pathlib import Path

from kpdev.host.errors import UsageError
from kpdev.host.evaluation.report_text import num

_DPI = 100
_FONT = 8


def require_matplotlib():
    """matplotlib's Figure and Agg canvas; a missing matplotlib is a UsageError naming the fix."""
    try:
        import PIL.Image  # noqa: F401  (figures are written with Pillow, matplotlib's dependency)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError(
            "kpdev report draws its figures with matplotlib, which is not installed: "
            "pip install 'kpdev[report]'"
        )
    return Figure, FigureCanvasAgg


def _new_figure(width: float, height: float):
    # A bare Figure on an Agg canvas: no pyplot, so no global state and no GUI backend.
    figure_cls, canvas_cls = require_matplotlib()
    fig = figure_cls(figsize=(width, height), dpi=_DPI)
    canvas_cls(fig)
    return fig


def _save(fig, path: Path) -> Path:
    from PIL import Image  # Pillow comes with matplotlib

    fig.tight_layout()
    fig.canvas.draw()
    # A 256-colour palette PNG is a third the size of matplotlib's RGBA one and looks the same
    # for flat charts; Pillow writes no "Software" chunk, so equal data gives equal bytes.
    image = Image.frombuffer("RGBA", fig.canvas.get_width_height(), fig.canvas.buffer_rgba())
    palette = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    palette.save(path, format="PNG", optimize=True)
    return path


def latency_histogram(samples: list[float], title: str, path: Path) -> Path:
    """A histogram of per-inference latencies with p50 and p99 marked, saved at ``path``."""
    fig = _new_figure(5.0, 3.0)
    ax = fig.add_subplot()
    bins = min(40, max(5, math.ceil(math.sqrt(len(samples)))))
    ax.hist(samples, bins=bins, color="#4c72b0", edgecolor="white", linewidth=0.5)
    ordered = sorted(samples)
    for q, style in ((50, "-"), (99, "--")):
        value = _percentile(ordered, q)
        ax.axvline(value, color="#c44e52", linestyle=style, linewidth=1, label=f"p{q} {value:.1f}")
    ax.set_xlabel("latency per inference (µs)", fontsize=_FONT)
    ax.set_ylabel("inferences", fontsize=_FONT)
    ax.set_title(title, fontsize=_FONT + 1)
    ax.tick_params(labelsize=_FONT)
    # An opaque box: the p50/p99 lines may run under the legend.
    ax.legend(fontsize=_FONT, facecolor="white", framealpha=0.9, edgecolor="none")
    return _save(fig, path)


def _percentile(ordered: list[float], q: float) -> float:
    # numpy's "linear" method, without importing numpy for two numbers.
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def confusion_heatmap(confusion: list[list[int]], classes: list[str], title: str, path: Path):
    """A confusion matrix as a heat map (rows true, columns predicted), saved at ``path``."""
    k = len(classes)
    side = min(9.0, max(3.5, 1.5 + 0.55 * k))
    fig = _new_figure(side + 0.8, side)
    ax = fig.add_subplot()
    image = ax.imshow(confusion, cmap="Blues", vmin=0)
    top = max((max(row) for row in confusion if row), default=0)
    for r, row in enumerate(confusion):
        for c, count in enumerate(row):
            color = "white" if top and count > top / 2 else "black"
            ax.text(c, r, str(count), ha="center", va="center", color=color, fontsize=_FONT)
    ax.set_xticks(
        range(k), classes, rotation=45 if k > 3 else 0, ha="right" if k > 3 else "center"
    )
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted", fontsize=_FONT)
    ax.set_ylabel("true", fontsize=_FONT)
    ax.set_title(title, fontsize=_FONT + 1)
    ax.tick_params(labelsize=_FONT)
    # Counts: whole-number ticks (a few windows would otherwise get 0.25 steps).
    from matplotlib.ticker import MaxNLocator

    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, ticks=MaxNLocator(integer=True))
    bar.ax.tick_params(labelsize=_FONT)
    return _save(fig, path)


def profile_bars(stages: list[dict], title: str, path: Path) -> Path:
    """Horizontal bars of the time per stage, in pipeline order, saved at ``path``."""
    names = [str(s.get("name", "?")) for s in stages]
    values = [num(s.get("us")) or 0.0 for s in stages]
    fig = _new_figure(5.5, max(1.8, 0.9 + 0.28 * len(stages)))
    ax = fig.add_subplot()
    rows = range(len(stages))
    colors = ["#999999" if n == "other" else "#55a868" for n in names]
    ax.barh(rows, values, color=colors)
    ax.set_yticks(rows, names)
    ax.invert_yaxis()  # first stage on top, in pipeline order
    for row, value in zip(rows, values, strict=True):
        ax.text(value, row, f" {value:.1f}", va="center", fontsize=_FONT - 1)
    ax.set_xlabel("µs per inference (mean, device time)", fontsize=_FONT)
    ax.set_title(title, fontsize=_FONT + 1)
    ax.tick_params(labelsize=_FONT)
    ax.margins(x=0.15)
    return _save(fig, path)


def latency_over_time(
    samples: list[float], title: str, path: Path, unit="inference", xs: list[int] | None = None
) -> Path:
    """Each sample in the order of the run and a running median, saved at ``path``; ``xs``
    numbers the samples as the report's tables do (default 1, 2, ...)."""
    # Each sample at its place in the run, and a running median, so drift and noise show.
    fig = _new_figure(6.0, 2.6)
    ax = fig.add_subplot()
    xs = list(xs) if xs is not None else list(range(1, len(samples) + 1))
    ax.plot(xs, samples, ".", color="#4c72b0", markersize=3, label="each")
    k = max(1, min(25, len(samples) // 10))
    if k > 1:
        run = [
            _percentile(sorted(samples[max(0, i - k + 1) : i + 1]), 50)
            for i in range(len(samples))
        ]
        ax.plot(xs, run, "-", color="#c44e52", linewidth=1, label=f"median of the last {k}")
        ax.legend(fontsize=_FONT, frameon=False)
    if all(isinstance(x, int) for x in xs) and len(xs) <= 12:
        ax.set_xticks(xs)  # few samples: no half windows on the axis
    ax.set_xlabel(f"{unit} in the order of the run", fontsize=_FONT)
    ax.set_ylabel("µs", fontsize=_FONT)
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=_FONT + 1)
    ax.tick_params(labelsize=_FONT)
    return _save(fig, path)


def learning_curve(rows: list[dict], scored: list, new: list, name: str, path: Path) -> Path:
    """Held-out accuracy, all and per class, against the shots learned, saved at ``path``."""
    fig = _new_figure(5.5, 3.2)
    ax = fig.add_subplot()
    shots = [num(r.get("shots_per_class")) or 0.0 for r in rows]
    ax.plot(shots, [num(r.get("accuracy")) for r in rows], "o-", lw=2, color="black", label="all")
    for label in scored:
        values = [
            num((r.get("per_class") or {}).get(label))
            if isinstance(r.get("per_class"), dict)
            else None
            for r in rows
        ]
        ax.plot(
            shots,
            [v if v is not None else math.nan for v in values],
            "s--" if label in new else ".:",
            lw=1,
            label=str(label) + (" (new)" if label in new else ""),
        )
    ax.set_xlabel("shots per class learned on the device", fontsize=_FONT)
    ax.set_ylabel("held-out accuracy", fontsize=_FONT)
    ax.set_ylim(-0.02, 1.05)
    ax.set_title(f"{name}: learning curve", fontsize=_FONT + 1)
    ax.tick_params(labelsize=_FONT)
    # Accuracy rises with the shots: the lower right is where the curves are not.
    ax.legend(fontsize=_FONT - 1, frameon=False, loc="lower right")
    return _save(fig, path)


def comparison_bars(names: list[str], accuracy, p50, rate, path: Path) -> Path | None:
    """Accuracy, p50 latency and throughput by run, side by side; None when no run has any."""
    panels = [
        (label, values, color, digits)
        for label, values, color, digits in (
            ("accuracy", accuracy, "#4c72b0", 3),
            ("p50 latency (µs, device)", p50, "#dd8452", 1),
            ("inferences / s (device time)", rate, "#55a868", 1),
        )
        if any(v is not None for v in values)
    ]
    if not panels:
        return None
    fig = _new_figure(min(10.0, max(3.2, 1.0 + 0.8 * len(names)) * len(panels)), 3.2)
    rotate = len(names) > 3 or max(len(n) for n in names) > 12
    for i, (label, values, color, digits) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), i)
        heights = [v if v is not None else 0.0 for v in values]
        bars = ax.bar(range(len(names)), heights, color=color)
        for bar, value in zip(bars, values, strict=True):
            text = "n/a" if value is None else f"{value:.{digits}f}"
            ax.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=_FONT - 1,
            )
        ax.set_xticks(
            range(len(names)),
            names,
            rotation=30 if rotate else 0,
            ha="right" if rotate else "center",
        )
        ax.set_title(label, fontsize=_FONT + 1)
        ax.tick_params(labelsize=_FONT)
        ax.margins(y=0.15)
        if label == "accuracy":
            ax.set_ylim(0, 1.1)
    return _save(fig, path)
