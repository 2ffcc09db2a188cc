"""``kpdev report``: Markdown and HTML reports, with PNG figures, from measurements documents.

The report is built once as a list of blocks (headings, paragraphs, tables, figures) and then
rendered twice: Markdown links the PNG files beside it, HTML embeds them (base64) so the one file
can be mailed around. matplotlib (the ``report`` extra) is imported only when figures are drawn.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kpdev.host.errors import UsageError
from kpdev.host.evaluation.metrics import KIND

_DPI = 100
_FONT = 8


@dataclass
class _Heading:
    level: int
    text: str


@dataclass
class _Para:
    text: str


@dataclass
class _Table:
    header: list[str]
    rows: list[list[str]]
    right: tuple[int, ...] = ()  # columns aligned right (numbers)


@dataclass
class _Figure:
    path: Path
    alt: str


# -- numbers and labels ---------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    """``x`` as a float when it is a real, finite number; else None (missing or malformed)."""
    if isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(float(x)):
        return float(x)
    return None


def _fmt(x: Any, digits: int = 1, unit: str = "") -> str:
    v = _num(x)
    if v is None:
        return "-"
    return f"{v:.{digits}f}{unit}"


def _fmt_int(x: Any) -> str:
    v = _num(x)
    return "-" if v is None else f"{v:,.0f}"


def _board_label(board: Any) -> str:
    if not isinstance(board, dict):
        return "?"
    name, ident = board.get("name"), board.get("id")
    if name and ident and name != ident:
        return f"{name} ({ident})"
    return str(name or ident or "?")


def _what_label(doc: dict) -> str:
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


def _default_name(doc: dict, i: int) -> str:
    board = doc.get("board")
    ident = (board.get("id") or board.get("name")) if isinstance(board, dict) else None
    what = _what_label(doc)
    parts = [str(p) for p in (ident, what if what != "-" else None) if p]
    return " / ".join(parts) or f"run {i + 1}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:40] or "run"


def _unique(items: list[str], sep: str) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for item in items:
        n = seen.get(item, 0) + 1
        seen[item] = n
        out.append(item if n == 1 else f"{item}{sep}{n}")
    return out


def _section(results: dict, key: str) -> dict | None:
    value = results.get(key)
    return value if isinstance(value, dict) else None


def _macro_over(cls: dict) -> str:
    # Which classes macro F1 averages over (documents before it did: every class, say nothing).
    present = cls.get("macro_f1_classes")
    if not isinstance(present, list):
        return ""
    return f" (over the {len(present)} classes in the test data)"


def _energy_text(energy: Any) -> str:
    if not isinstance(energy, dict) or _num(energy.get("uj_per_inference")) is None:
        return "-"
    text = _fmt(energy["uj_per_inference"], 2, " µJ")
    if isinstance(energy.get("method"), str):
        return f"{text} ({energy['method']})"
    return text + " (estimated)" if energy.get("estimated") else text


# -- figures -------------------------------------------------------------------------------------


def _matplotlib():
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
    figure_cls, canvas_cls = _matplotlib()
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


def _latency_histogram(samples: list[float], title: str, path: Path) -> Path:
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
    ax.legend(fontsize=_FONT, frameon=False)
    return _save(fig, path)


def _percentile(ordered: list[float], q: float) -> float:
    # numpy's "linear" method, without importing numpy for two numbers.
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _confusion_heatmap(confusion: list[list[int]], classes: list[str], title: str, path: Path):
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
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=_FONT)
    return _save(fig, path)


def _profile_bars(stages: list[dict], title: str, path: Path) -> Path:
    names = [str(s.get("name", "?")) for s in stages]
    values = [_num(s.get("us")) or 0.0 for s in stages]
    fig = _new_figure(5.5, max(1.8, 0.9 + 0.28 * len(stages)))
    ax = fig.add_subplot()
    rows = range(len(stages))
    ax.barh(rows, values, color="#55a868")
    ax.set_yticks(rows, names)
    ax.invert_yaxis()  # first stage on top, in pipeline order
    for row, value in zip(rows, values, strict=True):
        ax.text(value, row, f" {value:.1f}", va="center", fontsize=_FONT - 1)
    ax.set_xlabel("µs per inference", fontsize=_FONT)
    ax.set_title(title, fontsize=_FONT + 1)
    ax.tick_params(labelsize=_FONT)
    ax.margins(x=0.15)
    return _save(fig, path)


def _comparison_bars(names: list[str], accuracy: list, p50: list, path: Path) -> Path | None:
    panels = [
        (label, values, color, digits)
        for label, values, color, digits in (
            ("accuracy", accuracy, "#4c72b0", 3),
            ("p50 latency (µs)", p50, "#dd8452", 1),
        )
        if any(v is not None for v in values)
    ]
    if not panels:
        return None
    fig = _new_figure(max(4.0, 1.2 + 1.0 * len(names)) * len(panels), 3.2)
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


# -- the report ----------------------------------------------------------------------------------


def _run_blocks(name: str, slug: str, doc: dict, out_dir: Path, figures: list[Path]) -> list:
    results = doc.get("results") if isinstance(doc.get("results"), dict) else {}
    blocks: list = [_Heading(2, f"Run: {name}")]
    facts = [
        ["command", str(doc.get("command", "-"))],
        ["created", str(doc.get("created", "-"))],
        ["board", _board_label(doc.get("board"))],
        ["pack / model", _what_label(doc)],
    ]
    dataset = doc.get("dataset")
    if isinstance(dataset, dict) and dataset:
        facts.append(["dataset", ", ".join(f"{k} {v}" for k, v in dataset.items())])
    versions = doc.get("versions")
    if isinstance(versions, dict) and versions:
        facts.append(["versions", ", ".join(f"{k} {v}" for k, v in versions.items())])
    if _num(results.get("wall_s")) is not None:
        facts.append(["wall time", _fmt(results["wall_s"], 2, " s")])
    link = _section(results, "link")
    if link:
        facts.append(
            [
                "link",
                f"{_fmt_int(link.get('bytes_out'))} B out, {_fmt_int(link.get('bytes_in'))} B in, "
                f"{_fmt_int(link.get('per_inference'))} B per inference",
            ]
        )
    if _energy_text(results.get("energy")) != "-":
        facts.append(["energy per inference", _energy_text(results.get("energy"))])
    blocks.append(_Table(["", ""], facts))

    cls = _section(results, "classification")
    if cls and _num(cls.get("accuracy")) is not None:
        blocks.append(_Heading(3, "Classification"))
        blocks.append(
            _Para(
                f"accuracy {_fmt(cls['accuracy'], 4)}, macro F1 {_fmt(cls.get('macro_f1'), 4)}"
                f"{_macro_over(cls)}, {_fmt_int(cls.get('n'))} samples"
            )
        )
        per_class = cls.get("per_class")
        if isinstance(per_class, dict) and per_class:
            rows = [
                [
                    str(label),
                    _fmt(m.get("precision"), 4),
                    _fmt(m.get("recall"), 4),
                    _fmt(m.get("f1"), 4),
                    _fmt_int(m.get("support")),
                ]
                for label, m in per_class.items()
                if isinstance(m, dict)
            ]
            blocks.append(
                _Table(["class", "precision", "recall", "F1", "support"], rows, (1, 2, 3, 4))
            )
        confusion, classes = cls.get("confusion"), cls.get("classes")
        if (
            isinstance(confusion, list)
            and isinstance(classes, list)
            and classes
            and len(confusion) == len(classes)
            and all(isinstance(row, list) and len(row) == len(classes) for row in confusion)
        ):
            path = _confusion_heatmap(
                confusion,
                [str(c) for c in classes],
                f"{name}: confusion (rows true)",
                out_dir / f"{slug}-confusion.png",
            )
            figures.append(path)
            blocks.append(_Figure(path, f"{name}: confusion matrix"))

    lat = _section(results, "latency_us")
    samples = [v for v in results.get("latency_samples_us") or [] if _num(v) is not None]
    if lat or samples:
        blocks.append(_Heading(3, "Latency"))
    if lat:
        keys = ["n", "mean", "p50", "p90", "p99", "min", "max", "std"]
        row = [_fmt_int(lat.get("n"))] + [_fmt(lat.get(k), 1) for k in keys[1:]]
        blocks.append(_Table([keys[0]] + [f"{k} (µs)" for k in keys[1:]], [row], tuple(range(8))))
    if samples:
        path = _latency_histogram(
            [float(v) for v in samples],
            f"{name}: latency ({len(samples)} inferences)",
            out_dir / f"{slug}-latency.png",
        )
        figures.append(path)
        blocks.append(_Figure(path, f"{name}: latency histogram"))

    profile = _section(results, "profile")
    stages = profile.get("stages") if profile else None
    if isinstance(stages, list) and stages and all(isinstance(s, dict) for s in stages):
        total = _num(profile.get("total_us")) or sum(_num(s.get("us")) or 0.0 for s in stages)
        blocks.append(_Heading(3, "Profile"))
        runs = _num(profile.get("runs"))
        other = profile.get("other")
        if isinstance(other, dict) and _num(other.get("median")) is not None:
            # Per-run times: medians and spreads, and the time beyond the stages.
            note = (
                f"{runs:.0f} runs after {_fmt_int(profile.get('warmup'))} warm-up, mean total "
                f"{_fmt(total, 1)} µs; shares are of the mean total"
            )
            if profile.get("noisy"):
                note += (
                    f"; the total spreads over {_fmt(100 * (_num(profile.get('spread')) or 0), 0)}"
                    " % of its median between runs: the board or its host was busy"
                )
            blocks.append(_Para(note))
            rows = [
                [
                    str(s.get("name", "?")),
                    _fmt(s.get("median"), 1),
                    f"{_fmt(s.get('p10'), 1)}-{_fmt(s.get('p90'), 1)}",
                    _fmt(s.get("us"), 1),
                    _fmt(s.get("share"), 1, " %"),
                ]
                for s in stages + [other]
            ]
            header = ["stage", "median µs", "p10-p90 µs", "mean µs", "share"]
            blocks.append(_Table(header, rows, (1, 2, 3, 4)))
        else:
            if runs is not None:
                blocks.append(_Para(f"mean of {runs:.0f} runs, {_fmt(total, 1)} µs in all"))
            rows = [
                [
                    str(s.get("name", "?")),
                    _fmt(s.get("us"), 1),
                    _fmt_int(s.get("cycles")),
                    _fmt(100 * (_num(s.get("us")) or 0.0) / total, 1, " %") if total else "-",
                ]
                for s in stages
            ]
            blocks.append(_Table(["stage", "µs", "cycles", "share"], rows, (1, 2, 3)))
        path = _profile_bars(stages, f"{name}: time per stage", out_dir / f"{slug}-profile.png")
        figures.append(path)
        blocks.append(_Figure(path, f"{name}: profile"))
    return blocks


def _comparison_blocks(names: list[str], docs: list[dict], out_dir: Path, figures: list[Path]):
    rows, accuracy, p50 = [], [], []
    for name, doc in zip(names, docs, strict=True):
        results = doc.get("results") if isinstance(doc.get("results"), dict) else {}
        cls = _section(results, "classification") or {}
        lat = _section(results, "latency_us") or {}
        link = _section(results, "link") or {}
        accuracy.append(_num(cls.get("accuracy")))
        p50.append(_num(lat.get("p50")))
        rows.append(
            [
                name,
                _board_label(doc.get("board")),
                _what_label(doc),
                _fmt(cls.get("accuracy"), 4),
                _fmt(cls.get("macro_f1"), 4),
                _fmt(lat.get("mean"), 1),
                _fmt(lat.get("p50"), 1),
                _fmt(lat.get("p99"), 1),
                _fmt_int(link.get("per_inference")),
                _energy_text(results.get("energy")),
            ]
        )
    header = [
        "run",
        "board",
        "pack / model",
        "accuracy",
        "macro F1",
        "mean (µs)",
        "p50 (µs)",
        "p99 (µs)",
        "bytes / inference",
        "energy / inference",
    ]
    blocks: list = [_Heading(2, "Comparison"), _Table(header, rows, tuple(range(3, 10)))]
    path = _comparison_bars(names, accuracy, p50, out_dir / "comparison.png")
    if path is not None:
        figures.append(path)
        blocks.append(_Figure(path, "accuracy and p50 latency by run"))
    return blocks


_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|])")


def _md(text: str) -> str:
    # Backslash-escape what Markdown would read as markup or raw HTML; a line break ends a cell.
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def _markdown(blocks: list, out_dir: Path) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            lines += ["#" * block.level + " " + _md(block.text), ""]
        elif isinstance(block, _Para):
            lines += [_md(block.text), ""]
        elif isinstance(block, _Table):
            align = ["---:" if i in block.right else "---" for i in range(len(block.header))]
            lines.append("| " + " | ".join(_md(h) for h in block.header) + " |")
            lines.append("| " + " | ".join(align) + " |")
            lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in block.rows]
            lines.append("")
        elif isinstance(block, _Figure):
            rel = block.path.relative_to(out_dir).as_posix()
            lines += [f"![{_md(block.alt)}]({rel})", ""]
    return "\n".join(lines)


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
"""


