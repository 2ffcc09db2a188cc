"""Evaluating a pack or a model on the device: stream a test set through it, measure, summarise.

The device does the work: for a pack, each raw window goes through the device's pipeline and
model graph (CLASSIFY); for a bare model, each input goes to INFER and the class is the largest
output.  Requests are batched and pipelined within the device's window.  The host collects the
device's own timings (µs per window), the bytes the link carried and, where the board reports
it, the energy per inference; ``kpdev.host.evaluation.metrics`` turns them into the
measurements document.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from kpdev.host import features
from kpdev.host.client.client import Client
from kpdev.host.errors import UsageError
from kpdev.host.evaluation.metrics import classification, instructions, latency
from kpdev.protocol.errors import DeviceError

Progress = Callable[[int, int], None]
NO_CLASS = "(none)"  # the predicted label of a window a learner could not classify yet


def frame_batch(client: Client, sample: np.ndarray, wanted: int | None) -> int:
    """How many inputs like ``sample`` go in one request under the device's payload limit."""
    per = sample.nbytes + 32
    fit = max(1, (client.max_payload - 64) // per)
    return max(1, min(fit, wanted or fit, 64))


def energy_per_inference(stats: dict[str, Any], model: str | None) -> dict[str, Any] | None:
    """Energy per inference over the span the latency figure covers, as the device accounts it.

    For a pack (``model`` None) that is the whole CLASSIFY, pipeline + model graph (STATS
    ``packs``: after the reset, the device's one pack), split into those two stages; for a bare
    model, INFER (STATS ``models``).  The figure names its method: the board's power model
    (estimated) or the sensor that measured it.
    """
    if model is None:
        entries = [p.get("energy") for p in (stats.get("packs") or {}).values()]
    else:
        entries = [(stats.get("models", {}).get(model) or {}).get("energy")]
    entries = [e for e in entries if e and e.get("mj") is not None and e.get("count")]
    if len(entries) != 1:
        return None
    e = entries[0]
    out = {
        "uj_per_inference": e["mj"] * 1000,
        "estimated": bool(e.get("estimated")),
        "source": e.get("source"),
        "method": (
            "estimated from the board's power model"
            if e.get("estimated")
            else f"measured by {e['source']}"
        ),
        "mw": e.get("mw"),
        "count": e["count"],
        "span": "INFER" if model else "CLASSIFY (pipeline + model graph)",
    }
    if e.get("stages"):
        out["stages_uj"] = {k: v * 1000 for k, v in e["stages"].items()}
    return out


def _load_average() -> list[float] | None:
    # 1, 5 and 15 minute load averages; None where the OS keeps none (Windows).
    try:
        return [float(v) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def host_facts() -> dict[str, Any]:
    """The host a run is measured from: name, OS, Python, CPU count and its load average now
    (``load_start``; ``evaluate`` adds ``load_end``), so a noisy figure can be explained."""
    return {
        "name": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_start": _load_average(),
    }


def device_memory(client: Client, stats: dict[str, Any]) -> dict[str, Any] | None:
    """What the device says of its memory and storage after the run: STATS ``memory`` (the
    MicroPython heap and its peaks since the run's STATS reset, or the Linux agent's RSS) and
    INFO ``storage`` (the model store's quota and use)."""
    out: dict[str, Any] = dict(stats.get("memory") or {})
    try:
        storage = client.info().get("storage")
    except DeviceError:
        storage = None
    if storage:
        out["storage"] = storage
    if not out:
        return None
    out["runtime"] = client.device.get("runtime")
    return out


def _model_facts(client: Client, pack: str | None, model: str | None) -> dict[str, Any] | None:
    """MODEL_INFO of each stored model the run used (the pack's, or the bare model): its
    backend, size and what the backend says of it (arena, Akida's layers and mapping...)."""
    try:
        names = [m["name"] for m in client.models().get("models") or []]
        if model is None:
            names = [n for n in names if pack and n.startswith(pack + ".")]
        else:
            names = [n for n in names if n == model]
        facts = {}
        for name in names:
            info = client.model_info(name)
            facts[name] = {k: info.get(k) for k in ("backend", "format", "size", "details")}
    except DeviceError:
        return None
    return facts or None


def classify_samples(
    client: Client,
    xs: Any,
    *,
    classes: list[str],
    model: str | None,
    batch: int,
    window: int | None = None,
    progress: Progress | None = None,
) -> tuple[list[str], list[float]]:
    """The predicted class and the device's µs of each of ``xs`` (inputs as the device takes
    them: raw windows for a pack with a pipeline), in order: CLASSIFY on the device's pack
    (``model`` None) or INFER of stored ``model``, ``batch`` inputs a request.  ``evaluate``
    runs a whole test split through it; a fleet's ``--shard`` runs each chunk through it."""
    n = len(xs)
    predicted: list[str] = []
    times: list[float] = []
    if model is None:
        for i, r in enumerate(client.classify_many(xs, batch=batch, window=window)):
            # A learner that has learned nothing answers no class (label None).
            predicted.append(r["l"] if r["l"] is not None else NO_CLASS)
            times.append(float(r["tf"] + r["tm"]))
            if progress and (i % 8 == 7 or i == n - 1):
                progress(i + 1, n)
        return predicted, times
    done = 0
    for at in range(0, n, batch):
        group = [xs[i] for i in range(at, min(n, at + batch))]
        outputs, us = client.infer_batch(group, model=model)
        for ys, t in zip(outputs, us, strict=True):
            k = int(np.argmax(ys[0].reshape(-1)))
            predicted.append(classes[k] if k < len(classes) else str(k))
            times.append(float(t))
        done += len(group)
        if progress:
            progress(done, n)
    return predicted, times


def evaluate(
    client: Client,
    x: np.ndarray,
    labels: list[str],
    *,
    classes: list[str],
    pipeline: dict[str, Any] | None = None,
    model: str | None = None,
    batch: int | None = None,
    window: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Classify every row of ``x`` on the device; the results block of a measurements file.

    With ``model`` None the device's pack classifies (``x`` raw windows when the pack has a
    pipeline); otherwise stored model ``model`` runs each row and the largest output of output 0
    is the class index into ``classes``.  ``labels`` are the true class names.
    """
    n = len(x)
    if n == 0:
        raise UsageError("the test set is empty: nothing to evaluate")
    xs = features.raw_input(pipeline, x) if pipeline and model is None else x
    size = frame_batch(client, np.asarray(xs[0]), batch)
    host = host_facts()
    client.stats(reset=True)  # the energy figures afterwards cover this run only
    out0, in0 = client.bytes_out, client.bytes_in
    again0 = client.retries, client.resends
    t0 = time.perf_counter()
    predicted, times = classify_samples(
        client, xs, classes=classes, model=model, batch=size, window=window, progress=progress
    )
    wall = time.perf_counter() - t0
    bytes_out = client.bytes_out - out0
    bytes_in = client.bytes_in - in0
    try:
        stats = client.stats()
    except DeviceError:
        stats = {}
    host["load_end"] = _load_average()
    memory = device_memory(client, stats)
    try:
        pack_name = (client.pack_get() or {}).get("name") if model is None else None
    except DeviceError:
        pack_name = None
    models = _model_facts(client, pack_name, model)
    names = list(classes) + sorted(set(labels + predicted) - set(classes))
    index = {c: i for i, c in enumerate(names)}
    report = classification(
        np.array([index[c] for c in labels]), np.array([index[c] for c in predicted]), names
    )
    return {
        "classification": report,
        "latency_us": latency(times),
        "latency_samples_us": times,
        "predicted": predicted,
        "link": {
            "bytes_out": bytes_out,
            "bytes_in": bytes_in,
            "per_inference": (bytes_out + bytes_in) / n,
            "batch": size,
            "window": window or client.window,
            # requests sent again during the run: no reply in time (retries), or the device
            # got them damaged (resends)
            "retries": client.retries - again0[0],
            "resends": client.resends - again0[1],
        },
        "energy": energy_per_inference(stats, model),
        "wall_s": wall,
        "throughput": throughput(times, wall),
        "device_memory": memory,
        "models": models,
        "host": host,
    }


def throughput(times_us: list[float], wall_s: float | None) -> dict[str, Any]:
    """Inferences per second two ways: over the device's own time (count / the sum of the
    per-inference times: the device busy with nothing else) and over the host's wall time of
    the whole run (link, batching and the host included)."""
    n = len(times_us)
    busy = sum(times_us) / 1e6
    return {
        "n": n,
        "device_per_s": n / busy if busy > 0 else None,
        "device_s": busy,
        "wall_per_s": n / wall_s if wall_s else None,
        "wall_s": wall_s,
    }


def footprint(pack: Any | None, model_bytes: int | None, board: Any | None) -> dict[str, Any]:
    """What a run's pack or model costs and the board's limits: the pack manifest's ``cost``
    (model bytes, the arena each model's engine planned on the host, the pipeline's buffers,
    the RAM it plans) or a bare model's file size, and the catalog's ``ram_kb`` and
    ``storage_kb`` of ``board`` in bytes (None for a board not in the catalog)."""
    cost = pack.manifest.get("cost") if pack is not None else None
    return {
        "cost": cost,
        "model_bytes": (cost or {}).get("model_bytes") if cost else model_bytes,
        "catalog": board.id if board is not None else None,
        "ram_bytes": board.ram_kb * 1024 if board is not None else None,
        "storage_bytes": board.storage_kb * 1024 if board is not None else None,
    }


PROFILE_KIND = "kpdev-profile"
PROFILE_SCHEMA = 1
_RUNS_A_REQUEST = 64  # the device returns the times of each of at most 64 runs a request
_DEVICE_STAGES = ("unpack", "scale", "quantize", "encode", "learner")
# The run-to-run spread of the total (p10..p90 over the median) above which a profile is
# called noisy: the board (or the host a simulated board runs on) was busy with other work.
NOISY_SPREAD = 0.25


def _stage_name(name: str) -> str:
    # The device names a feature stage by its generator (mean, std, max...): say it is one.
    return name if name in _DEVICE_STAGES or name.startswith("model:") else f"feature:{name}"


def _spread(values: list[float]) -> dict[str, float]:
    p10, median, p90 = np.percentile(values, [10, 50, 90], method="linear")
    return {
        "median": float(median),
        "p10": float(p10),
        "p90": float(p90),
        "min": float(min(values)),
        "max": float(max(values)),
    }


def profile_pack(client: Client, pack: Any | None, runs: int, warmup: int = 2) -> dict[str, Any]:
    """Per-stage device time of the device's pack over ``runs`` timed runs after ``warmup``
    untimed ones: each stage's median, p10..p90, min..max and mean, an ``other`` row (what the
    whole classification took beyond its stages), and ``noisy`` when the total's run-to-run
    spread is over ``NOISY_SPREAD`` of its median.

    The input is ``pack``'s first test vector (its raw window) when the pack file is given,
    else a window of zeros of the device pack's input dtype.  Shares are of the mean total, so
    the stages and ``other`` add up to 100 %.
    """
    info = client.pack_get()
    if info is None:
        raise UsageError("the device has no Knowledge Pack: kpdev deploy PACK.kp first")
    clock = client.device.get("clock")  # virtual time on an emulated board in deterministic mode
    if pack is not None:
        vectors = pack.vectors()
        if not vectors:
            raise UsageError(f"{pack.path}: the pack has no test vectors to profile with")
        v = vectors[0]
        x = v["window"] if v["window"] is not None else v["inputs"][0]
    elif info.get("window"):
        x = np.zeros((info["window"][0], info["axes"]), dtype=info.get("dtype") or "float32")
    else:
        raise UsageError("give the pack file: its test vectors hold the input to profile")
    names: list[str] = []
    per_stage: dict[str, list[float]] = {}
    totals: list[float] = []
    done = 0
    while done < runs:
        n = min(_RUNS_A_REQUEST, runs - done)
        reply = client.profile(x, n, warmup if done == 0 else 0)
        if len(reply.get("totals") or []) != n:
            raise UsageError(
                "the device's agent returns no per-run times (PROFILE_RUN); install the "
                "current agent: kpdev agent install"
            )
        for stage in reply["stages"]:
            name = _stage_name(stage["name"])
            if name not in per_stage:
                names.append(name)
                per_stage[name] = [0.0] * done  # a stage not run before took no time
            samples = stage["runs"]
            if len(samples) != n:
                raise UsageError(
                    f"stage {stage['name']} ran in {len(samples)} of {n} runs: the pack's route "
                    "changed between runs of the same input, so per-run times do not add up"
                )
            per_stage[name] += [float(t) for t in samples]
        for name in names:
            if len(per_stage[name]) < done + n:
                per_stage[name] += [0.0] * n
        totals += [float(t) for t in reply["totals"]]
        done += n
    other = [t - sum(per_stage[name][i] for name in names) for i, t in enumerate(totals)]
    mean_total = float(np.mean(totals))

    def row(name: str, values: list[float]) -> dict[str, Any]:
        mean = float(np.mean(values))
        share = 100 * mean / mean_total if mean_total else 0.0
        return dict(
            {
                "name": name,
                "us": mean,
                "share": share,
                "cycles": None,
                "instructions": instructions(mean, clock),
            },
            **_spread(values),
        )

    total = dict({"us": mean_total}, **_spread(totals))
    spread = (total["p90"] - total["p10"]) / total["median"] if total["median"] else 0.0
    return {
        "kind": PROFILE_KIND,
        "schema": PROFILE_SCHEMA,
        "pack": info["name"],
        "version": info["version"],
        "board": client.device.get("board"),
        "runtime": client.device.get("runtime"),
        "clock": clock,
        "runs": runs,
        "warmup": warmup,
        "unit": "us",
        "stages": [row(name, per_stage[name]) for name in names],
        "other": row("other", other),
        "total": total,
        "total_us": mean_total,
        "spread": spread,
        "noisy": spread > NOISY_SPREAD,
    }


def test_split(
    spec: str,
    window: tuple[int, int] | None,
    test_fraction: float | None,
    seed: int,
    pipeline: dict[str, Any] | None,
    limit: int | None = None,
):
    """The dataset ``spec`` and its test split, cut into windows as ``window`` says or, without
    one, as the pack's ``pipeline`` does; at most ``limit`` test samples.  Windows a pipeline
    takes are checked against its window and axes here, before anything reaches a device."""
    from kpdev.host.datasets import load_dataset

    if window is None and pipeline:
        window = (pipeline["window"]["size"], pipeline["window"]["stride"])
    try:
        ds = load_dataset(spec, window=window)
    except UsageError as e:
        if window is None and "window" in str(e):
            raise UsageError(f"{e} (or evaluate a pack whose pipeline gives the window)")
        raise
    _, test = ds.split(test_fraction, seed)
    if limit:
        test = test.subset(np.arange(min(limit, len(test))))
    if pipeline:
        want = (pipeline["window"]["size"], len(pipeline["axes"]))
        if test.x.ndim != 3 or tuple(test.x.shape[1:]) != want:
            raise UsageError(
                f"{spec} holds samples of shape {list(test.x.shape[1:])} but the pack's pipeline "
                f"takes windows of {want[0]} samples x {want[1]} axes "
                f"({', '.join(pipeline['axes'])})"
            )
    return ds, test


def known_only(test, known: list[str]):
    """``test`` without the samples whose true class is not in ``known`` (the classes a pack
    answers with), and ``{class: samples}`` of what was left out; UsageError when none is known.

    A pack cannot answer with a class it was not built for, so scoring those samples would
    count them as errors the pack never had a chance to avoid."""
    keep = np.array([test.classes[int(i)] in known for i in test.y], dtype=bool)
    skipped: dict[str, int] = {}
    for i in test.y[~keep]:
        label = test.classes[int(i)]
        skipped[label] = skipped.get(label, 0) + 1
    if not keep.any():
        raise UsageError(
            f"none of the test samples' classes ({', '.join(skipped)}) is one the pack knows "
            f"({', '.join(known)}): evaluate it on data of its own classes"
        )
    return (test.subset(np.flatnonzero(keep)) if skipped else test), skipped


def saturation(x: np.ndarray, spec: dict[str, Any]) -> dict[str, Any] | None:
    """How many values of float samples ``x`` fall outside what the quantized input ``spec``
    holds (they saturate to its lowest or highest value); None when nothing is quantized."""
    dtype = np.dtype(spec["dtype"])
    if x.dtype.kind != "f" or dtype.kind not in "iu" or not spec.get("scale"):
        return None
    info = np.iinfo(dtype)
    zero = spec.get("zero_point") or 0
    t = np.asarray(x, dtype=np.float64) / float(spec["scale"])
    q = np.sign(t) * np.floor(np.abs(t) + 0.5) + zero  # rounded as packs.build quantizes
    return {
        "saturated": int(np.count_nonzero((q < info.min) | (q > info.max))),
        "values": int(q.size),
        "scale": float(spec["scale"]),
        "zero_point": int(zero),
        "dtype": dtype.name,
    }


class Target:
    """What ``evaluate`` runs on the device: a deployed pack or an uploaded model, the inputs
    in the form it takes, and the class labels it can answer with."""

    def __init__(self, name, model, classes, inputs, quantization=None, class_order=None):
        self.name = name  # the pack's or the model's name
        self.model = model  # the model INFER runs (None: a pack, CLASSIFY)
        self.classes = classes
        self.inputs = inputs
        # How the host quantized the samples (``saturation``), None when it did not.
        self.quantization = quantization
        # A bare model names no classes: {"assumed": True, "from": "dataset", "classes"}.
        self.class_order = class_order


def output_count(spec: dict[str, Any]) -> int | None:
    """How many values one sample's output tensor ``spec`` holds (the classes a classifier
    scores); None when its shape does not say."""
    shape = spec.get("shape") if isinstance(spec, dict) else None
    if not isinstance(shape, list) or not shape:
        return None
    return int(np.prod([d for d in shape if d > 0]))


def put_on_device(
    client: Client,
    samples: np.ndarray,
    dataset_classes: list[str],
    *,
    pack: Any | None = None,
    model_file: Any | None = None,
    board: Any | None = None,
    where: str = "dataset",
    input_scale: float | None = None,
    progress: Progress | None = None,
) -> Target:
    """Make the device ready to evaluate ``samples``: deploy the ``pack`` (kept when the device
    holds it already; see ``packs.deploy.deploy_pack``), or upload ``model_file`` stored but not
    activated.  Samples that a model takes directly (a pack with no pipeline, a bare model with
    one input) are multiplied by ``input_scale`` when given, then shaped and quantized as its
    input tensor wants them; ``Target.quantization`` counts the values that saturated.

    A bare model names no classes: its output k is taken as the dataset's k-th class, an
    assumption ``Target.class_order`` records, and a UsageError when the model's output and
    the dataset have different numbers of classes."""
    from kpdev.host.packs.build import dataset_inputs
    from kpdev.host.packs.deploy import deploy_pack, read_model_file

    classes = list(dataset_classes)
    direct = pack is None or (
        not pack.manifest.get("pipeline") and len(pack.root()["inputs"]) == 1
    )
    if input_scale is not None and not direct:
        raise UsageError(
            f"--input-scale scales samples a model takes directly; pack {pack.name}'s pipeline "
            "makes its model input from raw windows: leave --input-scale out"
        )
    if input_scale is not None:
        samples = np.asarray(samples, dtype=np.float64) * input_scale

    def model_inputs(spec):
        # The samples are the model input: shape them as kpdev pack build did for a pack's
        # own accuracy, and count what the input quantization cannot hold.
        sat = saturation(samples, spec)
        if sat is not None:
            sat["input_scale"] = input_scale
        return dataset_inputs(samples, spec, where), sat

    quantization = None
    if pack is not None:
        deploy_pack(client, pack, board, progress=progress)
        if direct:
            samples, quantization = model_inputs(pack.root()["inputs"][0])
        classes += [label for label in pack.classes() if label not in classes]
        return Target(pack.name, None, classes, samples, quantization)
    data, fmt = read_model_file(model_file)
    name = model_file.stem
    client.upload(name, data, fmt, {}, activate=False, progress=progress)
    io = client.model_info(name).get("io") or {}
    outputs = io.get("outputs") or []
    count = output_count(outputs[0]) if outputs else None
    if count is not None and count != len(classes):
        # Output k can only be the dataset's k-th class when there are as many of each.
        raise UsageError(
            f"model {name} gives {count} outputs but {where} has {len(classes)} classes, so "
            "which output is which class is unknown: build a pack that names them in output "
            f"order (kpdev pack build PACK.kp -m {model_file} -c LABEL,...) and evaluate it"
        )
    inputs = io.get("inputs") or []
    if len(inputs) == 1:
        samples, quantization = model_inputs(inputs[0])
    order = {"assumed": True, "from": "dataset", "classes": classes}
    return Target(name, name, classes, samples, quantization, order)


def eval_document(
    client: Client,
    board: Any | None,
    on: Target,
    test: Any,
    *,
    pack: Any | None,
    target: Any,
    inputs: dict[str, Any],
    skipped: dict[str, int] | None = None,
    label: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Evaluate ``on`` (made by ``put_on_device``) over ``test`` on the device behind
    ``client`` and return the measurements document of ``kpdev eval``: one board's run, also
    each member's run of a fleet's ``--each``.  ``inputs`` records how the samples were made
    (dataset, window, batch, in_flight, input_scale; seed and test_fraction for the split)."""
    from kpdev.host.evaluation.metrics import board_info, measurements, versions_of

    labels = [test.classes[int(i)] for i in test.y]
    results = evaluate(
        client,
        on.inputs,
        labels,
        classes=on.classes,
        pipeline=pack.manifest.get("pipeline") if pack is not None else None,
        model=on.model,
        batch=inputs.get("batch"),
        window=inputs.get("in_flight"),
        progress=progress,
    )
    results["skipped"] = skipped or None
    results["input_quantization"] = on.quantization
    results["class_order"] = on.class_order
    results["footprint"] = footprint(pack, None if pack else target.stat().st_size, board)
    return measurements(
        "eval",
        label=label,
        board=board_info(client, board),
        versions=versions_of(client),
        results=results,
        pack=(
            {"name": pack.name, "version": pack.manifest["version"], "path": str(target)}
            if pack
            else None
        ),
        model=None if pack else {"name": on.model, "path": str(target)},
        dataset=dict(
            test.summary(),
            seed=inputs.get("seed"),
            test_fraction=inputs.get("test_fraction"),
            split="test",
        ),
        inputs={k: inputs.get(k) for k in _RUN_INPUTS},
    )


_RUN_INPUTS = ("dataset", "window", "batch", "in_flight", "input_scale")
