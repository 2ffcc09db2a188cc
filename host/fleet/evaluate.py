"""``kpdev eval --fleet``: a pack or model on many boards at once, ``each`` or ``shard``.

- each: every member evaluates the whole test split (``evaluation.evaluate.eval_document``, the
  same as a one-board ``kpdev eval``); the fleet document holds one measurements document per
  member, and says which members failed and why (their results are missing).
- shard: the test split is cut into small chunks in one ``ShardQueue``; each member deploys,
  then takes chunks until none is left, so a fast board takes more.  A member that fails gives
  its unfinished chunk back for another.  The merged result puts every sample's prediction and
  device time back in sample order, so its classification is what one board would give on the
  same samples; each sample is recorded once, by the member that finished its chunk.

The fleet document (kind ``kpdev-fleet``) is what ``kpdev report`` reads for the table across
boards.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from kpdev.host.errors import BoardError
from kpdev.host.evaluation.evaluate import (
    classify_samples,
    device_memory,
    energy_per_inference,
    eval_document,
    frame_batch,
    host_facts,
    put_on_device,
    throughput,
)
from kpdev.host.evaluation.metrics import (
    FLEET_KIND,
    classification,
    latency,
    measurements,
    utc_now,
)
from kpdev.host.fleet.runner import ShardQueue, Watch, run_all
from kpdev.host.fleet.select import Member
from kpdev.protocol.errors import KpdevError

FLEET_SCHEMA = 1
DEFAULT_CHUNK = 8


def catalog_board(member: Member, client) -> Any | None:
    """The catalog entry of a member: its own, else the one its agent names (a tagged place or
    a bare port), else None."""
    from kpdev.host.boards.catalog import get_board

    for bid in (member.board, None if member.board else client.device.get("board")):
        if bid:
            try:
                return get_board(bid)
            except BoardError:
                return None
    return None


class Job:
    """What every member of a fleet eval runs: the pack or model, the test split, how."""

    def __init__(self, *, pack, target, ds, test, skipped, inputs, label=None, where="dataset"):
        self.pack = pack
        self.target = target
        self.ds = ds
        self.test = test
        self.skipped = skipped
        self.inputs = inputs
        self.label = label
        self.where = where
        self.labels = [test.classes[int(i)] for i in test.y]

    def put(self, c, b):
        return put_on_device(
            c, self.test.x, self.ds.classes, pack=self.pack, model_file=self.target, board=b,
            where=self.where, input_scale=self.inputs.get("input_scale"),
        )  # fmt: skip

    def what(self) -> dict[str, Any]:
        if self.pack is not None:
            m = self.pack.manifest
            return {"pack": {"name": self.pack.name, "version": m["version"],
                             "path": str(self.target)}}  # fmt: skip
        return {"model": {"name": self.target.stem, "path": str(self.target)}}


def eval_each(
    members: list[Member],
    job: Job,
    *,
    key: str | None = None,
    timeout: float = 30.0,
    watch: Watch | None = None,
    opener=None,
) -> dict[str, Any]:
    """Every member evaluates the whole split; the fleet document."""
    watch = watch or Watch()

    def work(c, member: Member, progress):
        b = catalog_board(member, c)
        progress.status("deploying")
        on = job.put(c, b)
        progress.status("evaluating")
        doc = eval_document(
            c, b, on, job.test, pack=job.pack, target=job.target, inputs=job.inputs,
            skipped=job.skipped, label=job.label, progress=progress,
        )  # fmt: skip
        doc["fleet_member"] = member.name
        doc["link"] = c.link_report()
        return doc

    t0, cpu0 = time.perf_counter(), time.process_time()
    outcomes = run_all(members, work, key=key, timeout=timeout, watch=watch, opener=opener)
    rows = [o.row() for o in outcomes]
    for row, o in zip(rows, outcomes, strict=True):
        row["measurements"] = o.result if o.ok else None
        row["missing"] = None if o.ok else len(job.test)
    doc = _fleet_doc("each", job, rows, None, time.perf_counter() - t0)
    doc["host_cpu_s"] = time.process_time() - cpu0
    return doc


def eval_shard(
    members: list[Member],
    job: Job,
    *,
    chunk: int = DEFAULT_CHUNK,
    key: str | None = None,
    timeout: float = 30.0,
    watch: Watch | None = None,
    opener=None,
) -> dict[str, Any]:
    """The split shared out among the members in chunks; the fleet document with the merged
    measurements in sample order."""
    watch = watch or Watch()
    n = len(job.test)
    queue = ShardQueue(n, chunk)
    predicted: list[str | None] = [None] * n
    times: list[float | None] = [None] * n
    by: list[str | None] = [None] * n
    ready: dict[str, Any] = {}  # one member's Target, for the merged document's facts

    def work(c, member: Member, progress):
        from kpdev.host import features

        b = catalog_board(member, c)
        progress.status("deploying")
        on = job.put(c, b)
        ready.setdefault("on", on)
        pipeline = job.pack.manifest.get("pipeline") if job.pack is not None else None
        raw = pipeline and on.model is None
        xs = features.raw_input(pipeline, on.inputs) if raw else on.inputs
        size = frame_batch(c, np.asarray(xs[0]), job.inputs.get("batch"))
        host = host_facts()
        c.stats(reset=True)
        out0, in0 = c.bytes_out, c.bytes_in
        mine: list[float] = []
        spans: list[list[int]] = []
        progress.status("evaluating")
        t0 = time.perf_counter()
        while True:
            span = queue.take(member.name)
            if span is None:
                break
            a, z = span
            try:
                p, t = classify_samples(
                    c, xs[a:z], classes=on.classes, model=on.model, batch=size,
                    window=job.inputs.get("in_flight"),
                )  # fmt: skip
            except BaseException:
                queue.give_back(span)
                raise
            predicted[a:z], times[a:z], by[a:z] = p, t, [member.name] * (z - a)
            queue.finish(span)
            mine += t
            spans.append([a, z])
            progress(len(mine), n)
        wall = time.perf_counter() - t0
        try:
            stats = c.stats()
        except KpdevError:
            stats = {}
        bo, bi = c.bytes_out - out0, c.bytes_in - in0
        return {
            "board": {"name": c.device.get("board"), "catalog": b.name if b else None,
                      "runtime": c.device.get("runtime"), "platform": c.device.get("platform")},
            "samples": len(mine),
            "chunks": spans,
            "latency_us": latency(mine) if mine else None,
            "throughput": throughput(mine, wall),
            "energy": energy_per_inference(stats, on.model),
            "device_memory": device_memory(c, stats),
            "link": {"bytes_out": bo, "bytes_in": bi,
                     "per_inference": (bo + bi) / len(mine) if mine else None, "batch": size},
            "host": host,
            "wall_s": wall,
        }  # fmt: skip

    t0, cpu0 = time.perf_counter(), time.process_time()
    outcomes = run_all(members, work, key=key, timeout=timeout, watch=watch, opener=opener)
    wall = time.perf_counter() - t0
    host_cpu = time.process_time() - cpu0
    rows = [o.row() for o in outcomes]
    for row, o in zip(rows, outcomes, strict=True):
        row["results"] = o.result if o.ok else None
    # What a failed member finished before it failed stays counted (its chunks were recorded).
    for row in rows:
        row["samples"] = sum(1 for who in by if who == row["member"])
    missing = queue.missing()
    merged = None
    if "on" in ready and not missing:
        merged = _merged(job, ready, predicted, times, by, wall, queue.requeued)
    doc = _fleet_doc("shard", job, rows, merged, wall)
    # This process's CPU time over the run (every board's thread: encoding, decoding, merging).
    doc["host_cpu_s"] = host_cpu
    doc["shard"] = {
        "chunk": chunk,
        "chunks": -(-n // chunk),
        "requeued": queue.requeued,
        "missing": [list(s) for s in missing],
        "missing_samples": sum(z - a for a, z in missing),
        "done_samples": queue.done_count(),
    }
    return doc


def _merged(job: Job, ready, predicted, times, by, wall: float, requeued: int) -> dict:
    """One measurements document for the whole split, samples in order."""
    on = ready["on"]
    names = list(on.classes) + sorted(set(job.labels + predicted) - set(on.classes))
    index = {k: i for i, k in enumerate(names)}
    report = classification(
        np.array([index[k] for k in job.labels]), np.array([index[k] for k in predicted]), names
    )
    results = {
        "classification": report,
        "latency_us": latency(times),
        "latency_samples_us": times,
        "predicted": predicted,
        "by_member": by,
        "wall_s": wall,
        "throughput": throughput(times, wall),
        "skipped": job.skipped or None,
        "input_quantization": on.quantization,
        "class_order": on.class_order,
        "requeued_chunks": requeued,
    }
    return measurements(
        "eval",
        label=job.label,
        board={"name": "fleet (merged)", "catalog": None, "runtime": None, "platform": None},
        versions={},
        results=results,
        dataset=dict(job.test.summary(), seed=job.inputs.get("seed"),
                     test_fraction=job.inputs.get("test_fraction"), split="test"),
        inputs={k: job.inputs.get(k) for k in ("dataset", "window", "batch", "in_flight",
                                               "input_scale")},
        **job.what(),
    )  # fmt: skip


def _fleet_doc(mode: str, job: Job, rows, merged, wall: float) -> dict[str, Any]:
    ok = [r for r in rows if r["status"] == "ok"]
    return {
        "kind": FLEET_KIND,
        "schema": FLEET_SCHEMA,
        "created": utc_now(),
        "command": "eval",
        "mode": mode,
        "label": job.label,
        **job.what(),
        "samples": len(job.test),
        "wall_s": wall,
        "members": rows,
        "finished": len(ok),
        "failed": len(rows) - len(ok),
        "merged": merged,
    }


def member_figures(row: dict[str, Any], mode: str) -> dict[str, Any] | None:
    """One member's figures for the table across boards, from a fleet document's row: accuracy
    (--each), samples, latency p50/p99, throughput, energy, memory."""
    if mode == "each":
        doc = row.get("measurements")
        if not doc:
            return None
        r = doc["results"]
        acc = r["classification"]["accuracy"]
        n = r["classification"]["n"]
    else:
        r = row.get("results")
        if not r:
            return None
        acc = None
        n = r["samples"]
    lat = r.get("latency_us") or {}
    tp = r.get("throughput") or {}
    energy = (r.get("energy") or {}).get("uj_per_inference")
    mem = r.get("device_memory") or {}
    peak = next((mem[k] for k in ("heap_peak", "peak_used", "rss_peak", "rss") if k in mem), None)
    return {
        "accuracy": acc,
        "n": n,
        "p50": lat.get("p50"),
        "p99": lat.get("p99"),
        "per_s": tp.get("wall_per_s"),
        "device_per_s": tp.get("device_per_s"),
        "energy_uj": energy,
        "energy_estimated": bool((r.get("energy") or {}).get("estimated")),
        "memory": peak,
        "memory_key": next(
            (k for k in ("heap_peak", "peak_used", "rss_peak", "rss") if k in mem), None
        ),
    }
