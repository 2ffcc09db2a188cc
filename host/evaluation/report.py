"""``kpdev report``: Markdown and HTML reports, with PNG figures, from measurements documents.

The report is built once as a list of blocks (headings, paragraphs, tables, figures) and then
rendered twice: Markdown links the PNG files beside it, HTML embeds them (base64) so the one file
can be mailed around. matplotlib (the ``report`` extra) is imported only when figures are drawn.
"""

from __future__ import annotations

import base64
import html
import json
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kpdev.host.errors import UsageError
from kpdev.host.evaluation.metrics import KIND
from kpdev.host.plain import human_bytes

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


def _latency_over_time(samples: list[float], title: str, path: Path, unit="inference") -> Path:
    # Each sample at its place in the run, and a running median, so drift and noise show.
    fig = _new_figure(6.0, 2.6)
    ax = fig.add_subplot()
    xs = range(1, len(samples) + 1)
    ax.plot(xs, samples, ".", color="#4c72b0", markersize=3, label="each")
    k = max(1, min(25, len(samples) // 10))
    if k > 1:
        run = [
            _percentile(sorted(samples[max(0, i - k + 1) : i + 1]), 50)
            for i in range(len(samples))
        ]
        ax.plot(xs, run, "-", color="#c44e52", linewidth=1, label=f"median of the last {k}")
        ax.legend(fontsize=_FONT, frameon=False)
    ax.set_xlabel(f"{unit} in the order of the run", fontsize=_FONT)
    ax.set_ylabel("µs", fontsize=_FONT)
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=_FONT + 1)
    ax.tick_params(labelsize=_FONT)
    return _save(fig, path)


def _learning_curve(rows: list[dict], scored: list, new: list, name: str, path: Path) -> Path:
    fig = _new_figure(5.5, 3.2)
    ax = fig.add_subplot()
    shots = [_num(r.get("shots_per_class")) or 0.0 for r in rows]
    ax.plot(shots, [_num(r.get("accuracy")) for r in rows], "o-", lw=2, color="black", label="all")
    for label in scored:
        values = [
            _num((r.get("per_class") or {}).get(label))
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
    ax.legend(fontsize=_FONT - 1, frameon=False)
    return _save(fig, path)


def _comparison_bars(names: list[str], accuracy, p50, rate, path: Path) -> Path | None:
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


# -- the report ----------------------------------------------------------------------------------


def _dataset_sentence(dataset: dict) -> str:
    """A dataset summary as a sentence: 'BasicMotions, test split: 40 windows of 100 samples
    x 6 axes (accel_x, ...) at 10 Hz, 4 classes (Standing 10, ...)'."""
    name = str(dataset.get("name") or "dataset")
    split = dataset.get("split")
    n = _num(dataset.get("n")) if dataset.get("n") is not None else _num(dataset.get("n_test"))
    shape = dataset.get("shape")
    axes = dataset.get("axes")
    what = ""
    if isinstance(shape, list) and shape and all(_num(d) is not None for d in shape):
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
    if _num(dataset.get("rate_hz")) is not None:
        text += f" at {_num(dataset['rate_hz']):g} Hz"
    classes = dataset.get("classes")
    counts = dataset.get("counts")
    if isinstance(classes, list) and classes:
        text += f", {len(classes)} classes"
        if isinstance(counts, dict) and counts:
            text += " (" + ", ".join(f"{k} {v}" for k, v in counts.items()) + ")"
    if dataset.get("seed") is not None:
        text += f", seed {dataset['seed']}"
    return text


def _bytes(n: Any) -> str:
    v = _num(n)
    if v is None:
        return "-"
    return f"{v:,.0f} B" if v < 1024 else f"{human_bytes(int(v))} ({v:,.0f} B)"


def _share(part: Any, whole: Any) -> str:
    a, b = _num(part), _num(whole)
    return "-" if a is None or not b else f"{100 * a / b:.1f} %"


def _host_text(host: dict) -> str:
    parts = [str(host.get("name") or "?")]
    if host.get("os"):
        parts.append(str(host["os"]))
    if host.get("python"):
        parts.append(f"Python {host['python']}")
    if _num(host.get("cpus")) is not None:
        parts.append(f"{host['cpus']} CPUs")
    return ", ".join(parts)


def _load_text(host: dict) -> str | None:
    def three(v: Any) -> str | None:
        if isinstance(v, list) and len(v) == 3 and all(_num(x) is not None for x in v):
            return "/".join(f"{x:.2f}" for x in v)
        return None

    start, end = three(host.get("load_start")), three(host.get("load_end"))
    if not start and not end:
        return None
    text = f"1/5/15-minute load average {start or '-'} at the start, {end or '-'} at the end"
    cpus = _num(host.get("cpus"))
    busiest = max(
        (_num(v[0]) or 0.0 for v in (host.get("load_start"), host.get("load_end")) if v),
        default=0.0,
    )
    if cpus and busiest > cpus:
        text += f": more tasks waiting than the {cpus:.0f} CPUs, timings may be noisy"
    return text


def _facts(doc: dict, results: dict) -> list[list[str]]:
    facts = [
        ["command", str(doc.get("command", "-"))],
        ["created", str(doc.get("created", "-"))],
        ["board", _board_label(doc.get("board"))],
        ["pack / model", _what_label(doc)],
    ]
    if doc.get("label"):
        facts.insert(0, ["label", str(doc["label"])])
    dataset = doc.get("dataset")
    if isinstance(dataset, dict) and dataset:
        facts.append(["dataset", _dataset_sentence(dataset)])
        if dataset.get("source"):
            facts.append(["dataset source", str(dataset["source"])])
    skipped = results.get("skipped")
    if isinstance(skipped, dict) and skipped:
        facts.append(
            [
                "left out",
                ", ".join(f"{k} ({v})" for k, v in skipped.items())
                + ": test samples of classes the pack does not know",
            ]
        )
    versions = doc.get("versions")
    if isinstance(versions, dict) and versions:
        facts.append(
            [
                "versions",
                ", ".join(f"{k} {v}" for k, v in versions.items() if not isinstance(v, dict)),
            ]
        )
    if _num(results.get("wall_s")) is not None:
        facts.append(["wall time", _fmt(results["wall_s"], 2, " s") + " (host clock, whole run)"])
    link = _section(results, "link")
    if link:
        facts.append(
            [
                "link",
                f"{_fmt_int(link.get('bytes_out'))} B out, {_fmt_int(link.get('bytes_in'))} B in, "
                f"{_fmt_int(link.get('per_inference'))} B per inference",
            ]
        )
    host = _section(results, "host")
    if host:
        facts.append(["host", _host_text(host)])
        load = _load_text(host)
        if load:
            facts.append(["host load", load])
    return facts


def _throughput_rows(results: dict) -> list[list[str]]:
    tp = _section(results, "throughput")
    if not tp:
        return []
    rows = []
    if _num(tp.get("device_per_s")) is not None:
        rows.append(
            [
                "over device time",
                _fmt(tp["device_per_s"], 1),
                f"{_fmt_int(tp.get('n'))} inferences / {_fmt(tp.get('device_s'), 4)} s: the sum "
                "of the device's per-inference times (the device busy with nothing else)",
            ]
        )
    if _num(tp.get("wall_per_s")) is not None:
        rows.append(
            [
                "over wall time",
                _fmt(tp["wall_per_s"], 1),
                f"{_fmt_int(tp.get('n'))} inferences / {_fmt(tp.get('wall_s'), 4)} s of the "
                "host's clock: link, batching and the host included",
            ]
        )
    return rows


def _memory_rows(results: dict) -> list[list[str]]:
    """figure, bytes, limit, share of the limit, what it is."""
    mem = _section(results, "device_memory") or {}
    foot = _section(results, "footprint") or {}
    cost = foot.get("cost") if isinstance(foot.get("cost"), dict) else {}
    catalog = foot.get("catalog") or "the board"
    ram = _num(foot.get("ram_bytes"))
    ram_text = f"{human_bytes(int(ram))} RAM ({catalog}, catalog)" if ram else "-"
    storage = mem.get("storage") if isinstance(mem.get("storage"), dict) else {}
    quota = _num(storage.get("quota"))
    if quota:
        store_limit, store_text = quota, f"{human_bytes(int(quota))} store quota (device INFO)"
    elif _num(foot.get("storage_bytes")):
        store_limit = _num(foot["storage_bytes"])
        store_text = f"{human_bytes(int(store_limit))} storage ({catalog}, catalog)"
    else:
        store_limit, store_text = None, "-"
    heap = _num(mem.get("heap_total"))
    heap_text = f"{human_bytes(int(heap))} heap (device STATS)" if heap else ram_text
    heap_limit = heap or ram

    rows = []

    def add(label, value, limit, limit_text, what):
        if _num(value) is not None:
            rows.append([label, _bytes(value), limit_text, _share(value, limit), what])

    add(
        "peak heap",
        mem.get("heap_peak"),
        heap_limit,
        heap_text,
        "most MicroPython heap in use (the agent, its pack and the requests) seen after a "
        "request during the run, garbage not yet collected included: an upper bound",
    )
    add(
        "peak live heap",
        mem.get("heap_live_peak"),
        heap_limit,
        heap_text,
        "most heap in use right after one of the agent's collections (live objects): a lower "
        "bound of what the agent and its pack hold",
    )
    add(
        "heap size",
        mem.get("heap_total"),
        ram,
        ram_text,
        "the MicroPython heap the device reports (STATS)",
    )
    add(
        "peak RSS",
        mem.get("rss_peak"),
        ram,
        ram_text,
        "peak resident set of the agent process since it started (VmHWM), the Python "
        "interpreter included: an upper bound of what the run needed",
    )
    add("RSS after the run", mem.get("rss"), ram, ram_text, "the agent process's resident set")
    add(
        "pack RAM planned",
        cost.get("ram_bytes"),
        heap_limit,
        heap_text,
        "the pack manifest's cost: the largest model arena + one window + the pipeline's "
        "buffers, planned on the host",
    )
    for mid, m in (cost.get("models") or {}).items():
        if isinstance(m, dict):
            add(
                f"arena of {mid}",
                m.get("arena_bytes"),
                heap_limit,
                heap_text,
                f"working memory {m.get('backend') or 'the engine'} planned for model {mid} on "
                "the host reference runtime (pack cost)",
            )
    for name, m in (_section(results, "models") or {}).items():
        details = m.get("details") if isinstance(m, dict) else None
        if isinstance(details, dict):
            if _num(details.get("arena_used_bytes")) is not None:
                arena = details["arena_used_bytes"]
                what = (
                    f"arena the device's {m.get('backend')} allocator used, of "
                    f"{_fmt_int(details.get('arena_size_bytes'))} B given (MODEL_INFO)"
                )
            else:
                arena = details.get("arena_size_bytes")
                what = f"arena the device's {m.get('backend')} backend allocated (MODEL_INFO)"
            add(f"arena of {name} on the device", arena, heap_limit, heap_text, what)
    add(
        "model bytes",
        foot.get("model_bytes"),
        store_limit,
        store_text,
        "the model files the device stores (pack cost, or the model file's size)",
    )
    add(
        "store in use",
        storage.get("used"),
        store_limit,
        store_text,
        "the device's model store in use after the run, every stored model (INFO)",
    )
    return rows


def _energy_blocks(results: dict) -> list:
    energy = results.get("energy")
    if not isinstance(energy, dict) or _num(energy.get("uj_per_inference")) is None:
        return []
    method = energy.get("method") or ("estimated" if energy.get("estimated") else "not named")
    rows = [
        [
            str(energy.get("span") or "per inference"),
            _fmt(energy["uj_per_inference"], 2),
            str(method),
        ]
    ]
    stages = energy.get("stages_uj")
    if isinstance(stages, dict):
        rows += [[f"  of which {k}", _fmt(v, 2), str(method)] for k, v in stages.items()]
    note = f"µJ per inference over {_fmt_int(energy.get('count'))} inferences"
    if _num(energy.get("mw")) is not None:
        note += f", at {_fmt(energy['mw'], 0)} mW"
    return [
        _Heading(3, "Energy"),
        _Para(note),
        _Table(["span", "µJ per inference", "method"], rows, (1,)),
    ]


def _shape(v: Any) -> str:
    if isinstance(v, list):
        return " x ".join(str(d) for d in v)
    return "-" if v is None else str(v)


def _akida_blocks(name: str, details: dict) -> list:
    """Akida's layers as ``Model.summary()`` lists them, and its mapping onto a device."""
    mapping = details.get("virtual") if isinstance(details.get("virtual"), dict) else None
    nps_of: dict[str, list] = {}
    if mapping:
        for la in mapping.get("layers") or []:
            if isinstance(la, dict):
                nps_of[str(la.get("name"))] = la.get("nps") or []
    header = ["layer", "type", "input shape", "output shape", "weights", "bits", "activation"]
    if mapping:
        header.append(f"NPs on {mapping.get('device')}")
    rows = []
    for la in details.get("layers") or []:
        if not isinstance(la, dict):
            continue
        bits = [f"in {la.get('input_bits')}"] if la.get("input_bits") is not None else []
        if la.get("weights_bits") is not None:
            bits.append(f"w {la['weights_bits']}")
        if la.get("activation_bits") is not None:
            bits.append(f"out {la['activation_bits']}")
        row = [
            str(la.get("name")),
            str(la.get("type")),
            _shape(la.get("input_shape")),
            _shape(la.get("output_shape")),
            _shape(la.get("weights_shape")),
            ", ".join(bits) or "-",
            "-" if la.get("activation") is None else str(la["activation"]),
        ]
        if mapping:
            nps = nps_of.get(str(la.get("name")))
            row.append("-" if not nps else f"{len(nps)} ({nps[0].get('type')})")
        rows.append(row)
    blocks: list = [
        _Heading(4, f"{name}: Akida layers"),
        _Para(
            f"{details.get('engine', 'akida')} on {details.get('device', '?')}, IP "
            f"{details.get('ip_version', '?')}, {details.get('input_bits', '?')}-bit inputs, "
            f"MACs {details.get('macs', '-')}"
        ),
    ]
    if rows:
        blocks.append(_Table(header, rows))
    if mapping:
        blocks.append(_Heading(4, f"{name}: mapping onto {mapping.get('device')}"))
        if mapping.get("error"):
            blocks.append(_Para(f"does not map: {mapping['error']}"))
        else:
            facts = [
                ["device", f"{mapping.get('device')} ({mapping.get('description', '')})"],
                ["fits in hardware", "yes" if mapping.get("fits") else "no"],
                [
                    "NPs used",
                    f"{_fmt_int(mapping.get('nps_used'))} of "
                    f"{_fmt_int(mapping.get('nps_available'))}",
                ],
                ["passes", _fmt_int(mapping.get("passes"))],
                ["external memory", _bytes(mapping.get("external_memory_bytes"))],
            ]
            if mapping.get("software_layers"):
                facts.append(["layers in software", ", ".join(mapping["software_layers"])])
            comps = mapping.get("components")
            if isinstance(comps, dict) and comps:
                facts.append(["components", ", ".join(f"{k} {v}" for k, v in comps.items())])
            if mapping.get("power"):
                facts.append(["power", str(mapping["power"])])
            blocks.append(_Table(["", ""], facts))
            seq_rows = [
                [
                    str(sq.get("name")),
                    str(sq.get("backend")),
                    _fmt_int(len(sq.get("passes") or [])),
                    _fmt_int(sq.get("program_bytes")),
                ]
                for sq in mapping.get("sequences") or []
                if isinstance(sq, dict)
            ]
            if seq_rows:
                blocks.append(_Table(["sequence", "backend", "passes", "program bytes"], seq_rows))
            np_rows = [
                [
                    str(la.get("name")),
                    _fmt_int(len(la.get("nps") or [])),
                    ", ".join(sorted({str(n.get("type")) for n in la.get("nps") or []})) or "-",
                    _fmt_int(sum(n.get("filters") or 0 for n in la.get("nps") or [])),
                    _fmt_int(sum(n.get("weight_bytes") or 0 for n in la.get("nps") or [])),
                ]
                for la in mapping.get("layers") or []
                if isinstance(la, dict)
            ]
            if np_rows:
                blocks.append(
                    _Table(
                        ["layer", "NPs", "NP types", "filters", "weight bytes"], np_rows, (1, 3, 4)
                    )
                )
    return blocks


def _plain_text(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {_plain_text(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_plain_text(x) for x in v)
    return str(v)


def _model_blocks(results: dict) -> list:
    models = _section(results, "models")
    if not models:
        return []
    rows, extra = [], []
    for name, m in models.items():
        if not isinstance(m, dict):
            continue
        details = m.get("details") if isinstance(m.get("details"), dict) else {}
        rows.append([str(name), str(m.get("backend") or "-"), _bytes(m.get("size"))])
        if m.get("backend") == "akida" or "layers" in details:
            extra += _akida_blocks(str(name), details)
        elif details:
            facts = [[str(k), _plain_text(v)] for k, v in details.items()]
            extra += [
                _Heading(4, f"{name}: what {m.get('backend')} says"),
                _Table(["", ""], facts),
            ]
    return [
        _Heading(3, "Models on the device"),
        _Table(["model", "backend (as the device runs it)", "stored size"], rows),
    ] + extra


def _profile_blocks(name: str, slug: str, profile: dict, out_dir: Path, figures: list) -> list:
    stages = profile.get("stages")
    if not (isinstance(stages, list) and stages and all(isinstance(s, dict) for s in stages)):
        return []
    total = _num(profile.get("total_us")) or sum(_num(s.get("us")) or 0.0 for s in stages)
    blocks: list = [_Heading(3, "Profile")]
    runs = _num(profile.get("runs"))
    other = profile.get("other")
    bars = list(stages)
    if isinstance(other, dict) and _num(other.get("median")) is not None:
        # Per-run times: medians and spreads, and the time beyond the stages.
        bars.append(other)
        note = (
            f"{runs:.0f} runs after {_fmt_int(profile.get('warmup'))} warm-up, mean total "
            f"{_fmt(total, 1)} µs (device time); shares are of the mean total; other is what the "
            "whole classification took beyond its stages"
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
            for s in bars
        ]
        tot = profile.get("total") if isinstance(profile.get("total"), dict) else {}
        share_sum = sum(_num(s.get("share")) or 0.0 for s in bars)
        rows.append(
            [
                "total",
                _fmt(tot.get("median"), 1),
                f"{_fmt(tot.get('p10'), 1)}-{_fmt(tot.get('p90'), 1)}",
                _fmt(total, 1),
                _fmt(share_sum, 1, " %"),
            ]
        )
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
    path = _profile_bars(bars, f"{name}: mean time per stage", out_dir / f"{slug}-profile.png")
    figures.append(path)
    blocks.append(_Figure(path, f"{name}: profile"))
    return blocks


def _classification_blocks(name, slug, cls, out_dir, figures, what="samples") -> list:
    blocks: list = [
        _Heading(3, "Classification"),
        _Para(
            f"accuracy {_fmt(cls['accuracy'], 4)}, macro F1 {_fmt(cls.get('macro_f1'), 4)}"
            f"{_macro_over(cls)}, {_fmt_int(cls.get('n'))} {what}"
        ),
    ]
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
    return blocks


def _run_blocks(name: str, slug: str, doc: dict, out_dir: Path, figures: list[Path]) -> list:
    results = doc.get("results") if isinstance(doc.get("results"), dict) else {}
    blocks: list = [_Heading(2, f"Run: {name}"), _Table(["", ""], _facts(doc, results))]

    cls = _section(results, "classification")
    if cls and _num(cls.get("accuracy")) is not None:
        blocks += _classification_blocks(name, slug, cls, out_dir, figures)

    lat = _section(results, "latency_us")
    samples = [float(v) for v in results.get("latency_samples_us") or [] if _num(v) is not None]
    if lat or samples:
        blocks.append(_Heading(3, "Latency"))
        blocks.append(
            _Para(
                "the device's own time per inference (µs), link excluded"
                + (": the whole CLASSIFY, pipeline + model graph" if doc.get("pack") else "")
            )
        )
    if lat:
        keys = ["n", "mean", "p50", "p90", "p99", "min", "max", "std"]
        row = [_fmt_int(lat.get("n"))] + [_fmt(lat.get(k), 1) for k in keys[1:]]
        blocks.append(_Table([keys[0]] + [f"{k} (µs)" for k in keys[1:]], [row], tuple(range(8))))
    tp_rows = _throughput_rows(results)
    if tp_rows:
        blocks.append(_Table(["throughput", "inferences / s", "computed as"], tp_rows, (1,)))
    if samples:
        path = _latency_histogram(
            samples,
            f"{name}: latency ({len(samples)} inferences)",
            out_dir / f"{slug}-latency.png",
        )
        figures.append(path)
        blocks.append(_Figure(path, f"{name}: latency histogram"))
        path = _latency_over_time(
            samples, f"{name}: latency in the order of the run", out_dir / f"{slug}-timeline.png"
        )
        figures.append(path)
        blocks.append(_Figure(path, f"{name}: latency over time"))

    blocks += _energy_blocks(results)
    mem_rows = _memory_rows(results)
    if mem_rows:
        blocks.append(_Heading(3, "Memory and storage"))
        header = ["figure", "bytes", "against", "share", "what it is"]
        blocks.append(_Table(header, mem_rows, (1, 3)))
    blocks += _model_blocks(results)
    profile = _section(results, "profile")
    if profile:
        blocks += _profile_blocks(name, slug, profile, out_dir, figures)
    return blocks


def _recognition_blocks(name: str, slug: str, doc: dict, out_dir: Path, figures: list) -> list:
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
        ["windows", _fmt_int(len(windows))],
        ["µs per window", time_is],
    ]
    blocks: list = [_Heading(2, f"Recognition: {name}"), _Table(["", ""], facts)]
    cls = doc.get("classification")
    if isinstance(cls, dict) and _num(cls.get("accuracy")) is not None:
        blocks += _classification_blocks(name, slug, cls, out_dir, figures, "windows")
    if windows:
        truth = any(w.get("label") for w in windows)
        header = ["window", "start", "class", "score", "µs"] + (["label"] if truth else [])
        rows = []
        for w in windows:
            row = [
                _fmt_int(w.get("window")),
                _fmt_int(w.get("start")),
                str(w.get("class")),
                _fmt(w.get("score"), 3),
                _fmt(w.get("us"), 0),
            ]
            if truth:
                ok = w.get("label") == w.get("class")
                row.append(str(w.get("label")) + ("" if ok else " (wrong)"))
            rows.append(row)
        blocks += [_Heading(3, "Windows"), _Table(header, rows, (0, 1, 3, 4))]
        us = [float(w["us"]) for w in windows if _num(w.get("us")) is not None]
        if us:
            path = _latency_over_time(
                us, f"{name}: µs per window", out_dir / f"{slug}-timeline.png", "window"
            )
            figures.append(path)
            blocks.append(_Figure(path, f"{name}: time per window"))
    return blocks


def _session_blocks(name: str, slug: str, log: dict, out_dir: Path, figures: list) -> list:
    pack = log.get("pack") if isinstance(log.get("pack"), dict) else {}
    facts = [
        ["session", str(log.get("session", "-"))],
        ["pack", " ".join(str(pack[k]) for k in ("name", "version") if pack.get(k)) or "-"],
        ["board", f"{log.get('board', '?')} ({log.get('runtime', '?')})"],
        ["learner", str(log.get("learner", "-"))],
        ["started / finished", f"{log.get('started', '-')} / {log.get('finished', '-')}"],
        [
            "plan",
            f"{log.get('shots')} shots per class in each of {log.get('rounds')} rounds, "
            f"seed {log.get('seed')}",
        ],
        ["taught", ", ".join(map(str, log.get("taught") or [])) or "-"],
        ["new classes", ", ".join(map(str, log.get("new_classes") or [])) or "none"],
        ["scored on", ", ".join(map(str, log.get("scored") or [])) or "-"],
    ]
    if isinstance(log.get("dataset"), dict):
        facts.append(["dataset", _dataset_sentence(log["dataset"])])
    if isinstance(log.get("saved"), dict):
        facts.append(["saved on the device", _plain_text(log["saved"])])
    blocks: list = [_Heading(2, f"Learning session: {name}"), _Table(["", ""], facts)]
    rows_in = [r for r in log.get("rows") or [] if isinstance(r, dict)]
    scored = [str(c) for c in log.get("scored") or []]
    if rows_in:
        header = [
            "round",
            "shots / class",
            "samples",
            "learn s (host clock)",
            "ms / sample",
            "prequential acc.",
            "held-out acc.",
            "macro F1",
            "p50 µs",
        ] + [f"acc. {c}" for c in scored]
        rows = []
        for r in rows_in:
            per = r.get("per_class") if isinstance(r.get("per_class"), dict) else {}
            lat = r.get("latency_us") if isinstance(r.get("latency_us"), dict) else {}
            rows.append(
                [
                    _fmt_int(r.get("round")),
                    _fmt_int(r.get("shots_per_class")),
                    _fmt_int(r.get("samples")),
                    _fmt(r.get("learn_s"), 3),
                    _fmt(r.get("learn_ms_per_sample"), 2),
                    _fmt(r.get("prequential_accuracy"), 3),
                    _fmt(r.get("accuracy"), 3),
                    _fmt(r.get("macro_f1"), 3),
                    _fmt(lat.get("p50"), 0),
                ]
                + [_fmt(per.get(c), 3) for c in scored]
            )
        blocks.append(_Heading(3, "Rounds"))
        blocks.append(
            _Para(
                "held-out accuracy is scored on the device after each round (round 0: before "
                "learning); prequential accuracy is the device's guess of each shot before it "
                "learned it"
            )
        )
        blocks.append(_Table(header, rows, tuple(range(len(header)))))
        path = _learning_curve(
            rows_in, scored, log.get("new_classes") or [], name, out_dir / f"{slug}-curve.png"
        )
        figures.append(path)
        blocks.append(_Figure(path, f"{name}: learning curve"))
    return blocks


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
        _num(m.get("arena_bytes"))
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


def _comparison_blocks(names: list[str], docs: list[dict], out_dir: Path, figures: list[Path]):
    runs = [d for d in docs if d.get("kind") == KIND]
    names = [n for n, d in zip(names, docs, strict=True) if d.get("kind") == KIND]
    if len(runs) < 2:
        return []
    rows = [
        ["board"] + [_board_label(d.get("board")) for d in runs],
        ["pack / model"] + [_what_label(d) for d in runs],
    ]
    for label, find, digits in _FIGURES:
        values = [_num(find(d)) for d in runs]
        if all(v is None for v in values):
            continue
        if label.startswith("energy"):
            cells = [_energy_text(_get("energy")(d)) for d in runs]
        elif digits == 0:
            cells = [_fmt_int(v) for v in values]
        else:
            cells = [_fmt(v, digits) for v in values]
        rows.append([label] + cells)
    header = ["figure"] + names
    blocks: list = [
        _Heading(2, "Comparison"),
        _Para("every figure any of the runs measured; - where a run has none"),
        _Table(header, rows, tuple(range(1, len(header)))),
    ]
    accuracy = [_num(_get("classification", "accuracy")(d)) for d in runs]
    p50 = [_num(_get("latency_us", "p50")(d)) for d in runs]
    rate = [_num(_get("throughput", "device_per_s")(d)) for d in runs]
    path = _comparison_bars(names, accuracy, p50, rate, out_dir / "comparison.png")
    if path is not None:
        figures.append(path)
        blocks.append(_Figure(path, "accuracy, p50 latency and throughput by run"))
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
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
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


def _is_session(doc: Any) -> bool:
    # session.json of kpdev learn run; logs written before it carried a kind have none.
    from kpdev.host.learning.session import SESSION_KIND

    if not isinstance(doc, dict):
        return False
    kind = doc.get("kind")
    return kind == SESSION_KIND or (
        kind is None and "session" in doc and isinstance(doc.get("rows"), list)
    )


def _kind_of(doc: Any) -> str | None:
    """'run', 'recognition' or 'session': what a report input is; None for anything else."""
    from kpdev.host.evaluation.recognize import RECOGNITION_KIND

    if not isinstance(doc, dict):
        return None
    if doc.get("kind") == KIND:
        return "run"
    if doc.get("kind") == RECOGNITION_KIND and isinstance(doc.get("windows"), list):
        return "recognition"
    return "session" if _is_session(doc) else None


TAKES = (
    "a measurements file (kpdev eval --out), a recognition (kpdev recognize --out) or a "
    "learning session's session.json (kpdev learn run --out)"
)


def read_report_input(path: Path) -> dict:
    """Load one input of ``kpdev report``: a measurements file (checked as
    ``read_measurements`` checks it), a recognition or a learning session; UsageError naming
    what the report takes for anything else."""
    from kpdev.host.evaluation.metrics import read_measurements

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"{path} is not something kpdev report takes ({e}); give it {TAKES}")
    kind = _kind_of(doc)
    if kind == "run":
        return read_measurements(path)
    if kind is None:
        what = f"kind {doc.get('kind')!r}" if isinstance(doc, dict) else "not a JSON object"
        raise UsageError(f"{path} is not something kpdev report takes ({what}); give it {TAKES}")
    return doc


def _default_title(doc: dict, i: int) -> str:
    kind = _kind_of(doc)
    if kind == "recognition":
        return f"{doc.get('board') or doc.get('platform')} / {doc.get('pack')}"
    if kind == "session":
        pack = doc.get("pack") if isinstance(doc.get("pack"), dict) else {}
        return f"{doc.get('board')} / {pack.get('name')} / {doc.get('session')}"
    return str(doc.get("label") or _default_name(doc, i))


def write_report(docs: list[dict], out_dir: Path, names: list[str] | None = None) -> dict:
    """Write report.md, report.html and PNG figures for measurements documents, recognitions
    and learning sessions.

    Each run gets its facts (dataset, host and its load), classification (per-class table,
    confusion heat map), latency (summary, throughput, histogram, latency in the order of the
    run), energy with its method, memory and storage against the board's limits, the models on
    the device (Akida's layers and mapping) and its profile, each only when the run measured
    it.  Several runs also get a comparison of every figure any of them measured, and a
    bar chart.  A recognition gets its windows, a session its rounds and learning curve.
    ``names`` label the inputs (default: the run's ``label``, else board and pack).  Returns
    ``{"markdown": Path, "html": Path, "figures": [Path, ...]}``.
    """
    docs = list(docs)
    if not docs:
        raise UsageError("nothing to report: give at least one measurements file")
    for i, doc in enumerate(docs):
        if _kind_of(doc) is None:
            raise UsageError(
                f"report input {i + 1} is not a kpdev measurements document, recognition or "
                "learning session"
            )
    if names is None:
        names = [_default_title(doc, i) for i, doc in enumerate(docs)]
    elif len(names) != len(docs):
        raise UsageError(f"{len(names)} names for {len(docs)} runs; give one name a run")
    names = [str(n) if n is not None else _default_title(d, i) for i, (n, d) in
             enumerate(zip(names, docs, strict=True))]  # fmt: skip
    names = _unique(names, " #")
    slugs = _unique([_slug(n) for n in names], "-")
    _matplotlib()  # fail before writing anything when matplotlib is missing

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Path] = []
    title = "kpdev report" if len(docs) == 1 else f"kpdev report: {len(docs)} inputs"
    blocks: list = [_Heading(1, title)]
    blocks += _comparison_blocks(names, docs, out_dir, figures)
    sections = {"run": _run_blocks, "recognition": _recognition_blocks, "session": _session_blocks}
    for name, slug, doc in zip(names, slugs, docs, strict=True):
        blocks += sections[_kind_of(doc)](name, slug, doc, out_dir, figures)

    markdown = out_dir / "report.md"
    markdown.write_text(_markdown(blocks, out_dir), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(_html(blocks, title), encoding="utf-8")
    return {"markdown": markdown, "html": page, "figures": figures}
