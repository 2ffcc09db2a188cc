"""Train the demo's models on BasicMotions; write them and the fitted pipeline into host/demo/.

    python examples/basicmotions/train.py    # needs numpy, PyYAML, tflite-micro (kpdev[tflite])

What it makes (deterministic: the same data and seed give the same bytes):

- ``basicmotions_pipeline.yml``: the feature pipeline the models take. Raw int16 sensor counts
  (1 count = 0.002 of the recorded unit, so the largest reading, about 35, fits), windows of
  100 samples (10 s at 10 Hz), 8 features per axis, standardised with the training set's mean
  and std, quantized to int8.
- ``basicmotions_binary.yml``: the same features and scaling with a binary output, an 8-level
  thermometer of each standardised feature over -1.5..1.5 (384 bits): the input of the Akida
  learner (``kpdev pack build --learner akida``), whose learning layer takes 1-bit input.
- ``basicmotions_mlp.tflite``: one int8 MLP (48 -> 16 -> 4) over the four activities.
- ``basicmotions_router.tflite`` (calm: Standing or Walking / vigorous: Running or Badminton),
  ``basicmotions_calm.tflite`` and ``basicmotions_vigorous.tflite``: the same task as a parent
  model whose class picks a child model, for the multi-model pack.

The training is plain numpy (softmax regression with one hidden ReLU layer, Adam, full batch,
weight decay) on the UEA TRAIN fold of ``basicmotions.npz``; the TEST fold is for evaluation only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml

# The demo's models and pipelines ship with kpdev, as package data beside the demo command.
HERE = Path(__file__).resolve().parents[2] / "host" / "demo"
AXES = ["accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z"]
FEATURES = [
    {"gen": "mean"},
    {"gen": "std"},
    {"gen": "min"},
    {"gen": "max"},
    {"gen": "rms"},
    {"gen": "mean_crossing_rate"},
    {"gen": "sigma_crossing_rate", "k": 1.0},
    {"gen": "mean_difference"},
]
GROUPS = {"calm": ["Standing", "Walking"], "vigorous": ["Running", "Badminton"]}


def base_pipeline() -> dict:
    """The pipeline before fitting: what the sensor gives and which features to compute."""
    return {
        "axes": AXES,
        "input_dtype": "int16",
        "input_scale": 0.002,
        "rate_hz": 10,
        "window": {"size": 100, "stride": 100},
        "features": FEATURES,
        "scale": None,
        "output": {"dtype": "float32"},
    }


def fit_mlp(x: np.ndarray, y: np.ndarray, hidden: int, classes: int, seed: int = 0):
    """A one-hidden-layer ReLU MLP trained with Adam on softmax cross-entropy."""
    rng = np.random.default_rng(seed)
    n, d = x.shape
    w1 = rng.normal(0, np.sqrt(2 / d), (hidden, d))
    b1 = np.zeros(hidden)
    w2 = rng.normal(0, np.sqrt(1 / hidden), (classes, hidden))
    b2 = np.zeros(classes)
    params = [w1, b1, w2, b2]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    onehot = np.eye(classes)[y]
    lr, decay = 0.01, 1e-3
    for step in range(1, 801):
        h = np.maximum(x @ w1.T + b1, 0)
        z = h @ w2.T + b2
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        dz = (p - onehot) / n
        grads = [None, None, dz.T @ h + decay * w2, dz.sum(0)]
        dh = dz @ w2 * (h > 0)
        grads[0] = dh.T @ x + decay * w1
        grads[1] = dh.sum(0)
        for i, (param, g) in enumerate(zip(params, grads, strict=True)):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            param -= lr * (m[i] / (1 - 0.9**step)) / (np.sqrt(v[i] / (1 - 0.999**step)) + 1e-8)
    return [(w1, b1), (w2, b2)]


def main() -> int:
    from kpdev.host import features
    from kpdev.host.datasets import load_dataset
    from kpdev.host.runtime import modelgen

    ds = load_dataset(str(HERE / "basicmotions.npz"))
    train, test = ds.split()
    spec = base_pipeline()
    raw = features.raw_input(spec, train.x)
    f = features.features_batch(spec, raw)
    spec["scale"] = features.fit_scale(spec, f)
    scaled = features.apply_scale(spec, f)
    spec["output"] = features.fit_output(spec, scaled, "int8")
    spec["output"]["shape"] = [1, f.shape[1]]
    q = features.transform_batch(spec, raw)
    scale, zp = spec["output"]["scale"], spec["output"]["zero_point"]
    xin = (q.reshape(len(q), -1).astype(np.float64) - zp) * scale  # what the model will see

    def build(name: str, x: np.ndarray, y: np.ndarray, classes: int, hidden: int) -> None:
        layers = fit_mlp(x, y, hidden, classes)
        data = modelgen.mlp_int8(
            layers, xin, input_quant=(scale, zp), description=f"kpdev demo {name}"
        )
        (HERE / f"basicmotions_{name}.tflite").write_bytes(data)
        print(f"basicmotions_{name}.tflite: {len(data)} bytes")

    build("mlp", xin, train.y, len(ds.classes), 16)
    group_of = {c: g for g, members in GROUPS.items() for c in members}
    names = list(GROUPS)
    router_y = np.array([names.index(group_of[ds.classes[k]]) for k in train.y])
    build("router", xin, router_y, 2, 8)
    for g, members in GROUPS.items():
        pick = np.array([ds.classes[k] in members for k in train.y])
        sub_y = np.array([members.index(ds.classes[k]) for k in train.y[pick]])
        build(g, xin[pick], sub_y, len(members), 8)
    out = HERE / "basicmotions_pipeline.yml"
    out.write_text(
        "# Made by examples/basicmotions/train.py from basicmotions.npz (UEA BasicMotions,\n"
        "# TRAIN fold).\n" + yaml.safe_dump(spec, sort_keys=False)
    )
    print(f"{out.name}: {f.shape[1]} features; test fold of {len(test)} kept for evaluation")
    binary = dict(spec)
    levels = 8
    binary["output"] = {
        "dtype": "uint8",
        "shape": [1, 1, 1, f.shape[1] * levels],
        "encoding": {"kind": "thermometer", "levels": levels, "low": -1.5, "high": 1.5},
    }
    out = HERE / "basicmotions_binary.yml"
    out.write_text(
        "# Made by examples/basicmotions/train.py: basicmotions_pipeline.yml with an 8-level\n"
        "# thermometer output (binary input for the Akida learner).\n"
        + yaml.safe_dump(binary, sort_keys=False)
    )
    print(f"{out.name}: {f.shape[1] * levels} bits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
