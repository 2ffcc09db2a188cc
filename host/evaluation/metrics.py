"""Evaluation numbers and the measurements file that carries them (``kpdev-measurements``).

A measurements file is UTF-8 JSON, one object:

```
{"kind": "kpdev-measurements", "schema": 1, "created": "2026-11-21T10:00:00Z",
 "command": "eval", "label": text | null, "board": {...}, "pack": {...} | null,
 "model": {...} | null,
 "dataset": {...} | null, "inputs": {...} | null, "versions": {...},
 "results": {"classification": {...}, "latency_us": {...}, "latency_samples_us": [...],
             "link": {"bytes_out": N, "bytes_in": N, "per_inference": N},
             "energy": {"uj_per_inference": X, "estimated": true, "method": text,
                        "source": text, "mw": X, "count": N, "span": text,
                        "stages_uj": {"pipeline": X, "models": X}} | null,
             "wall_s": X, "profile": {...} | null,
             "throughput": {"n", "device_per_s", "device_s", "wall_per_s", "wall_s"},
             "device_memory": {"runtime", "heap_peak", "heap_live_peak", "heap_total", ... |
                               "rss", "rss_peak", "ram_free", "storage": {quota, used, free}},
             "footprint": {"cost": pack cost | null, "model_bytes", "catalog", "ram_bytes",
                           "storage_bytes"},
             "models": {stored name: {"backend", "format", "size", "details"}},
             "host": {"name", "os", "python", "cpus", "load_start", "load_end"}}}
```

``label`` is the name the user gave the run (``kpdev eval --label``); reports head the run with
it.  ``throughput`` is inferences per second over the device's own time (count / the sum of the
latency samples) and over the host's wall time of the run (link included).  ``device_memory``
is what STATS and INFO say after the run: on MicroPython ``heap_peak`` is the most heap seen in
use after a request since the run's STATS reset (an upper bound, garbage included) and
``heap_live_peak`` the most live heap after a collection (a lower bound); on the Linux agent
``rss_peak`` is the agent process's peak resident set since it started.  ``footprint`` holds the
pack manifest's cost (``arena_bytes``: planned by the host reference runtime) and the catalog
board's RAM and storage.  ``host`` names the machine that ran kpdev and its 1/5/15-minute load
averages at the start and the end of the run.

Every member of ``results`` is optional; readers skip what is missing.  ``classification``'s
``macro_f1`` is the mean F1 over ``macro_f1_classes``, the classes present in the true labels.
``kpdev eval`` adds ``"skipped": {class: samples} | null`` (test samples of classes the pack
does not know, left out of every figure) and ``"input_quantization": {"saturated": N,
"values": N, "scale", "zero_point", "dtype", "input_scale"} | null`` (samples the host
quantized for the model's input: how many values fell outside its range and saturated) and,
for a bare model, ``"class_order": {"assumed": true, "from": "dataset", "classes"} | null``
(a model names no classes: its output k is taken as the dataset's k-th class).
``energy`` covers the span the latency figures cover (a pack: the whole CLASSIFY, pipeline +
model graph, with ``stages_uj`` splitting it; a bare model: INFER) and ``method`` says how it
was obtained: an estimate from the board's power model, or the sensor that measured it.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from kpdev import __version__
from kpdev.host.atomic import write_atomic
from kpdev.host.errors import UsageError
from kpdev.host.plain import jsonable

KIND = "kpdev-measurements"
FLEET_KIND = "kpdev-fleet"  # a fleet run: its members' documents (kpdev.host.fleet)
SCHEMA = 1


def _class_indices(values: Sequence[Any], classes: list[str], what: str) -> np.ndarray:
    """Labels, or integer indices into ``classes``, as an index array."""
    index = {label: i for i, label in enumerate(classes)}
    out = np.empty(len(values), dtype=np.int64)
    for n, value in enumerate(values):
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            i = int(value)
            if not 0 <= i < len(classes):
                raise UsageError(f"{what}[{n}] is class index {i}, outside 0..{len(classes) - 1}")
        else:
            i = index.get(str(value))
            if i is None:
                raise UsageError(f"{what}[{n}] is {value!r}, not one of the classes {classes}")
        out[n] = i
    return out


def _ratio(num: float, den: float) -> float:
    # Zero division (a class never predicted, or absent from y_true) counts as 0.0, as
    # scikit-learn's zero_division=0 does.
    return float(num / den) if den else 0.0


def classification(y_true: Sequence[Any], y_pred: Sequence[Any], classes: list[str]) -> dict:
    """Accuracy, confusion matrix, per-class precision/recall/F1 and macro F1.

    ``y_true`` and ``y_pred`` hold class labels or integer indices into ``classes``. The
    confusion matrix has a row per true class and a column per predicted class, in the order of
    ``classes``. A ratio whose denominator is zero (precision of a class never predicted, recall
    of a class absent from ``y_true``, F1 when both are 0) is 0.0. Macro F1 is the plain mean of
    the per-class F1 over the classes present in ``y_true`` (``macro_f1_classes`` names them):
    a class the test data lacks has no recall to score, and counting it as 0 would understate a
    perfect run (scikit-learn's ``f1_score(average="macro", labels=present)``).
    """
    classes = [str(c) for c in classes]
    if not classes:
        raise UsageError("classification needs at least one class")
    if len(set(classes)) != len(classes):
        raise UsageError(f"class labels repeat: {classes}")
    y_true = list(y_true)
    y_pred = list(y_pred)
    if len(y_true) != len(y_pred):
        raise UsageError(
            f"{len(y_true)} true labels but {len(y_pred)} predictions; they must pair up"
        )
    if not y_true:
        raise UsageError("no samples to score: y_true and y_pred are empty")
    t = _class_indices(y_true, classes, "y_true")
    p = _class_indices(y_pred, classes, "y_pred")
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (t, p), 1)

    tp = np.diag(confusion)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    per_class = {}
    for i, label in enumerate(classes):
        precision = _ratio(tp[i], predicted[i])
        recall = _ratio(tp[i], support[i])
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_class[label] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(support[i]),
        }
    n = len(y_true)
    present = [label for label in classes if per_class[label]["support"]]
    return {
        "n": n,
        "accuracy": float(tp.sum() / n),
        "classes": classes,
        "confusion": confusion.tolist(),
        "per_class": per_class,
        "macro_f1": float(np.mean([per_class[label]["f1"] for label in present])),
        "macro_f1_classes": present,
    }


def latency(us_values: Iterable[float]) -> dict:
    """Summary of per-inference times in microseconds: n, mean, p50, p90, p99, min, max, std.

    Percentiles use numpy's "linear" method; ``std`` is the population standard deviation.
    """
    values = np.asarray(list(us_values), dtype=np.float64)
    if values.size == 0:
        raise UsageError("no latency samples: at least one inference time is needed")
    if not np.all(np.isfinite(values)):
        raise UsageError("latency samples must be finite numbers (found NaN or infinity)")
    p50, p90, p99 = np.percentile(values, [50, 90, 99], method="linear")
    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "min": float(values.min()),
        "max": float(values.max()),
        "std": float(values.std()),
    }


def utc_now() -> str:
    """The current time as ISO-8601 UTC to the second: '2026-11-21T10:00:00Z'."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def measurements(
    command: str,
    *,
    board: dict,
    versions: dict,
    results: dict,
    pack: dict | None = None,
    model: dict | None = None,
    dataset: dict | None = None,
    inputs: dict | None = None,
    created: str | None = None,
    label: str | None = None,
) -> dict:
    """A measurements document (plain JSON data) for one run of ``command``; ``label`` is the
    name a user gave the run."""
    if not command or not isinstance(command, str):
        raise UsageError("a measurements document needs the command that made it")
    if not isinstance(results, dict):
        raise UsageError(f"results must be a dict, not {type(results).__name__}")
    doc = {
        "kind": KIND,
        "schema": SCHEMA,
        "created": created or utc_now(),
        "command": command,
        "label": label,
        "board": board,
        "pack": pack,
        "model": model,
        "dataset": dataset,
        "inputs": inputs,
        "versions": versions,
        "results": results,
    }
    # numpy scalars and arrays, tuples and bytes become plain JSON values once, here.
    return jsonable(doc)


