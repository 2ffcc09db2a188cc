"""A Knowledge Pack as the device holds it: a pipeline and a router with two children, their
models made by modelgen, and the PACK_SET body naming them."""

import hashlib

import numpy as np

from kpdev.host.runtime import modelgen

SPEC = {
    "axes": ["x", "y", "z"],
    "input_dtype": "int16",
    "window": {"size": 20, "stride": 10},
    "features": [{"gen": "mean"}, {"gen": "std"}, {"gen": "max"}, {"gen": "mean_crossing_rate"}],
    "scale": {"kind": "standard", "mean": [0.0] * 12, "std": [400.0] * 12},
    "output": {"dtype": "int8", "scale": 1.0 / 128, "zero_point": 0, "shape": [1, 12]},
}
MODELS = {
    "router": modelgen.dense_int8(inputs=12, hidden=8, outputs=2, seed=8),
    "left": modelgen.dense_int8(inputs=12, hidden=8, outputs=3, seed=2),
    "right": modelgen.dense_int8(inputs=12, hidden=8, outputs=2, seed=3),
}
CLASSES = {"router": ["L", "R"], "left": ["a", "b", "c"], "right": ["d", "e"]}


def device_pack(name="demo", models=None):
    models = models or MODELS
    return {
        "name": name,
        "version": "1.0.0",
        "root": "router",
        "pipeline": SPEC,
        "models": [
            {
                "id": mid,
                "model": "%s.%s" % (name, mid),
                "sha256": hashlib.sha256(models[mid]).hexdigest(),
                "classes": CLASSES[mid],
                "results": {0: "left", 1: "right"} if mid == "router" else {},
            }
            for mid in ("router", "left", "right")
        ],
    }


def upload_all(client, name="demo"):
    for mid, data in MODELS.items():
        client.upload("%s.%s" % (name, mid), data, "tflite", activate=False)


def windows(n, seed=0):
    """``n`` raw int16 windows of 20 samples x 3 axes for the demo pack's pipeline, each with its
    own level and loudness."""
    rng = np.random.default_rng(seed)
    level = rng.integers(-500, 500, size=(n, 1, 3))
    loud = rng.integers(20, 600, size=(n, 1, 3))
    return (level + rng.uniform(-1, 1, size=(n, 20, 3)) * loud).astype(np.int16)
