"""The report's section for one run (a measurements document of ``kpdev eval``): its facts,
classification, latency and throughput, energy, memory and storage, models and profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kpdev.host.evaluation.report_blocks import Figure, Heading, Para, Table
from kpdev.host.evaluation.report_figures import (
    confusion_heatmap,
    latency_histogram,
    latency_over_time,
)
from kpdev.host.evaluation.report_models import model_blocks
from kpdev.host.evaluation.report_profile import profile_blocks
from kpdev.host.evaluation.report_text import (
    board_label,
    byte_text,
    dataset_sentence,
    fmt,
    fmt_int,
    num,
    section_of,
    what_label,
)
from kpdev.host.plain import human_bytes


def _macro_over(cls: dict, data: str) -> str:
    # Which classes macro F1 averages over (documents before it did: every class, say nothing).
    present = cls.get("macro_f1_classes")
    if not isinstance(present, list):
        return ""
    return f" (over the {len(present)} classes in {data})"


def _share(part: Any, whole: Any) -> str:
    a, b = num(part), num(whole)
    return "-" if a is None or not b else f"{100 * a / b:.1f} %"


def _host_text(host: dict) -> str:
    parts = [str(host.get("name") or "?")]
    if host.get("os"):
        parts.append(str(host["os"]))
    if host.get("python"):
        parts.append(f"Python {host['python']}")
    if num(host.get("cpus")) is not None:
        parts.append(f"{host['cpus']} CPUs")
    return ", ".join(parts)


def _load_text(host: dict) -> str | None:
    def three(v: Any) -> str | None:
        if isinstance(v, list) and len(v) == 3 and all(num(x) is not None for x in v):
            return "/".join(f"{x:.2f}" for x in v)
        return None

    start, end = three(host.get("load_start")), three(host.get("load_end"))
    if not start and not end:
        return None
    text = f"1/5/15-minute load average {start or '-'} at the start, {end or '-'} at the end"
    cpus = num(host.get("cpus"))
    busiest = max(
        (num(v[0]) or 0.0 for v in (host.get("load_start"), host.get("load_end")) if v),
        default=0.0,
    )
    if cpus and busiest > cpus:
        text += f": more tasks waiting than the {cpus:.0f} CPUs, timings may be noisy"
    return text


def _facts(doc: dict, results: dict) -> list[list[str]]:
    facts = [
        ["command", str(doc.get("command", "-"))],
        ["created", str(doc.get("created", "-"))],
        ["board", board_label(doc.get("board"))],
        ["pack / model", what_label(doc)],
    ]
    if doc.get("label"):
        facts.insert(0, ["label", str(doc["label"])])
    dataset = doc.get("dataset")
    if isinstance(dataset, dict) and dataset:
        facts.append(["dataset", dataset_sentence(dataset)])
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
    order = results.get("class_order")
    if isinstance(order, dict) and order.get("assumed"):
        classes = ", ".join(map(str, order.get("classes") or [])) or "-"
        facts.append(
            [
                "class order",
                f"assumed: the model names no classes, its output k is taken as class k of the "
                f"{order.get('from') or 'dataset'} ({classes})",
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
    if num(results.get("wall_s")) is not None:
        facts.append(["wall time", fmt(results["wall_s"], 2, " s") + " (host clock, whole run)"])
    link = section_of(results, "link")
    if link:
        facts.append(
            [
                "link",
                f"{fmt_int(link.get('bytes_out'))} B out, {fmt_int(link.get('bytes_in'))} B in, "
                f"{fmt_int(link.get('per_inference'))} B per inference",
            ]
        )
    host = section_of(results, "host")
    if host:
        facts.append(["host", _host_text(host)])
        load = _load_text(host)
        if load:
            facts.append(["host load", load])
    return facts


# Throughput figures: (key, row label, span key, what the span is).
_THROUGHPUT = (
    (
        "device_per_s",
        "over device time",
        "device_s",
        "s: the sum of the device's per-inference times (the device busy with nothing else)",
    ),
    (
        "wall_per_s",
        "over wall time",
        "wall_s",
        "s of the host's clock: link, batching and the host included",
    ),
)


def _throughput_rows(results: dict) -> list[list[str]]:
    tp = section_of(results, "throughput")
    if not tp:
        return []
    return [
        [
            label,
            fmt(tp[key], 1),
            f"{fmt_int(tp.get('n'))} inferences / {fmt(tp.get(span), 4)} {what}",
        ]
        for key, label, span, what in _THROUGHPUT
        if num(tp.get(key)) is not None
    ]


def _memory_rows(results: dict) -> list[list[str]]:
    """figure, bytes, limit, share of the limit, what it is."""
    mem = section_of(results, "device_memory") or {}
    foot = section_of(results, "footprint") or {}
    cost = foot.get("cost") if isinstance(foot.get("cost"), dict) else {}
    catalog = foot.get("catalog") or "the board"
    ram = num(foot.get("ram_bytes"))
    ram_text = f"{human_bytes(int(ram))} RAM ({catalog}, catalog)" if ram else "-"
    storage = mem.get("storage") if isinstance(mem.get("storage"), dict) else {}
    quota = num(storage.get("quota"))
    if quota:
        store_limit, store_text = quota, f"{human_bytes(int(quota))} store quota (device INFO)"
    elif num(foot.get("storage_bytes")):
        store_limit = num(foot["storage_bytes"])
        store_text = f"{human_bytes(int(store_limit))} storage ({catalog}, catalog)"
    else:
        store_limit, store_text = None, "-"
    heap = num(mem.get("heap_total"))
    heap_text = f"{human_bytes(int(heap))} heap (device STATS)" if heap else ram_text
    heap_limit = heap or ram

    rows = []

    def add(label, value, limit, limit_text, what):
        if num(value) is not None:
            rows.append([label, byte_text(value), limit_text, _share(value, limit), what])

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
    for name, m in (section_of(results, "models") or {}).items():
        details = m.get("details") if isinstance(m, dict) else None
        if isinstance(details, dict):
            if num(details.get("arena_used_bytes")) is not None:
                arena = details["arena_used_bytes"]
                what = (
                    f"arena the device's {m.get('backend')} allocator used, of "
                    f"{fmt_int(details.get('arena_size_bytes'))} B given (MODEL_INFO)"
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
    if not isinstance(energy, dict) or num(energy.get("uj_per_inference")) is None:
        return []
    method = energy.get("method") or ("estimated" if energy.get("estimated") else "not named")
    rows = [
        [
            str(energy.get("span") or "per inference"),
            fmt(energy["uj_per_inference"], 2),
            str(method),
        ]
    ]
    stages = energy.get("stages_uj")
    if isinstance(stages, dict):
        rows += [[f"  of which {k}", fmt(v, 2), str(method)] for k, v in stages.items()]
    note = f"µJ per inference over {fmt_int(energy.get('count'))} inferences"
    if num(energy.get("mw")) is not None:
        note += f", at {fmt(energy['mw'], 0)} mW"
    return [
        Heading(3, "Energy"),
        Para(note),
        Table(["span", "µJ per inference", "method"], rows, (1,)),
    ]


def classification_blocks(
    name, slug, cls, out_dir, figures, what="samples", data="the test data"
) -> list:
    """Accuracy, per-class scores and the confusion heat map of ``cls``."""
    blocks: list = [
        Heading(3, "Classification"),
        Para(
            f"accuracy {fmt(cls['accuracy'], 4)}, macro F1 {fmt(cls.get('macro_f1'), 4)}"
            f"{_macro_over(cls, data)}, {fmt_int(cls.get('n'))} {what}"
        ),
    ]
    per_class = cls.get("per_class")
    if isinstance(per_class, dict) and per_class:
        rows = [
            [
                str(label),
                fmt(m.get("precision"), 4),
                fmt(m.get("recall"), 4),
                fmt(m.get("f1"), 4),
                fmt_int(m.get("support")),
            ]
            for label, m in per_class.items()
            if isinstance(m, dict)
        ]
        blocks.append(Table(["class", "precision", "recall", "F1", "support"], rows, (1, 2, 3, 4)))
    confusion, classes = cls.get("confusion"), cls.get("classes")
    if (
        isinstance(confusion, list)
        and isinstance(classes, list)
        and classes
        and len(confusion) == len(classes)
        and all(isinstance(row, list) and len(row) == len(classes) for row in confusion)
    ):
        path = confusion_heatmap(
            confusion,
            [str(c) for c in classes],
            f"{name}: confusion (rows true)",
            out_dir / f"{slug}-confusion.png",
        )
        figures.append(path)
        blocks.append(Figure(path, f"{name}: confusion matrix"))
    return blocks


def run_blocks(name: str, slug: str, doc: dict, out_dir: Path, figures: list[Path]) -> list:
    """The section of one measurements document, each part only when the run measured it."""
    results = doc.get("results") if isinstance(doc.get("results"), dict) else {}
    blocks: list = [Heading(2, f"Run: {name}"), Table(["", ""], _facts(doc, results))]

    cls = section_of(results, "classification")
    if cls and num(cls.get("accuracy")) is not None:
        blocks += classification_blocks(name, slug, cls, out_dir, figures)

    lat = section_of(results, "latency_us")
    samples = [float(v) for v in results.get("latency_samples_us") or [] if num(v) is not None]
    if lat or samples:
        blocks.append(Heading(3, "Latency"))
        blocks.append(
            Para(
                "the device's own time per inference (µs), link excluded"
                + (": the whole CLASSIFY, pipeline + model graph" if doc.get("pack") else "")
            )
        )
    if lat:
        keys = ["n", "mean", "p50", "p90", "p99", "min", "max", "std"]
        row = [fmt_int(lat.get("n"))] + [fmt(lat.get(k), 1) for k in keys[1:]]
        blocks.append(Table([keys[0]] + [f"{k} (µs)" for k in keys[1:]], [row], tuple(range(8))))
    tp_rows = _throughput_rows(results)
    if tp_rows:
        blocks.append(Table(["throughput", "inferences / s", "computed as"], tp_rows, (1,)))
    if samples:
        path = latency_histogram(
            samples,
            f"{name}: latency ({len(samples)} inferences)",
            out_dir / f"{slug}-latency.png",
        )
        figures.append(path)
        blocks.append(Figure(path, f"{name}: latency histogram"))
        path = latency_over_time(
            samples, f"{name}: latency in the order of the run", out_dir / f"{slug}-timeline.png"
        )
        figures.append(path)
        blocks.append(Figure(path, f"{name}: latency over time"))

    blocks += _energy_blocks(results)
    mem_rows = _memory_rows(results)
    if mem_rows:
        blocks.append(Heading(3, "Memory and storage"))
        header = ["figure", "bytes", "against", "share", "what it is"]
        blocks.append(Table(header, mem_rows, (1, 3)))
    blocks += model_blocks(results)
    profile = section_of(results, "profile")
    if profile:
        blocks += profile_blocks(name, slug, profile, out_dir, figures)
    return blocks