def write_measurements(doc: dict, path: str | os.PathLike) -> Path:
    """Write ``doc`` to ``path`` atomically (a temporary file beside it, then a rename)."""
    path = Path(path)
    try:
        text = json.dumps(jsonable(doc), indent=2, allow_nan=False) + "\n"
    except ValueError:
        raise UsageError(f"{path}: measurements hold NaN or infinity, which JSON cannot carry")
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def read_measurements(path: str | os.PathLike) -> dict:
    """Load and check a measurements file; a file kpdev cannot use raises ``UsageError``."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file")
    except IsADirectoryError:
        raise UsageError(f"{name} is a directory, not a measurements file")
    except UnicodeDecodeError:
        raise UsageError(f"{name} is not a kpdev measurements file (not UTF-8 text)")
    except OSError as e:
        raise UsageError(f"{name}: cannot read ({e.strerror or e})")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{name} is not a kpdev measurements file (not JSON: {e.msg} at line {e.lineno} "
            f"column {e.colno})"
        )
    if not isinstance(doc, dict) or "kind" not in doc:
        raise UsageError(f'{name} is not a kpdev measurements file (no "kind")')
    if doc["kind"] != KIND:
        raise UsageError(f"{name} is not a kpdev measurements file (kind {doc['kind']!r})")
    schema = doc.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise UsageError(f"{name}: measurements schema {schema!r} is not a valid schema number")
    if schema > SCHEMA:
        raise UsageError(
            f"{name}: measurements schema {schema} is newer than this kpdev ({SCHEMA}); "
            "upgrade kpdev"
        )
    for key in ("command", "board", "results"):
        if key not in doc:
            raise UsageError(f'{name}: measurements file has no "{key}"')
    if not isinstance(doc["results"], dict):
        raise UsageError(f'{name}: "results" is not an object')
    return doc


def versions_of(c) -> dict[str, Any]:
    """The versions a measurements document records: kpdev's and the agent's (a Client)."""
    return {
        "kpdev": __version__,
        "agent": c.device.get("agent"),
        "runtime": c.device.get("runtime"),
        "runtime_version": c.device.get("runtime_version"),
        "backends": c.device.get("backends"),
    }


def board_info(c, b) -> dict[str, Any]:
    """The board a measurements document records: what the agent says, and its catalog name;
    ``clock`` when its time is virtual (an emulated board in deterministic mode)."""
    info = {
        "name": c.device.get("board"),
        "catalog": b.name if b else None,
        "runtime": c.device.get("runtime"),
        "platform": c.device.get("platform"),
    }
    if c.device.get("clock"):
        info["clock"] = c.device["clock"]
    return info


def instructions(us: float, clock: dict | None) -> float | None:
    """Instructions executed in ``us`` µs of a board's virtual time (QEMU -icount: one
    instruction every ``ns_per_instruction`` ns); None when the board's clock is measured."""
    if not clock or clock.get("kind") != "icount":
        return None
    return us * 1000.0 / clock["ns_per_instruction"]


def clock_note(clock: dict | None) -> str | None:
    """How to read the µs figures of a board whose clock is virtual; None for a measured one."""
    if not clock or clock.get("kind") != "icount":
        return None
    ns = clock["ns_per_instruction"]
    return (
        f"times are virtual (QEMU -icount: 1 instruction = {ns} ns): µs × {1000 / ns:g} = "
        "instructions executed, whatever the host's load; not measured time or cycles (no "
        "cache or wait-state model)"
    )
