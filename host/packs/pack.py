"""Knowledge Pack files (``.kp``): read and check one, write one, describe it for a device.

A pack is a zip holding ``manifest.json``, the model files under ``models/`` and test vectors
under ``vectors/`` (docs/packs.md is the specification).  ``read_pack`` checks everything a
later step relies on before it returns (the zip, the manifest's fields and types, each model's
size and SHA-256, the model graph, the class maps, the test vector files), so code holding a
``Pack`` never meets a half-valid one.  Every refusal is a ``UsageError`` of one line naming the
pack, the problem and what to do.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kpdev.host.atomic import write_atomic
from kpdev.host.errors import UsageError
from kpdev.protocol.formats import EXTENSIONS

SCHEMA = 1
MANIFEST = "manifest.json"
# The device follows at most this many models from the root (device/packrun.py _MAX_DEPTH).
MAX_DEPTH = 8

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,24}")
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_FORMATS = sorted(set(EXTENSIONS.values()))
_EXT_OF = {fmt: ext for ext, fmt in EXTENSIONS.items()}
# Zip entries get one fixed time so that the same content makes the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_REBUILD = "rebuild it with kpdev pack build"


def model_path(model_id: str, fmt: str) -> str:
    """The zip entry of a model: ``models/<id>.<ext>``."""
    return f"models/{model_id}{_EXT_OF[fmt]}"


@dataclass
class Pack:
    """A checked Knowledge Pack: its manifest and the bytes of every zip entry by name."""

    path: str
    manifest: dict[str, Any]
    files: dict[str, bytes] = field(repr=False)

    @property
    def name(self) -> str:
        """The pack's name from its manifest."""
        return self.manifest["name"]

    @property
    def models(self) -> list[dict[str, Any]]:
        """The manifest's model entries, in manifest order."""
        return self.manifest["models"]

    def model(self, model_id: str) -> dict[str, Any]:
        """The manifest entry of model ``model_id``; UsageError naming the known ids if none."""
        for m in self.models:
            if m["id"] == model_id:
                return m
        known = ", ".join(m["id"] for m in self.models)
        raise UsageError(f"{self.path}: no model {model_id!r} in the pack (it has: {known})")

    def root(self) -> dict[str, Any] | None:
        """The one model without a parent (None for a pack that is a pipeline and a learner)."""
        return next((m for m in self.models if m.get("parent") is None), None)

    @property
    def learning(self) -> dict[str, Any] | None:
        """The manifest's ``learning`` section (None for a pack without a learner)."""
        return self.manifest.get("learning")

    def learner_state(self) -> bytes | None:
        """The memory learner's starting state (``learning.state``), when the pack has one."""
        state = (self.learning or {}).get("state")
        return self.files[state["file"]] if state else None

    def classes(self) -> list[str]:
        """The labels the pack answers with: its learner's, else its final models'."""
        if self.learning is not None:
            return list(self.learning["classes"])
        labels: list[str] = []
        for m in self.models:
            for i, label in enumerate(m["classes"]):
                if str(i) not in (m.get("results") or {}) and label not in labels:
                    labels.append(label)
        return labels

    def children(self, model_id: str) -> list[dict[str, Any]]:
        """The models whose parent is ``model_id``."""
        return [m for m in self.models if m.get("parent") == model_id]

    def model_bytes(self, model_id: str) -> bytes:
        """The model file of ``model_id``, as stored in the pack."""
        return self.files[self.model(model_id)["file"]]

    def vectors(self) -> list[dict[str, Any]]:
        """The test vectors with their arrays loaded: ``{"window": ndarray | None, "inputs":
        [ndarray], "outputs": {id: [ndarray]}, "label": str | None}``."""
        vectors = []
        for v in self.manifest["test_vectors"]:
            window = v.get("window")
            vectors.append(
                {
                    "window": self._array(window) if window else None,
                    "inputs": [self._array(p) for p in v["inputs"]],
                    "outputs": {
                        mid: [self._array(p) for p in paths] for mid, paths in v["outputs"].items()
                    },
                    "label": v.get("label"),
                }
            )
        return vectors

    def _array(self, entry: str) -> np.ndarray:
        try:
            return np.load(io.BytesIO(self.files[entry]), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise UsageError(
                f"{self.path}: test vector {entry} is not a .npy array ({e}); {_REBUILD}"
            )

    def summary(self) -> dict[str, Any]:
        """Plain data describing the pack (what ``kpdev pack inspect --json`` prints)."""
        m = self.manifest
        return {
            "path": self.path,
            "schema": m["schema"],
            "name": m["name"],
            "version": m["version"],
            "created": m.get("created"),
            "description": m.get("description", ""),
            "kpdev": m.get("kpdev"),
            "root": (self.root() or {}).get("id"),
            "models": [
                {
                    key: model.get(key)
                    for key in (
                        "id",
                        "file",
                        "format",
                        "backend",
                        "options",
                        "sha256",
                        "bytes",
                        "inputs",
                        "outputs",
                        "classes",
                        "class_index",
                        "source",
                        "parent",
                        "results",
                    )
                }
                for model in self.models
            ],
            "pipeline": m.get("pipeline"),
            "learning": m.get("learning"),
            "test_vectors": len(m["test_vectors"]),
            "metrics": m.get("metrics"),
            "cost": m.get("cost"),
        }


def new_manifest(
    name: str,
    version: str,
    description: str | None,
    pipeline: dict[str, Any] | None,
    models: list[dict[str, Any]],
    **sections: Any,
) -> dict[str, Any]:
    """A pack manifest in the one key order every pack is written with: identity and
    provenance (schema, created now, this kpdev's version), then the pipeline, the models and
    the given ``sections`` (``learning``, ``test_vectors``, ``metrics``, ``cost``)."""
    from kpdev import __version__
    from kpdev.host.evaluation.metrics import utc_now

    manifest: dict[str, Any] = {
        "schema": SCHEMA,
        "name": name,
        "version": version,
        "created": utc_now(),
        "description": description,
        "kpdev": __version__,
        "pipeline": pipeline,
        "models": models,
    }
    manifest.update(sections)
    return manifest


def device_pack(pack: Pack, store_names: dict[str, str]) -> dict[str, Any]:
    """The compact description of ``pack`` a device keeps (PACK_SET; device/packrun.py).

    ``store_names`` maps each model id to the name its file is stored under on the device.
    ``results`` keys are ints (CBOR carries them as such); ``output`` is the output tensor the
    device takes the class from.
    """
    missing = [m["id"] for m in pack.models if m["id"] not in store_names]
    if missing:
        raise UsageError(f"{pack.path}: no stored model name for {', '.join(missing)}")
    out = {
        "name": pack.name,
        "version": pack.manifest["version"],
        "pipeline": pack.manifest.get("pipeline"),
        "root": (pack.root() or {}).get("id"),
        "models": [
            {
                "id": m["id"],
                "model": store_names[m["id"]],
                "sha256": m["sha256"],
                "classes": list(m["classes"]),
                "results": {int(k): v for k, v in (m.get("results") or {}).items()},
                "output": 0,
            }
            for m in pack.models
        ],
    }
    learning = pack.learning
    if learning is not None:
        options = learning.get("options") or {}
        state = learning.get("state")
        out["learning"] = {
            "learner": learning["learner"],
            "classes": list(learning["classes"]),
            "max_classes": learning["max_classes"],
            "model": learning.get("model"),
            "output": learning.get("output") or 0,
            "per_class": options.get("per_class"),
            "k": options.get("k"),
            "metric": options.get("metric"),
            "mode": options.get("mode"),
            "state": state_store_name(pack) if state else None,
            "state_sha256": state["sha256"] if state else None,
        }
    return out


def store_name(pack: Pack, model_id: str) -> str:
    """The name a pack's model is stored under on the device."""
    return f"{pack.manifest['name']}.{model_id}"


def state_store_name(pack: Pack) -> str:
    """The name a pack's learner state is stored under on the device (no model id has a dot)."""
    return f"{pack.name}.state.kpl"


# -- reading -------------------------------------------------------------------------------
def read_pack(path: str | os.PathLike) -> Pack:
    """Open a ``.kp`` file and check it completely; UsageError (one line) when it is unusable."""
    label = str(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise UsageError(f"{label}: no such file")
    except IsADirectoryError:
        raise UsageError(f"{label} is a directory, not a Knowledge Pack")
    except zipfile.BadZipFile:
        raise UsageError(
            f"{label} is not a Knowledge Pack (not a whole zip file: truncated, or another kind "
            f"of file); {_REBUILD}"
        )
    except OSError as e:
        raise UsageError(f"{label}: cannot read ({e.strerror or e})")
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise UsageError(f"{label}: zip entry {dup[0]} appears twice; {_REBUILD}")
        sizes = {i.filename: i.file_size for i in infos}
        if MANIFEST not in sizes:
            raise UsageError(f"{label} is not a Knowledge Pack (no {MANIFEST}); {_REBUILD}")
        manifest = _parse_manifest(label, _read_entry(zf, label, MANIFEST))
        _check_manifest(label, manifest)
        # Compare sizes before reading, so that a doctored entry cannot make us inflate gigabytes.
        for m in manifest["models"]:
            size = sizes.get(m["file"])
            if size is None:
                raise UsageError(
                    f"{label}: model {m['id']!r}: file {m['file']} is missing from the pack; "
                    f"{_REBUILD}"
                )
            if size != m["bytes"]:
                raise UsageError(
                    f"{label}: model {m['id']!r}: {m['file']} is {size} bytes, the manifest says "
                    f"{m['bytes']} (file altered or corrupt); rebuild the pack"
                )
        for entry in _vector_entries(manifest):
            if entry not in sizes:
                raise UsageError(
                    f"{label}: test vector file {entry} is missing from the pack; {_REBUILD}"
                )
        files = {n: _read_entry(zf, label, n) for n in names if not n.endswith("/")}
    _check_models_files(label, manifest, files)
    return Pack(label, manifest, files)


def _read_entry(zf: zipfile.ZipFile, label: str, name: str) -> bytes:
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as e:
        # A bad CRC, a truncated member, an unsupported compression method.
        raise UsageError(f"{label}: cannot read {name} from the zip ({e}); {_REBUILD}")


def _parse_manifest(label: str, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{label}: {MANIFEST} is not UTF-8 text; {_REBUILD}")
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{label}: {MANIFEST} is not JSON ({e.msg} at line {e.lineno} column {e.colno}); "
            f"{_REBUILD}"
        )


def _vector_entries(manifest: dict) -> list[str]:
    entries = []
    for v in manifest["test_vectors"]:
        if v.get("window"):
            entries.append(v["window"])
        entries.extend(v["inputs"])
        for paths in v["outputs"].values():
            entries.extend(paths)
    return entries


def _check_models_files(label: str, manifest: dict, files: dict[str, bytes]) -> None:
    for m in manifest["models"]:
        data = files.get(m["file"])
        if data is None:
            raise UsageError(
                f"{label}: model {m['id']!r}: file {m['file']} is missing from the pack; "
                f"{_REBUILD}"
            )
        if len(data) != m["bytes"]:
            raise UsageError(
                f"{label}: model {m['id']!r}: {m['file']} is {len(data)} bytes, the manifest "
                f"says {m['bytes']} (file altered or corrupt); rebuild the pack"
            )
        if hashlib.sha256(data).hexdigest() != m["sha256"]:
            raise UsageError(
                f"{label}: model {m['id']!r}: sha256 mismatch (file altered or corrupt); "
                "rebuild the pack"
            )
    for entry in _vector_entries(manifest):
        if entry not in files:
            raise UsageError(
                f"{label}: test vector file {entry} is missing from the pack; {_REBUILD}"
            )
    state = (manifest.get("learning") or {}).get("state")
    if state is not None:
        data = files.get(state["file"])
        if data is None:
            raise UsageError(f"{label}: learner state {state['file']} is missing; {_REBUILD}")
        if len(data) != state["bytes"] or hashlib.sha256(data).hexdigest() != state["sha256"]:
            raise UsageError(
                f"{label}: learner state {state['file']} does not match its size and sha256 "
                "(file altered or corrupt); rebuild the pack"
            )


# -- the manifest's checks -----------------------------------------------------------------
def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


_KIND_NAMES = {
    None: "null",
    int: "an integer",
    str: "a string",
    list: "a list",
    dict: "an object",
}


class _Checker:
    """Type checks of manifest fields, each failing with the field's path in the message."""

    def __init__(self, label: str):
        self.label = label

    def fail(self, what: str) -> UsageError:
        return UsageError(f"{self.label}: manifest {what}; {_REBUILD}")

    def need(self, cond: bool, what: str) -> None:
        if not cond:
            raise self.fail(what)

    def field(self, obj: dict, key: str, kinds: tuple, where: str, required: bool = True) -> Any:
        if key not in obj:
            if required:
                raise self.fail(f'{where} has no "{key}"')
            return None
        value = obj[key]
        ok = any(
            (value is None if k is None else _is_int(value) if k is int else isinstance(value, k))
            for k in kinds
        )
        if not ok:
            names = " or ".join(_KIND_NAMES[k] for k in kinds)
            raise self.fail(f'{where}: "{key}" must be {names}, not {json.dumps(value)[:40]}')
        return value


def _check_tensor(c: _Checker, spec: Any, where: str) -> None:
    c.need(isinstance(spec, dict), f"{where} must be an object")
    c.field(spec, "name", (str,), where)
    c.field(spec, "dtype", (str,), where)
    shape = c.field(spec, "shape", (list,), where)
    c.need(all(_is_int(d) and d >= -1 for d in shape), f"{where}: shape {shape} is not a shape")
    for key in ("scale", "zero_point"):
        value = spec.get(key)
        c.need(
            value is None
            or _is_num(value)
            or (isinstance(value, list) and all(_is_num(v) for v in value)),
            f"{where}: {key} must be a number, a list of numbers or null",
        )


def _check_manifest(label: str, manifest: Any) -> None:
    c = _Checker(label)
    c.need(isinstance(manifest, dict), "is not a JSON object")
    schema = manifest.get("schema")
    if not _is_int(schema) or schema < 1:
        raise UsageError(
            f"{label} is not a Knowledge Pack (manifest schema {json.dumps(schema)} is not a "
            f"schema number); {_REBUILD}"
        )
    if schema > SCHEMA:
        raise UsageError(
            f"{label} was made by a newer kpdev (pack schema {schema}, this kpdev reads up to "
            f"{SCHEMA}); upgrade kpdev"
        )
    name = c.field(manifest, "name", (str,), "top level")
    c.need(bool(NAME_RE.fullmatch(name)), f'name {name!r} is not 1-24 of A-Z a-z 0-9 "_" "-"')
    c.field(manifest, "version", (str,), "top level")
    for key in ("created", "description", "kpdev"):
        c.field(manifest, key, (str,), "top level", required=False)
    pipeline = c.field(manifest, "pipeline", (dict, None), "top level", required=False)
    if pipeline is not None:
        from kpdev.host.features import check_spec

        try:
            check_spec(pipeline)
        except UsageError as e:
            text = str(e)
            raise c.fail(text if text.startswith("pipeline: ") else f"pipeline: {text}")
    models = c.field(manifest, "models", (list,), "top level")
    c.need(bool(models) or manifest.get("learning") is not None, "lists no models")
    ids: dict[str, dict] = {}
    for n, m in enumerate(models):
        where = f"models[{n}]"
        c.need(isinstance(m, dict), f"{where} must be an object")
        mid = c.field(m, "id", (str,), where)
        c.need(
            bool(ID_RE.fullmatch(mid)), f'{where}: id {mid!r} is not 1-16 of A-Z a-z 0-9 "_" "-"'
        )
        c.need(mid not in ids, f"model id {mid!r} appears twice")
        ids[mid] = m
        where = f"model {mid!r}"
        fmt = c.field(m, "format", (str,), where)
        c.need(fmt in _FORMATS, f"{where}: format {fmt!r} is not one of {', '.join(_FORMATS)}")
        file = c.field(m, "file", (str,), where)
        c.need(
            file == model_path(mid, fmt),
            f"{where}: file {file!r} should be {model_path(mid, fmt)}",
        )
        c.field(m, "backend", (str, None), where, required=False)
        c.field(m, "options", (dict,), where, required=False)
        sha = c.field(m, "sha256", (str,), where)
        c.need(bool(_SHA_RE.fullmatch(sha)), f"{where}: sha256 is not 64 lowercase hex digits")
        size = c.field(m, "bytes", (int,), where)
        c.need(size >= 0, f"{where}: bytes is negative")
        for which in ("inputs", "outputs"):
            specs = c.field(m, which, (list,), where)
            c.need(bool(specs), f"{where} has no {which}")
            for k, spec in enumerate(specs):
                _check_tensor(c, spec, f"{where} {which}[{k}]")
        classes = c.field(m, "classes", (list,), where)
        c.need(
            bool(classes) and all(isinstance(x, str) and x for x in classes),
            f"{where}: classes must be a list of labels",
        )
        c.need(len(set(classes)) == len(classes), f"{where}: a class label appears twice")
        index = c.field(m, "class_index", (dict,), where)
        c.need(
            index == {label_: i for i, label_ in enumerate(classes)},
            f"{where}: class_index is not the reverse of classes",
        )
        width = m["outputs"][0]["shape"][-1] if m["outputs"][0]["shape"] else 1
        c.need(
            width in (-1, len(classes)),
            f"{where}: {len(classes)} classes but output 0 has {width} values",
        )
        c.field(m, "source", (str, None), where, required=False)
        c.field(m, "parent", (str, None), where, required=False)
        results = c.field(m, "results", (dict, None), where, required=False) or {}
        for key in results:
            c.need(
                key.isdigit() and int(key) < len(classes),
                f"{where}: results key {key!r} is not a class index 0..{len(classes) - 1}",
            )
            c.need(isinstance(results[key], str), f"{where}: results[{key!r}] is not a model id")
    if ids:
        _check_graph(c, ids)
    _check_learning(c, manifest, ids)
    vectors = c.field(manifest, "test_vectors", (list,), "top level")
    for n, v in enumerate(vectors):
        where = f"test_vectors[{n}]"
        c.need(isinstance(v, dict), f"{where} must be an object")
        c.field(v, "window", (str, None), where, required=False)
        inputs = c.field(v, "inputs", (list,), where)
        c.need(all(isinstance(p, str) for p in inputs), f"{where}: inputs must be file names")
        outputs = c.field(v, "outputs", (dict,), where)
        for mid, paths in outputs.items():
            c.need(mid in ids, f"{where}: outputs of unknown model {mid!r}")
            c.need(
                isinstance(paths, list) and all(isinstance(p, str) for p in paths),
                f"{where}: outputs of {mid!r} must be file names",
            )
        c.field(v, "label", (str, None), where, required=False)
    c.field(manifest, "metrics", (dict, None), "top level", required=False)
    c.field(manifest, "cost", (dict, None), "top level", required=False)


LEARNERS = ("memory", "akida")
STATE_FILE = "learning/state.bin"
_MEMORY_OPTIONS = {"per_class": (1, 4096), "k": (1, 64)}
_CHOICES = {"metric": ("l1", "l2"), "mode": ("knn", "prototype")}


def _check_learning(c: _Checker, manifest: dict, ids: dict[str, dict]) -> None:
    learning = c.field(manifest, "learning", (dict, None), "top level", required=False)
    if learning is None:
        return
    where = "learning"
    kind = c.field(learning, "learner", (str,), where)
    c.need(kind in LEARNERS, f"{where}: learner {kind!r} is not one of {', '.join(LEARNERS)}")
    classes = c.field(learning, "classes", (list,), where)
    c.need(
        all(isinstance(x, str) and x for x in classes),
        f"{where}: classes must be a list of labels",
    )
    c.need(len(set(classes)) == len(classes), f"{where}: a class label appears twice")
    most = c.field(learning, "max_classes", (int,), where)
    c.need(len(classes) <= most <= 255, f"{where}: max_classes must be {len(classes)}..255")
    mid = c.field(learning, "model", (str, None), where, required=False)
    c.need(mid is None or mid in ids, f"{where}: model {mid!r} is not a model of the pack")
    c.need(kind != "akida" or mid is not None, f"{where}: an akida learner names its model")
    c.need(
        mid is not None or manifest.get("pipeline") is not None,
        f"{where}: a memory learner learns a pipeline's output or a model's; the pack has neither",
    )
    c.field(learning, "output", (int,), where, required=False)
    options = c.field(learning, "options", (dict,), where, required=False) or {}
    if kind == "memory":
        for key, (low, high) in _MEMORY_OPTIONS.items():
            value = options.get(key)
            c.need(
                _is_int(value) and low <= value <= high,
                f"{where}: options.{key} must be an int {low}..{high}",
            )
        for key, allowed in _CHOICES.items():
            c.need(
                options.get(key) in allowed,
                f"{where}: options.{key} must be one of {', '.join(allowed)}",
            )
    c.field(learning, "input", (dict,), where)
    state = c.field(learning, "state", (dict, None), where, required=False)
    if state is not None:
        c.need(kind == "memory", f"{where}: only a memory learner has a state file")
        c.need(state.get("file") == STATE_FILE, f"{where}: state.file must be {STATE_FILE}")
        c.need(
            isinstance(state.get("sha256"), str) and bool(_SHA_RE.fullmatch(state["sha256"])),
            f"{where}: state.sha256 is not 64 lowercase hex digits",
        )
        c.need(_is_int(state.get("bytes")), f"{where}: state.bytes must be an int")
    c.field(learning, "learned", (dict, None), where, required=False)


def _check_graph(c: _Checker, ids: dict[str, dict]) -> None:
    roots = [mid for mid, m in ids.items() if m.get("parent") is None]
    if len(roots) != 1:
        raise UsageError(
            f"{c.label}: the pack must have exactly one root model (one without a parent), "
            f"it has {len(roots)}{': ' + ', '.join(roots) if roots else ''}; {_REBUILD}"
        )
    for mid, m in ids.items():
        parent = m.get("parent")
        if parent is not None and parent not in ids:
            raise c.fail(f"model {mid!r}: parent {parent!r} is not a model of the pack")
        for key, target in (m.get("results") or {}).items():
            if target not in ids:
                raise c.fail(
                    f"model {mid!r}: results {key} -> {target!r}, which is not a model of the pack"
                )
            if ids[target].get("parent") != mid:
                raise c.fail(
                    f"model {mid!r}: results {key} -> {target!r}, but the parent of {target!r} "
                    f"is {ids[target].get('parent')!r}"
                )
        if parent is not None and mid not in (ids[parent].get("results") or {}).values():
            raise c.fail(f"model {mid!r}: its parent {parent!r} routes no class to it")
    for mid in ids:
        seen = [mid]
        at = ids[mid].get("parent")
        while at is not None:
            if at in seen:
                raise c.fail(f"models {' -> '.join(seen + [at])} form a cycle")
            seen.append(at)
            at = ids[at].get("parent")
        if len(seen) > MAX_DEPTH:
            raise c.fail(
                f"model {mid!r} is {len(seen)} models deep; a device routes through at most "
                f"{MAX_DEPTH}"
            )


def check_pack(label: str, manifest: dict, files: dict[str, bytes]) -> None:
    """Run every check ``read_pack`` runs on a manifest and its files (in memory)."""
    _check_manifest(label, manifest)
    _check_models_files(label, manifest, files)


# -- writing -------------------------------------------------------------------------------
def npy_bytes(a: np.ndarray) -> bytes:
    """An array as the bytes of a ``.npy`` file (test vectors)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def write_pack(path: str | os.PathLike, manifest: dict, files: dict[str, bytes]) -> Path:
    """Check, then write a pack atomically: a temporary file beside ``path``, fsync, rename.

    Entries are sorted with ``manifest.json`` first and carry a fixed timestamp, so the same
    manifest and files give the same bytes.
    """
    path = Path(path)
    if MANIFEST in files:
        raise UsageError(f"{path}: {MANIFEST} is written from the manifest, not given as a file")
    check_pack(str(path), manifest, files)
    try:
        text = json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise UsageError(f"{path}: the manifest cannot be written as JSON ({e})")

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for name, data in [(MANIFEST, text.encode("utf-8"))] + sorted(files.items()):
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                info.create_system = 3  # unix, whatever the building machine
                zf.writestr(info, data)

    return write_atomic(path, write)