def _html(blocks: list, title: str) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style></head>",
        "<body>",
    ]
    for block in blocks:
        if isinstance(block, _Heading):
            parts.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, _Para):
            parts.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, _Table):
            parts.append("<table>")
            if any(block.header):
                parts.append(
                    "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in block.header) + "</tr>"
                )
            for row in block.rows:
                cells = (
                    f'<td class="num">{esc(c)}</td>' if i in block.right else f"<td>{esc(c)}</td>"
                    for i, c in enumerate(row)
                )
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</table>")
        elif isinstance(block, _Figure):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            parts.append(f'<img src="data:image/png;base64,{data}" alt="{esc(block.alt)}">')
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def attach_profile(doc: dict, profile: Any, where: str) -> dict:
    """``doc`` (a measurements document) with ``profile`` (a ``kpdev profile`` document) as its
    ``results.profile``; UsageError when it is not a profile, or profiles another board or
    pack than the run."""
    from kpdev.host.evaluation.evaluate import PROFILE_KIND

    if not isinstance(profile, dict):
        raise UsageError(f"{where} is not a kpdev profile (kpdev profile --out)")
    kind = profile.get("kind")
    if kind == KIND:
        raise UsageError(
            f"{where} is a measurements file, not a profile: give it as a report file, and to "
            "--profile a file from kpdev profile --out"
        )
    if kind not in (PROFILE_KIND, None) or not isinstance(profile.get("stages"), list):
        raise UsageError(f"{where} is not a kpdev profile (kpdev profile --out)")
    board = doc.get("board") if isinstance(doc.get("board"), dict) else {}
    pack = doc.get("pack") if isinstance(doc.get("pack"), dict) else {}
    if profile.get("board") != board.get("name"):
        raise UsageError(
            f"{where} profiles board {profile.get('board')}, but the run is on "
            f"{board.get('name')}: profile the run's board (kpdev profile --board ...)"
        )
    if profile.get("pack") != pack.get("name"):
        run = f"pack {pack.get('name')}" if pack else "a bare model"
        raise UsageError(
            f"{where} profiles pack {profile.get('pack')}, but the run evaluated {run}: "
            "profile the pack the run evaluated"
        )
    return dict(doc, results=dict(doc.get("results") or {}, profile=profile))


