"""Measurements documents as `kpdev eval` writes them, from synthetic results."""

import numpy as np

from kpdev.host.evaluation.metrics import classification, latency, measurements

CLASSES = ["Standing", "Running", "Walking", "Badminton"]


def run_doc(seed, board, *, accuracy_noise=0.2, profile=True, energy=True):
    """A measurements document from synthetic results, as `kpdev eval` would write one."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, len(CLASSES), 40)
    y_pred = np.where(rng.random(40) < accuracy_noise, rng.integers(0, len(CLASSES), 40), y_true)
    samples = rng.normal(800 + 100 * seed, 40, 200).round(1)
    results = {
        "classification": classification(y_true, y_pred, CLASSES),
        "latency_us": latency(samples),
        "latency_samples_us": samples,
        "link": {"bytes_out": 40 * 300, "bytes_in": 40 * 20, "per_inference": 320},
        "energy": {"uj_per_inference": 52.5, "estimated": True} if energy else None,
        "wall_s": 2.5,
        "profile": {
            "runs": 10,
            "stages": [
                {"name": "feature:mean", "us": 12.3, "cycles": None},
                {"name": "feature:std", "us": 20.1, "cycles": None},
                {"name": "quantize", "us": 3.4, "cycles": None},
                {"name": "model:main", "us": 640.0, "cycles": 1234567},
            ],
            "total_us": 675.8,
        }
        if profile
        else None,
    }
    return measurements(
        "eval",
        board=board,
        versions={"kpdev": "0.1.0", "agent": "0.1.0"},
        results=results,
        pack={"name": "basicmotions", "version": "1.0.0"},
        model={"id": "main", "format": "tflite"},
        dataset={"name": "BasicMotions", "n_test": 40},
        created="2026-11-21T10:00:00Z",
    )
