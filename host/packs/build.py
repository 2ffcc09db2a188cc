"""Building a Knowledge Pack: models, pipeline and dataset in, a checked ``.kp`` out.

``build_pack`` loads every model in the host reference runtime
(``kpdev.host.runtime.reference``, the device's own Linux backends), checks that the pieces fit
together (the pipeline makes the root model's input; every model runs on that same input; one
class label per output), makes test vectors, measures accuracy on the dataset's test split,
estimates the cost, and writes the pack with ``kpdev.host.packs.pack.write_pack`` (which checks
the result once more as ``read_pack`` would).

Cost, per pack (docs/packs.md ``cost``):

- ``model_bytes``: the model files added up (what the device stores).
- ``models[id]``: ``bytes``; ``arena_bytes``, the working memory the engine plans for the model
  (tflite-micro's arena as its allocator used it, the int8 interpreter's planned arena, None
  where the engine does not say); ``host_us``, the median time of one inference on the host
  reference runtime (this machine, not the device: for comparing models, not for deadlines).
- ``pipeline``: ``window_bytes``, one window of raw samples (size x axes x the input dtype's
  bytes, the device's segmenter buffer); ``features``, the feature count; ``buffer_bytes``, the
  device pipeline's working buffers (device/pipeline.py: 8-byte doubles for the per-axis columns
  (size x axes), the feature values and, with scaling, its offsets and divisors (n each), the
  per-axis mean and std, plus the output tensor).
- ``ram_bytes`` = the largest ``arena_bytes`` + ``window_bytes`` + ``buffer_bytes``: the RAM
  the pack plans, models running one at a time.  None when an engine does not report its arena.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kpdev.host import features
from kpdev.host.datasets import Dataset
from kpdev.host.errors import UsageError
from kpdev.host.evaluation.metrics import classification
from kpdev.host.packs.pack import (
    ID_RE,
    MAX_DEPTH,
    NAME_RE,
    model_path,
    new_manifest,
    npy_bytes,
    write_pack,
)
from kpdev.host.runtime.reference import ReferenceModel, concrete_shape, load_reference
from kpdev.protocol.formats import EXTENSIONS, format_of

_QRANGE = {"int8": (-128, 127), "uint8": (0, 255)}
_TIMED_RUNS = 21


@dataclass
class ModelSpec:
    """One model of a pack to build: where its file is and where it sits in the model graph.

    ``results`` maps a class index of this model to the id of the child model that runs when
    this model picks that class.  ``parent`` may be left None for a child: the model routing to
    it is its parent.
    """

    id: str
    path: Path
    classes: list[str]
    backend: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    results: dict[int, str] = field(default_factory=dict)


@dataclass
class _Model:
    spec: ModelSpec
    fmt: str
    data: bytes
    sha256: str
    ref: ReferenceModel
    io: dict[str, list[dict[str, Any]]]
    parent: str | None


def _describe(t: dict[str, Any]) -> str:
    text = f"{t['dtype']} {list(t['shape'])}"
    if t.get("scale") is not None:
        text += f" (scale {t['scale']:.6g}, zero point {t['zero_point']})"
    return text


def _same_tensor(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same dtype, shape (-1 matches any size) and, when quantized, scale and zero point."""
    if a["dtype"] != b["dtype"] or len(a["shape"]) != len(b["shape"]):
        return False
    if any(x != y and -1 not in (x, y) for x, y in zip(a["shape"], b["shape"], strict=True)):
        return False
    if a["dtype"] in _QRANGE:
        sa, sb = a.get("scale"), b.get("scale")
        if isinstance(sa, list) or isinstance(sb, list) or (sa is None) != (sb is None):
            return sa == sb
        # Model files keep scales as float32; a pipeline spec as a double.
        if sa is not None and not np.isclose(sa, sb, rtol=1e-6, atol=0.0):
            return False
        return (a.get("zero_point") or 0) == (b.get("zero_point") or 0)
    return True


