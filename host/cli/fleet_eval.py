"""``kpdev eval`` on a fleet: the run (``kpdev.host.fleet.evaluate``), the view and the table
across boards.  Reached from ``kpdev eval`` when its options select several boards."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from kpdev.host.atomic import refuse_existing
from kpdev.host.cli.fleet import fleet_run
from kpdev.host.cli.options import emit, err, out
from kpdev.host.errors import BoardError
from kpdev.host.fleet.evaluate import member_figures
from kpdev.host.fleet.select import Selection


def eval_fleet(
    target: Path,
    sel: Selection,
    *,
    dataset: str | None,
    win,
    test_fraction,
    seed: int,
    limit,
    batch,
    in_flight,
    input_scale,
    out_file: Path | None,
    force: bool,
    label: str | None,
    shard: bool,
    chunk: int,
    key: str | None,
    timeout: float,
    json_: bool,
) -> None:
    """Evaluate on every board of ``sel`` (--each) or across them (--shard); write the fleet
    measurements file, print the table across boards."""
    from kpdev.host.cli.evaluate import load_test
    from kpdev.host.evaluation.metrics import write_measurements
    from kpdev.host.fleet.evaluate import Job, eval_each, eval_shard

    pack, ds, test, skipped = load_test(target, dataset, win, test_fraction, seed, limit)
    name = pack.name if pack is not None else target.stem
    path = out_file or Path(f"kpdev-fleet-{name}.json")
    refuse_existing(path, force, "measurements file")
    job = Job(
        pack=pack, target=target, ds=ds, test=test, skipped=skipped, label=label,
        where=f"dataset {dataset}",
        inputs={"dataset": dataset, "window": win, "batch": batch, "in_flight": in_flight,
                "input_scale": input_scale, "seed": seed, "test_fraction": test_fraction},
    )  # fmt: skip
    with fleet_run(sel, json_, len(test)) as (members, watch):
        if shard:
            doc = eval_shard(members, job, chunk=chunk, key=key, timeout=timeout, watch=watch)
        else:
            doc = eval_each(members, job, key=key, timeout=timeout, watch=watch)
    write_measurements(doc, path)
    if json_:
        emit(dict(doc, path=str(path)))
    else:
        print_fleet(doc)
        out.print(f"fleet measurements written to {path}", markup=False)
    for row in doc["members"]:
        if row["status"] != "ok":
            err.print(f"{row['member']}: failed: {row['reason']}", style="red", markup=False)
    if not doc["finished"]:
        raise BoardError("eval: no board of the fleet finished (see the lines above)")
    sh = doc.get("shard")
    if sh and sh["missing_samples"]:
        raise BoardError(
            f"eval --shard: {sh['missing_samples']} of {doc['samples']} samples were left undone "
            "(every board that could take them failed); the merged result is missing"
        )


def print_fleet(doc: dict) -> None:
    """The table across boards, and the merged line of a sharded run."""
    from kpdev.host.plain import human_bytes

    mode = doc["mode"]
    what = (doc.get("pack") or doc.get("model") or {}).get("name")
    t = Table(
        title=f"{what} on {len(doc['members'])} boards ({mode}): {doc['finished']} finished, "
        f"{doc['failed']} failed, {doc['wall_s']:.1f} s",
        title_justify="left",
    )
    cols = ["board", "status", "accuracy" if mode == "each" else "samples", "p50 µs", "p99 µs",
            "per s (wall)", "energy µJ", "peak memory"]  # fmt: skip
    width = min(28, max(len(r["member"]) for r in doc["members"]))
    for c in cols:
        t.add_column(
            c,
            justify="left" if c in ("board", "status") else "right",
            min_width=width if c == "board" else None,
        )
    for row in doc["members"]:
        f = member_figures(row, mode)
        if f is None:
            done = row.get("samples")
            t.add_row(escape(row["member"]), "[red]failed[/red]",
                      "" if mode == "each" else str(done or 0), *[""] * 5)  # fmt: skip
            continue
        first = f"{f['accuracy']:.3f}" if mode == "each" else str(f["n"])
        t.add_row(
            escape(row["member"]),
            "ok" if row["status"] == "ok" else f"[red]failed[/red] ({row.get('samples', 0)} done)",
            first,
            _num(f["p50"]),
            _num(f["p99"]),
            _num(f["per_s"], 1),
            (_num(f["energy_uj"], 1) + (" (est.)" if f["energy_estimated"] else ""))
            if f["energy_uj"] is not None
            else "-",
            human_bytes(f["memory"]) if f["memory"] is not None else "-",
        )
    out.print(t)
    merged = doc.get("merged")
    if merged:
        r = merged["results"]
        cl = r["classification"]
        sh = doc["shard"]
        out.print(
            f"merged: accuracy [bold]{cl['accuracy']:.3f}[/bold] over {cl['n']} samples (each "
            f"once, in sample order), macro F1 {cl['macro_f1']:.3f}; latency p50 "
            f"{r['latency_us']['p50']:.0f} µs, p99 {r['latency_us']['p99']:.0f} µs; "
            f"{r['throughput']['wall_per_s']:.1f} inferences/s of wall time; "
            f"{sh['chunks']} chunks of {sh['chunk']}, {sh['requeued']} handed on from a failed "
            "board"
        )


def _num(v, digits: int = 0) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
