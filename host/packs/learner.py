"""Building a Knowledge Pack whose classifier is a learner the device trains (``learning``).

Two learners (docs/packs.md ``learning``):

- ``memory``: a class-incremental few-shot learner over the pipeline's output vector
  (``kpdev.accelerators.learner.MemoryLearner``: k nearest stored samples or nearest class
  mean, a bounded number of samples per class); any board runs it, microcontrollers included.
- ``akida``: a one-layer Akida model (1-bit input, a FullyConnected layer compiled for akida's
  own edge learning, ``kpdev.host.learning.models.akida_learning_model``).  Its input must be
  binary, so the pipeline's output must carry an ``encoding`` (thermometer).

``learn_shots`` > 0 teaches the learner that many samples per class of the dataset's train
side on the host, with the device's own code, before the pack is written: the pack then
starts knowing its classes, and a session can teach it new ones.  With 0 it starts empty.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from kpdev.host import features
from kpdev.host.datasets import Dataset
from kpdev.host.errors import UsageError
from kpdev.host.evaluation.evaluate import NO_CLASS
from kpdev.host.evaluation.metrics import classification
from kpdev.host.packs.pack import (
    LEARNERS,
    NAME_RE,
    STATE_FILE,
    Pack,
    model_path,
    new_manifest,
    npy_bytes,
    write_pack,
)

MEMORY_DEFAULTS = {"per_class": 16, "k": 1, "metric": "l1", "mode": "knn"}
AKIDA_KEYS = ("neurons_per_class", "num_weights", "learning_competition")
LEARNER_MODEL = "learner"  # the model id of the akida learner's model


def _options(learner: str, options: dict[str, Any]) -> dict[str, Any]:
    known = tuple(MEMORY_DEFAULTS) if learner == "memory" else AKIDA_KEYS
    for key in options:
        if key not in known + ("max_classes",):
            raise UsageError(
                f"learner option {key!r} is not one of the {learner} learner's: "
                f"{', '.join(known + ('max_classes',))}"
            )
    if learner == "memory":
        return {k: options.get(k, v) for k, v in MEMORY_DEFAULTS.items()}
    return {k: options[k] for k in AKIDA_KEYS if k in options}


def _shots(train: Dataset, classes: list[str], shots: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = []
    for label in classes:
        members = np.flatnonzero(train.y == train.classes.index(label))
        if len(members) < shots:
            raise UsageError(
                f"class {label!r} has {len(members)} training samples; --learn-shots {shots} "
                "needs that many"
            )
        picks.append(rng.permutation(members)[:shots])
    return rng.permutation(np.concatenate(picks)) if picks else np.zeros(0, int)


def build_learning_pack(
    out: str | Path,
    *,
    learner: str,
    pipeline: dict,
    dataset: Dataset,
    name: str,
    version: str = "1.0.0",
    description: str = "",
    classes: list[str] | None = None,
    learn_shots: int = 0,
    options: dict[str, Any] | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    n_vectors: int = 4,
) -> dict[str, Any]:
    """Build the learner pack ``out`` and return its manifest; UsageError when the parts do
    not fit (a learner the pipeline cannot feed, classes the dataset lacks, too few shots)."""
    from kpdev.host.packs.build import pipeline_cost
    from kpdev.host.runtime.reference import ReferenceLearner

    if learner not in LEARNERS:
        raise UsageError(f"--learner {learner!r}: use one of {', '.join(LEARNERS)}")
    if not NAME_RE.fullmatch(name):
        raise UsageError(f"pack name {name!r}: use 1-24 of A-Z a-z 0-9 _ -")
    if learn_shots < 0:
        raise UsageError(f"--learn-shots must be 0 or more, not {learn_shots}")
    features.check_spec(pipeline)
    options = dict(options or {})
    max_classes = int(options.pop("max_classes", 32))
    opts = _options(learner, options)
    labels = list(classes or dataset.classes)
    for label in labels:
        if label not in dataset.classes:
            raise UsageError(
                f"class {label!r} is not in {dataset.name} (its classes: "
                f"{', '.join(dataset.classes)})"
            )
    if not labels or len(labels) > max_classes:
        raise UsageError(f"a learner starts with 1..{max_classes} classes, not {len(labels)}")
    want = (pipeline["window"]["size"], len(pipeline["axes"]))
    if dataset.x.ndim != 3 or tuple(dataset.x.shape[1:]) != want:
        raise UsageError(
            f"dataset {dataset.name}: samples are {list(dataset.x.shape[1:])} but the pipeline "
            f"takes windows of {want[0]} samples x {want[1]} axes; cut the data with --window"
        )
    shape = list(features.out_shape(pipeline))
    out_spec = pipeline.get("output") or {}
    dtype = out_spec.get("dtype", "float32")
    encoding = features.encoding(pipeline)
    n = int(np.prod(shape[1:]))
    train, test = dataset.split(test_fraction, seed)
    test = test.subset(np.flatnonzero(np.isin(test.y, [dataset.classes.index(c) for c in labels])))
    models: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    if learner == "akida":
        if encoding is None or dtype != "uint8" or len(shape) != 4:
            raise UsageError(
                "the akida learner takes binary input: give the pipeline an output encoding "
                "(thermometer, dtype uint8, shape [1, 1, 1, N]; docs/packs.md)"
            )
        from kpdev.host.learning.models import akida_learning_model

        data = akida_learning_model(n, len(labels), **opts)
        entry = _akida_entry(data, labels)
        models.append(entry)
        files[entry["file"]] = data
    learning: dict[str, Any] = {
        "learner": learner,
        "classes": labels,
        "max_classes": max_classes,
        "model": LEARNER_MODEL if learner == "akida" else None,
        "output": 0,
        "options": opts,
        "input": {"dtype": dtype, "shape": shape, "encoding": encoding},
        "state": None,
        "pretrained": None,
        "learned": None,
    }
    manifest = new_manifest(
        name,
        version,
        description,
        pipeline,
        models,
        learning=learning,
        test_vectors=[],
        metrics=None,
        cost=None,
    )
    ref = ReferenceLearner(Pack(str(out), manifest, files))
    try:
        if learn_shots:
            idx = _shots(train, labels, learn_shots, seed)
            xs = features.transform_batch(pipeline, features.raw_input(pipeline, train.x[idx]))
            ys = [labels.index(train.classes[int(train.y[i])]) for i in idx]
            state = ref.learn([x.reshape(shape) for x in xs], ys)
            learning["pretrained"] = {"shots": learn_shots, "seed": seed, "dataset": dataset.name}
            if learner == "memory":
                files[STATE_FILE] = state
                learning["state"] = {
                    "file": STATE_FILE,
                    "sha256": hashlib.sha256(state).hexdigest(),
                    "bytes": len(state),
                }
            else:
                models[0] = _akida_entry(state, labels)
                files[models[0]["file"]] = state
        windows = features.raw_input(pipeline, test.x)
        inputs = features.transform_batch(pipeline, windows)
        predicted = [ref.classify(x.reshape(shape))[1] for x in inputs]
        rng = np.random.default_rng(seed)
        entries = []
        for k, i in enumerate(sorted(rng.choice(len(test), min(n_vectors, len(test)), False))):
            entry = {
                "window": f"vectors/{k}/window.npy",
                "inputs": [f"vectors/{k}/x0.npy"],
                "outputs": {},
                "label": test.classes[int(test.y[i])],
            }
            files[entry["window"]] = npy_bytes(windows[i])
            files[entry["inputs"][0]] = npy_bytes(inputs[i].reshape(shape))
            for mid in [m["id"] for m in models]:
                ys_ = ref.model_outputs(mid, inputs[i].reshape(shape))
                entry["outputs"][mid] = [f"vectors/{k}/{mid}.y{j}.npy" for j in range(len(ys_))]
                for p, y in zip(entry["outputs"][mid], ys_, strict=True):
                    files[p] = npy_bytes(y)
            entries.append(entry)
    finally:
        ref.close()
    manifest["test_vectors"] = entries
    if learn_shots:
        truth = [test.classes[int(c)] for c in test.y]
        names = labels + [NO_CLASS]
        scores = classification(truth, [p or NO_CLASS for p in predicted], names)
        manifest["metrics"] = {
            "dataset": {
                "name": dataset.name,
                "source": dataset.source,
                "seed": seed,
                "n_train": len(train),
                "n_test": len(test),
                "learn_shots": learn_shots,
            },
            "measured_on": "host reference runtime",
            **scores,
        }
    itemsize = np.dtype(dtype).itemsize
    memory = opts["per_class"] * n * itemsize * max_classes if learner == "memory" else None
    cost = pipeline_cost(pipeline)
    model_bytes = sum(len(files[m["file"]]) for m in models)
    manifest["cost"] = {
        "model_bytes": model_bytes + (learning["state"] or {}).get("bytes", 0),
        # The Akida engine does not say what its model takes: unknown, as build.py leaves it
        # for an engine that does not report its arena.
        "ram_bytes": cost["window_bytes"] + cost["buffer_bytes"] + memory
        if memory is not None
        else None,
        "learner_memory_bytes": memory,
        "models": {m["id"]: {"bytes": m["bytes"], "backend": "akida"} for m in models},
        "pipeline": cost,
    }
    write_pack(out, manifest, files)
    return manifest


def _akida_entry(data: bytes, labels: list[str]) -> dict[str, Any]:
    from kpdev.host.runtime.reference import load_reference

    ref = load_reference("fbz", data, "akida", {"output": "forward"})
    try:
        io = ref.io_spec()
    finally:
        ref.close()
    keys = ("name", "dtype", "shape", "scale", "zero_point", "bits", "range")
    return {
        "id": LEARNER_MODEL,
        "file": model_path(LEARNER_MODEL, "fbz"),
        "format": "fbz",
        "backend": "akida",
        "options": {"output": "forward"},
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "inputs": [{k: t[k] for k in keys if k in t} for t in io["inputs"]],
        "outputs": [{k: t[k] for k in keys if k in t} for t in io["outputs"]],
        "classes": list(labels),
        "class_index": {label: i for i, label in enumerate(labels)},
        "source": "kpdev.host.learning.models.akida_learning_model",
        "parent": None,
        "results": None,
    }