def _pipeline_output(spec: dict) -> dict[str, Any]:
    out = spec.get("output") or {}
    dtype = out.get("dtype", "float32")
    quantized = dtype in _QRANGE and out.get("encoding") is None  # encoded bits: no scale
    return {
        "name": "pipeline",
        "dtype": dtype,
        "shape": list(features.out_shape(spec)),
        "scale": out.get("scale") if quantized else None,
        "zero_point": (out.get("zero_point") or 0) if quantized else None,
    }


# -- the model graph -----------------------------------------------------------------------
def _check_graph(specs: list[ModelSpec]) -> dict[str, str | None]:
    """Each model's parent, from ``parent`` and the ``results`` routing to it; UsageError when
    the graph is not one tree of at most MAX_DEPTH models."""
    if not specs:
        raise UsageError("a pack needs at least one model")
    ids = {}
    for s in specs:
        if not ID_RE.fullmatch(s.id or ""):
            raise UsageError(f"model id {s.id!r}: use 1-16 of A-Z a-z 0-9 _ -")
        if s.id in ids:
            raise UsageError(f"model id {s.id!r} is given twice")
        ids[s.id] = s
    routed: dict[str, str] = {}
    for s in specs:
        for k, child in s.results.items():
            if not isinstance(k, int) or not 0 <= k < len(s.classes):
                raise UsageError(
                    f"model {s.id!r} routes class {k!r}, but its classes are "
                    f"0..{len(s.classes) - 1} ({', '.join(s.classes)})"
                )
            if child not in ids:
                raise UsageError(
                    f"model {s.id!r} routes class {k} to {child!r}, which is not a model of the "
                    f"pack (models: {', '.join(ids)})"
                )
            if child == s.id:
                raise UsageError(f"model {s.id!r} routes class {k} to itself")
            if routed.get(child, s.id) != s.id:
                raise UsageError(
                    f"model {child!r} is routed to from both {routed[child]!r} and {s.id!r}; "
                    "a model has one parent"
                )
            routed[child] = s.id
    parents: dict[str, str | None] = {}
    for s in specs:
        if s.parent is not None and s.parent not in ids:
            raise UsageError(f"model {s.id!r}: parent {s.parent!r} is not a model of the pack")
        if s.parent is not None and routed.get(s.id) != s.parent:
            raise UsageError(
                f"model {s.id!r} has parent {s.parent!r}, but {s.parent!r} routes no class to it; "
                f"route one (parent class index -> {s.id})"
            )
        parents[s.id] = s.parent or routed.get(s.id)
    roots = [mid for mid, p in parents.items() if p is None]
    if len(roots) != 1:
        raise UsageError(
            "a pack has exactly one root model, the one no other model routes to; here "
            f"{', '.join(roots)} are roots (route a class of one model to each other model)"
            if roots
            else "the models route to each other in a cycle: a pack needs one root model"
        )
    for mid in ids:
        chain = [mid]
        at = parents[mid]
        while at is not None:
            if at in chain:
                raise UsageError(f"models {' -> '.join(chain + [at])} route in a cycle")
            chain.append(at)
            at = parents[at]
        if len(chain) > MAX_DEPTH:
            raise UsageError(
                f"model {mid!r} is {len(chain)} models deep; a device routes through at most "
                f"{MAX_DEPTH}"
            )
    return parents


def _load_model(spec: ModelSpec, parent: str | None) -> _Model:
    path = Path(spec.path)
    fmt = format_of(path.name)
    if fmt is None:
        raise UsageError(
            f"model {spec.id!r}: {path.name} has an unknown model format; use one of "
            f"{', '.join(EXTENSIONS)}"
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"model {spec.id!r}: cannot read {path}: {e.strerror or e}")
    try:
        ref = load_reference(fmt, data, spec.backend, spec.options)
    except UsageError as e:
        raise UsageError(f"model {spec.id!r} ({path.name}): {e}")
    io = ref.io_spec()
    return _Model(spec, fmt, data, hashlib.sha256(data).hexdigest(), ref, io, parent)