def write_report(docs: list[dict], out_dir: Path, names: list[str] | None = None) -> dict:
    """Write report.md, report.html and PNG figures for one or more measurements documents.

    Each run gets its facts, classification (per-class table, confusion heat map), latency
    (summary, histogram) and profile (table, bar chart), each only when the run measured it.
    Several runs also get a comparison table and an accuracy / p50 latency bar chart. ``names``
    label the runs (default: board and pack). Returns ``{"markdown": Path, "html": Path,
    "figures": [Path, ...]}``.
    """
    docs = list(docs)
    if not docs:
        raise UsageError("nothing to report: give at least one measurements file")
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            raise UsageError(f"report input {i + 1} is not a kpdev measurements document")
    if names is None:
        names = [_default_name(doc, i) for i, doc in enumerate(docs)]
    elif len(names) != len(docs):
        raise UsageError(f"{len(names)} names for {len(docs)} runs; give one name a run")
    names = _unique([str(n) for n in names], " #")
    slugs = _unique([_slug(n) for n in names], "-")
    _matplotlib()  # fail before writing anything when matplotlib is missing

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Path] = []
    title = "kpdev report" if len(docs) == 1 else f"kpdev report: {len(docs)} runs"
    blocks: list = [_Heading(1, title)]
    if len(docs) > 1:
        blocks += _comparison_blocks(names, docs, out_dir, figures)
    for name, slug, doc in zip(names, slugs, docs, strict=True):
        blocks += _run_blocks(name, slug, doc, out_dir, figures)

    markdown = out_dir / "report.md"
    markdown.write_text(_markdown(blocks, out_dir), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(_html(blocks, title), encoding="utf-8")
    return {"markdown": markdown, "html": page, "figures": figures}
