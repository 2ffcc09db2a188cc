"""The host's emulation of a pack on a device: the numpy pipeline and the reference runtimes.

``HostPack.classify`` answers what the device's CLASSIFY answers, computed on the host: the
pipeline of ``kpdev.host.features`` (the same definitions as ``kpdev.device.pipeline``), then the
root model and the children its ``results`` route to, each in the host reference runtime
(``kpdev.host.runtime.reference``); or, for a pack with a learner, the learner
(``kpdev.host.runtime.reference.ReferenceLearner``).  ``kpdev recognize --platform host`` and the
metrics of ``kpdev pack build`` use it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from kpdev.host import features
from kpdev.host.packs.pack import Pack
from kpdev.host.runtime.reference import ReferenceLearner, load_reference

_MAX_DEPTH = 8  # as the device: the longest parent -> child chain followed


def top_class(output: np.ndarray, spec: dict[str, Any]) -> tuple[int, float]:
    """Index of the largest output and its dequantized score (as the device computes it)."""
    flat = np.asarray(output).reshape(-1)
    k = int(np.argmax(flat))
    score = float(flat[k])
    if isinstance(spec.get("scale"), (int, float)):
        score = (score - (spec.get("zero_point") or 0)) * spec["scale"]
    return k, score


class HostPack:
    """A pack's pipeline and models loaded on the host, ready to classify raw windows."""

    def __init__(self, pack: Pack):
        self.pack = pack
        self.pipeline = pack.manifest.get("pipeline")
        self.models = {}
        self.learner = ReferenceLearner(pack) if pack.learning is not None else None
        for m in pack.models:
            self.models[m["id"]] = load_reference(
                m["format"], pack.model_bytes(m["id"]), m.get("backend"), m.get("options") or {}
            )
        self.root = (pack.root() or {}).get("id")

    def model_input(self, x: np.ndarray) -> np.ndarray:
        """The model input for one raw window (``x`` itself when the pack has no pipeline)."""
        return features.transform(self.pipeline, x) if self.pipeline else x

    def classify(self, x: np.ndarray) -> dict[str, Any]:
        """The device's CLASSIFY result for one raw window, computed on the host."""
        t0 = time.perf_counter_ns()
        x = self.model_input(x)
        tf = (time.perf_counter_ns() - t0) / 1000
        if self.learner is not None:
            t0 = time.perf_counter_ns()
            c, label = self.learner.classify(x)
            tm = (time.perf_counter_ns() - t0) / 1000
            return {
                "c": c,
                "l": label,
                "s": None,
                "m": "learner",
                "p": [["learner", c]],
                "tf": tf,
                "tm": tm,
            }
        mid = self.root
        path = []
        tm = 0.0
        for _ in range(_MAX_DEPTH):
            spec = self.pack.model(mid)
            ref = self.models[mid]
            t0 = time.perf_counter_ns()
            outputs = ref.run([x])
            tm += (time.perf_counter_ns() - t0) / 1000
            c, score = top_class(outputs[0], ref.io_spec()["outputs"][0])
            path.append([mid, c])
            child = (spec.get("results") or {}).get(str(c))
            if child is None:
                break
            mid = child
        classes = spec["classes"]
        label = classes[c] if c < len(classes) else str(c)
        return {"c": c, "l": label, "s": score, "m": mid, "p": path, "tf": tf, "tm": tm}

    def close(self) -> None:
        """Release the reference runtimes."""
        for ref in self.models.values():
            ref.close()
        if self.learner is not None:
            self.learner.close()