def _check_io(models: dict[str, _Model], root: str, pipeline: dict | None) -> None:
    for mid, m in models.items():
        s = m.spec
        if not s.classes or len(set(s.classes)) != len(s.classes) or not all(s.classes):
            raise UsageError(
                f"model {mid!r}: classes must be distinct non-empty labels, not {s.classes}"
            )
        out = m.io["outputs"][0]
        width = out["shape"][-1] if out["shape"] else 1
        if width not in (-1, len(s.classes)):
            raise UsageError(
                f"model {mid!r} gives {width} values in output 0 ({_describe(out)}) but "
                f"{len(s.classes)} classes were given ({', '.join(s.classes)}); give one class "
                "label per output value"
            )
    root_in = models[root].io["inputs"]
    if pipeline is not None:
        made = _pipeline_output(pipeline)
        if len(root_in) != 1 or not _same_tensor(root_in[0], made):
            takes = ", ".join(_describe(t) for t in root_in)
            raise UsageError(
                f"root model {root!r} takes {takes} but the pipeline makes {_describe(made)}; "
                "make the pipeline's output (dtype, shape, scale, zero_point) match the model "
                "input"
            )
    for mid, m in models.items():
        if mid == root:
            continue
        ins = m.io["inputs"]
        same = len(ins) == len(root_in) and all(
            _same_tensor(a, b) for a, b in zip(ins, root_in, strict=True)
        )
        if not same:
            raise UsageError(
                f"model {mid!r} takes {', '.join(_describe(t) for t in ins)} but the root "
                f"{root!r} takes {', '.join(_describe(t) for t in root_in)}; every model of a "
                "pack runs on the same model input"
            )


