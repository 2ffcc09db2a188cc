"""The report's section of a fleet run (``kpdev eval --fleet``, kind ``kpdev-fleet``): one table
across boards (accuracy, latency p50/p99, throughput, energy, memory), the boards that failed and
why, a bar chart, then the merged run (--shard) or each board's run (--each)."""

from __future__ import annotations

from pathlib import Path

from kpdev.host.evaluation.report_blocks import Figure, Heading, Para, Table
from kpdev.host.evaluation.report_figures import comparison_bars
from kpdev.host.evaluation.report_runs import run_blocks
from kpdev.host.evaluation.report_text import byte_text, fmt, fmt_int


def fleet_blocks(name: str, slug: str, doc: dict, out_dir: Path, figures: list[Path]) -> list:
    from kpdev.host.fleet.evaluate import member_figures

    mode = doc.get("mode")
    rows_in = doc.get("members") or []
    what = (doc.get("pack") or doc.get("model") or {}).get("name")
    blocks: list = [
        Heading(2, f"Fleet: {name}"),
        Para(
            f"{what} on {len(rows_in)} boards, "
            + (
                "every board evaluating the whole test split (--each)"
                if mode == "each"
                else "the test split shared out among the boards in chunks (--shard)"
            )
            + f": {doc.get('finished')} finished, {doc.get('failed')} failed, "
            f"{fmt(doc.get('wall_s'), 1)} s of wall time for {doc.get('samples')} samples. "
            "Latency is the device's own time per inference; throughput is inferences per "
            "second of wall time (link and host included); energy as each board reports it."
        ),
    ]
    header = ["board", "status", "accuracy" if mode == "each" else "samples", "p50 µs",
              "p99 µs", "inferences/s (wall)", "energy µJ/inference", "memory (peak)"]  # fmt: skip
    rows, names, acc, p50, rate = [], [], [], [], []
    for r in rows_in:
        f = member_figures(r, mode)
        if f is None:
            rows.append([r["member"], f"failed: {r.get('reason')}"] + ["-"] * 6)
            continue
        energy = "-"
        if f["energy_uj"] is not None:
            energy = fmt(f["energy_uj"], 1) + (" (estimated)" if f["energy_estimated"] else "")
        rows.append(
            [
                r["member"],
                "ok" if r["status"] == "ok" else f"failed: {r.get('reason')}",
                fmt(f["accuracy"], 3) if mode == "each" else fmt_int(f["n"]),
                fmt(f["p50"], 0),
                fmt(f["p99"], 0),
                fmt(f["per_s"], 1),
                energy,
                f"{byte_text(f['memory'])} ({f['memory_key']})" if f["memory"] else "-",
            ]
        )
        names.append(r["member"])
        acc.append(f["accuracy"])
        p50.append(f["p50"])
        rate.append(f["device_per_s"])
    blocks.append(Table(header, rows, (2, 3, 4, 5, 6)))
    failed = [r for r in rows_in if r.get("status") != "ok"]
    if failed:
        blocks.append(
            Para(
                "Failed boards: "
                + "; ".join(f"{r['member']}: {r.get('reason')}" for r in failed)
                + (
                    " (their results are missing)"
                    if mode == "each"
                    else " (their unfinished chunks went to the other boards)"
                )
            )
        )
    shard = doc.get("shard")
    if shard:
        blocks.append(
            Para(
                f"{shard.get('chunks')} chunks of {shard.get('chunk')} samples; "
                f"{shard.get('requeued')} handed on from a failed board; "
                f"{shard.get('missing_samples')} samples left undone."
            )
        )
    if names:
        path = comparison_bars(names, acc, p50, rate, out_dir / f"fleet-{slug}.png")
        if path is not None:
            figures.append(path)
            blocks.append(Figure(path, f"accuracy, p50 latency and throughput by board, {name}"))
    if doc.get("merged"):
        blocks += run_blocks(f"{name}, merged", f"{slug}-merged", doc["merged"], out_dir, figures)
    for r in rows_in:
        m = r.get("measurements")
        if m:
            sub = f"{slug}-{r['member']}".replace("#", "-")
            blocks += run_blocks(f"{name}, {r['member']}", sub, m, out_dir, figures)
    return blocks