# -- model inputs --------------------------------------------------------------------------
def _quantize(x: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    lo, hi = _QRANGE[spec["dtype"]]
    t = np.asarray(x, dtype=np.float64) / float(spec["scale"])
    r = np.sign(t) * np.floor(np.abs(t) + 0.5)
    return np.clip(r + (spec["zero_point"] or 0), lo, hi).astype(spec["dtype"])


def _dataset_inputs(x: np.ndarray, spec: dict[str, Any], where: str) -> np.ndarray:
    """Dataset samples ``[n, ...]`` as a batch of the model input ``[n, *shape[1:]]``."""
    shape = concrete_shape(spec["shape"])
    sample = shape[1:] if shape and shape[0] == 1 else shape
    got = list(x.shape[1:])
    if got != sample:
        # [n, 8, 8] into [1, 8, 8, 1]: the same values when only 1-dimensions differ.
        if [d for d in got if d != 1] != [d for d in sample if d != 1]:
            raise UsageError(
                f"{where}: samples are {got} but the model input is {_describe(spec)}; give "
                "data shaped like the model input, or a pipeline (--pipeline)"
            )
        x = x.reshape([len(x)] + sample)
    dtype = spec["dtype"]
    if x.dtype.kind == "f" and dtype in _QRANGE:
        if not isinstance(spec.get("scale"), (int, float)):
            raise UsageError(
                f"{where}: samples are {x.dtype} but the model input is {_describe(spec)}, "
                "without a scale to quantize them with; give integer data"
            )
        return _quantize(x, spec)
    if x.dtype == np.dtype(dtype):
        return x
    if np.dtype(dtype).kind == "f":
        return x.astype(dtype)
    if x.dtype.kind in "iub":
        cast = x.astype(dtype)
        if np.array_equal(cast, x):
            return cast
    raise UsageError(
        f"{where}: samples are {x.dtype} but the model input is {_describe(spec)}; "
        "convert the data to the model's input dtype"
    )


def dataset_inputs(x: np.ndarray, spec: dict[str, Any], where: str) -> np.ndarray:
    """Dataset samples ``[n, ...]`` as ``n`` model inputs, each shaped, typed and quantized as
    the input tensor ``spec`` (a manifest or device io entry) takes it; UsageError if they
    cannot be."""
    return _dataset_inputs(x, spec, where).reshape([len(x)] + concrete_shape(spec["shape"]))


def _random_inputs(spec: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    shape = concrete_shape(spec["shape"])
    dtype = np.dtype(spec["dtype"])
    if dtype.kind in "iu":
        lo, hi = spec.get("range") or (np.iinfo(dtype).min, np.iinfo(dtype).max)
        return rng.integers(int(lo), int(hi), size=shape, endpoint=True).astype(dtype)
    return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)


def _random_window(pipeline: dict, rng: np.random.Generator) -> np.ndarray:
    size = pipeline["window"]["size"]
    shape = (size, len(pipeline["axes"]))
    dtype = np.dtype(pipeline.get("input_dtype", "float32"))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.normal(0.0, 1.0, size=shape).astype(dtype)


def _as_window(pipeline: dict, window: np.ndarray) -> np.ndarray:
    # What the device receives: samples in the pipeline's input dtype (counts for integers).
    return features.raw_input(pipeline, window)


# -- running the graph ---------------------------------------------------------------------
def _top(outputs: list[np.ndarray]) -> int:
    # The device takes the first largest value of output 0 (device/packrun.py _top).
    return int(np.argmax(np.asarray(outputs[0]).reshape(-1)))


def _classify(models: dict[str, _Model], root: str, inputs: list[np.ndarray]) -> str:
    """The pack's answer for one model input: root, then children while a class routes."""
    mid = root
    for _ in range(MAX_DEPTH):
        m = models[mid]
        c = _top(m.ref.run(inputs))
        child = m.spec.results.get(c)
        if child is None:
            return m.spec.classes[c] if c < len(m.spec.classes) else str(c)
        mid = child
    raise AssertionError("routing deeper than MAX_DEPTH")  # _check_graph prevents it


def _final_labels(models: dict[str, _Model]) -> list[str]:
    labels: list[str] = []
    for m in models.values():
        for i, label in enumerate(m.spec.classes):
            if i not in m.spec.results and label not in labels:
                labels.append(label)
    return labels


def _host_us(ref: ReferenceModel, inputs: list[np.ndarray]) -> float:
    ref.run(inputs)  # the first run pays for allocation and caches
    times = []
    for _ in range(_TIMED_RUNS):
        t0 = time.perf_counter_ns()
        ref.run(inputs)
        times.append((time.perf_counter_ns() - t0) / 1e3)
    return round(statistics.median(times), 3)


# -- the pack ------------------------------------------------------------------------------
def _model_entry(m: _Model, root: str, pipeline: dict | None) -> dict[str, Any]:
    s = m.spec
    if s.id == root:
        source = "pipeline" if pipeline is not None else "input"
    else:
        source = "parent"
    return {
        "id": s.id,
        "file": model_path(s.id, m.fmt),
        "format": m.fmt,
        "backend": s.backend,
        "options": dict(s.options),
        "sha256": m.sha256,
        "bytes": len(m.data),
        "inputs": _plain_specs(m.io["inputs"]),
        "outputs": _plain_specs(m.io["outputs"]),
        "classes": list(s.classes),
        "class_index": {label: i for i, label in enumerate(s.classes)},
        "source": source,
        "parent": m.parent,
        "results": {str(k): v for k, v in sorted(s.results.items())},
    }


def _plain_specs(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("name", "dtype", "shape", "scale", "zero_point", "axis", "bits", "range")
    return [{k: t[k] for k in keys if k in t} for t in specs]


def pipeline_cost(pipeline: dict) -> dict[str, int]:
    """The pipeline's part of a pack's cost: window bytes, feature count, buffer bytes."""
    size = pipeline["window"]["size"]
    n_axes = len(pipeline["axes"])
    n = features.n_features(pipeline)
    window = size * n_axes * np.dtype(pipeline.get("input_dtype", "float32")).itemsize
    out_dtype = (pipeline.get("output") or {}).get("dtype", "float32")
    scaled = pipeline.get("scale") is not None
    buffers = 8 * (size * n_axes + n + (2 * n if scaled else 0) + 2 * n_axes)
    encoding = features.encoding(pipeline)
    n_out = n * encoding["levels"] if encoding else n
    buffers += n_out * np.dtype(out_dtype).itemsize
    if encoding:
        buffers += 8 * encoding["levels"]  # the thresholds
    return {"window_bytes": window, "features": n, "buffer_bytes": buffers}


def build_pack(
    out: str | Path,
    models: list[ModelSpec],
    *,
    name: str,
    version: str = "1.0.0",
    description: str = "",
    pipeline: dict | None = None,
    dataset: Dataset | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    n_vectors: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Build the pack ``out`` and return its manifest; UsageError when the parts do not fit.

    ``dataset`` samples are raw windows ``[n, size, axes]`` when there is a ``pipeline``, model
    inputs otherwise (float data is quantized into an int8/uint8 model input with its scale and
    zero point).  Its test split (``Dataset.split(test_fraction, seed)``) gives the test vectors
    and the metrics; without a dataset the test vectors are seeded random inputs.
    ``progress(done, total)`` follows the metrics loop over the test split.
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise UsageError(f"pack name {name!r}: use 1-24 of A-Z a-z 0-9 _ -")
    if not isinstance(version, str) or not version:
        raise UsageError("a pack needs a version, e.g. 1.0.0")
    if n_vectors < 0:
        raise UsageError(f"the number of test vectors must be 0 or more, not {n_vectors}")
    if pipeline is not None:
        features.check_spec(pipeline)
    parents = _check_graph(models)
    root = next(mid for mid, p in parents.items() if p is None)
    loaded: dict[str, _Model] = {}
    try:
        for s in models:
            loaded[s.id] = _load_model(s, parents[s.id])
        _check_io(loaded, root, pipeline)
        manifest, files = _build(
            loaded,
            root,
            name=name,
            version=version,
            description=description,
            pipeline=pipeline,
            dataset=dataset,
            test_fraction=test_fraction,
            seed=seed,
            n_vectors=n_vectors,
            progress=progress,
        )
        files.update({model_path(m.spec.id, m.fmt): m.data for m in loaded.values()})
    finally:
        for m in loaded.values():
            m.ref.close()
    write_pack(out, manifest, files)
    return manifest


def _build(
    models: dict[str, _Model],
    root: str,
    *,
    name: str,
    version: str,
    description: str,
    pipeline: dict | None,
    dataset: Dataset | None,
    test_fraction: float | None,
    seed: int,
    n_vectors: int,
    progress: Callable[[int, int], None] | None,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and the test vector files."""
    root_in = models[root].io["inputs"]
    test = train = None
    if dataset is not None:
        where = f"dataset {dataset.name}"
        if pipeline is None and len(root_in) != 1:
            raise UsageError(
                f"{where}: root model {root!r} takes {len(root_in)} inputs; a dataset feeds "
                "models with one"
            )
        if pipeline is not None:
            want = (pipeline["window"]["size"], len(pipeline["axes"]))
            if dataset.x.ndim != 3 or tuple(dataset.x.shape[1:]) != want:
                raise UsageError(
                    f"{where}: samples are {list(dataset.x.shape[1:])} but the pipeline takes "
                    f"windows of {want[0]} samples x {want[1]} axes; cut the data with "
                    "--window SIZE,STRIDE"
                )
        answers = _final_labels(models)
        missing = [c for c in dataset.classes if c not in answers]
        if missing:
            raise UsageError(
                f"{where}: class {missing[0]!r} is not an answer of the pack (its final classes: "
                f"{', '.join(answers)}); the model classes must name the dataset's classes"
            )
        train, test = dataset.split(test_fraction, seed)

    def model_input(sample: np.ndarray) -> tuple[np.ndarray | None, list[np.ndarray]]:
        # (window or None, model inputs) of one dataset sample.
        if pipeline is not None:
            window = _as_window(pipeline, sample)
            return window, [features.transform(pipeline, window)]
        x = _dataset_inputs(sample[None], root_in[0], f"dataset {dataset.name}")
        return None, [x.reshape(concrete_shape(root_in[0]["shape"]))]

    # Test vectors: seeded samples of the test split, or seeded random inputs.
    rng = np.random.default_rng(seed)
    vectors: list[tuple[np.ndarray | None, list[np.ndarray], str | None]] = []
    if test is not None:
        k = min(n_vectors, len(test))
        for i in sorted(rng.choice(len(test), size=k, replace=False).tolist()):
            window, inputs = model_input(test.x[i])
            vectors.append((window, inputs, test.classes[int(test.y[i])]))
    else:
        for _ in range(n_vectors):
            if pipeline is not None:
                window = _random_window(pipeline, rng)
                vectors.append((window, [features.transform(pipeline, window)], None))
            else:
                vectors.append((None, [_random_inputs(t, rng) for t in root_in], None))
    files: dict[str, bytes] = {}
    entries = []
    for n, (window, inputs, label) in enumerate(vectors):
        entry: dict[str, Any] = {"window": None, "inputs": [], "outputs": {}, "label": label}
        if window is not None:
            entry["window"] = f"vectors/{n}/window.npy"
            files[entry["window"]] = npy_bytes(window)
        for k, x in enumerate(inputs):
            entry["inputs"].append(f"vectors/{n}/x{k}.npy")
            files[entry["inputs"][-1]] = npy_bytes(x)
        for mid, m in models.items():
            paths = []
            for k, y in enumerate(m.ref.run(inputs)):
                paths.append(f"vectors/{n}/{mid}.y{k}.npy")
                files[paths[-1]] = npy_bytes(y)
            entry["outputs"][mid] = paths
        entries.append(entry)

    metrics = None
    if test is not None:
        total = len(test)
        if pipeline is not None:
            xs = features.transform_batch(pipeline, _as_window(pipeline, test.x))
            shape = list(features.out_shape(pipeline))
            batch = [[x.reshape(shape)] for x in xs]
        else:
            xs = _dataset_inputs(test.x, root_in[0], f"dataset {dataset.name}")
            shape = concrete_shape(root_in[0]["shape"])
            batch = [[x.reshape(shape)] for x in xs]
        predicted = []
        for i, inputs in enumerate(batch):
            predicted.append(_classify(models, root, inputs))
            if progress is not None:
                progress(i + 1, total)
        truth = [test.classes[int(c)] for c in test.y]
        classes = list(dataset.classes) + [
            c for c in _final_labels(models) if c not in dataset.classes
        ]
        scores = classification(truth, predicted, classes)
        metrics = {
            "dataset": {
                "name": dataset.name,
                "source": dataset.source,
                "seed": seed,
                "test_fraction": test_fraction,
                "split": "predefined fold"
                if test_fraction is None and dataset.fold is not None
                else "stratified random",
                "n_train": len(train),
                "n_test": len(test),
            },
            "measured_on": "host reference runtime",
            **scores,
        }

    sample = vectors[0][1] if vectors else None
    cost_models = {}
    for mid, m in models.items():
        inputs = sample or [_random_inputs(t, np.random.default_rng(seed)) for t in root_in]
        cost_models[mid] = {
            "bytes": len(m.data),
            "arena_bytes": m.ref.arena_bytes(),
            "host_us": _host_us(m.ref, inputs),
            "backend": m.ref.backend,
        }
    p_cost = pipeline_cost(pipeline) if pipeline is not None else None
    arenas = [c["arena_bytes"] for c in cost_models.values()]
    ram = None
    if all(a is not None for a in arenas):
        ram = max(arenas)
        if p_cost is not None:
            ram += p_cost["window_bytes"] + p_cost["buffer_bytes"]
    manifest = new_manifest(
        name,
        version,
        description,
        pipeline,
        [_model_entry(models[s], root, pipeline) for s in _order(models, root)],
        test_vectors=entries,
        metrics=metrics,
        cost={
            "model_bytes": sum(len(m.data) for m in models.values()),
            "ram_bytes": ram,
            "models": cost_models,
            "pipeline": p_cost,
        },
    )
    return manifest, files


def _order(models: dict[str, _Model], root: str) -> list[str]:
    # The root first, then the others as given: the manifest reads top-down.
    return [root] + [mid for mid in models if mid != root]
