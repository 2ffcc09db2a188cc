"""Make basicmotions.npz and basicmotions_walk.npz in this folder from the UEA BasicMotions data.

    python examples/basicmotions/make_basicmotions.py               # fetches the aeon wheel (pip)
    python examples/basicmotions/make_basicmotions.py --ts-dir DIR  # BasicMotions_{TRAIN,TEST}.ts

The .ts files come from the aeon wheel (aeon/datasets/data/BasicMotions/); the same data, run
through ``kpdev.host.datasets.load_dataset``, always gives the same arrays.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter

import numpy as np

from kpdev.host.datasets import load_dataset

# The demo's data ships with kpdev, as package data beside the demo command.
HERE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "host", "demo"
)
AEON_VERSION = "1.6.0"
WHEEL_FOLDER = "aeon/datasets/data/BasicMotions/"
FILES = ("BasicMotions_TRAIN.ts", "BasicMotions_TEST.ts")
# The header: "The watch collects 3D accelerometer and a 3D gyroscope"; the six dimensions are
# in that order (dims 3..5 average to ~0 in every class, as angular rates do).
AXES = ["accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z"]
# "the data is sampled once every tenth of a second"
RATE_HZ = 10.0
# The walk: the class of each recording in order, a TEST case each (the first unused one of that
# class), so every class follows a different one somewhere.
WALK = [
    "Standing",
    "Walking",
    "Running",
    "Badminton",
    "Walking",
    "Standing",
    "Badminton",
    "Running",
]


def fetch_ts(tmp: str) -> str:
    """Download the aeon wheel with pip and unzip the two .ts files; returns their folder."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "aeon==" + AEON_VERSION, "-d", tmp],
        check=True,
    )  # fmt: skip
    (wheel,) = glob.glob(os.path.join(tmp, "aeon-%s-*.whl" % AEON_VERSION))
    out = os.path.join(tmp, "BasicMotions")
    os.makedirs(out)
    with zipfile.ZipFile(wheel) as z:
        for name in FILES:
            with open(os.path.join(out, name), "wb") as f:
                f.write(z.read(WHEEL_FOLDER + name))
    return out


def header_comment(path: str) -> str:
    """The '#' lines at the top of a .ts file, joined: the dataset's description."""
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            lines.append(line[1:].strip())
    return " ".join(lines)


def make(ts_dir: str, out_dir: str) -> None:
    dataset = load_dataset(os.path.join(ts_dir, FILES[0]))
    assert dataset.x.shape == (80, 100, 6), dataset.x.shape
    assert dataset.summary()["fold"] == {"train": 40, "test": 40}
    description = header_comment(os.path.join(ts_dir, FILES[0]))
    source = (
        "UEA multivariate time series classification archive (Bagnall et al. 2018, "
        "arXiv:1811.00075, timeseriesclassification.com), problem BasicMotions: %s and %s "
        "from the aeon %s wheel (%s). The .ts header states no licence." % (
            FILES[0], FILES[1], AEON_VERSION, WHEEL_FOLDER
        )
    )  # fmt: skip
    np.savez_compressed(
        os.path.join(out_dir, "basicmotions.npz"),
        name=np.array("BasicMotions"),
        x=dataset.x.astype(np.float32),
        y=dataset.y.astype(np.int64),
        classes=np.array(dataset.classes),
        axes=np.array(AXES),
        fold=dataset.fold.astype(np.int8),
        rate_hz=np.array(RATE_HZ),
        source=np.array(source),
        description=np.array(description),
    )

    # Cases of each class in the TEST fold, in file order.
    test_cases = {
        c: [i for i in np.flatnonzero(dataset.fold == 1) if dataset.classes[dataset.y[i]] == c]
        for c in dataset.classes
    }
    used = Counter()
    cases = []
    for name in WALK:
        cases.append(int(test_cases[name][used[name]]))
        used[name] += 1
    signal = np.concatenate([dataset.x[i] for i in cases])
    labels = np.repeat(dataset.y[cases], dataset.x.shape[1])
    np.savez_compressed(
        os.path.join(out_dir, "basicmotions_walk.npz"),
        signal=signal.astype(np.float32),
        labels=labels.astype(np.int64),
        classes=np.array(dataset.classes),
        axes=np.array(AXES),
        rate_hz=np.array(RATE_HZ),
        cases=np.array(cases, dtype=np.int64),
        source=np.array(
            "BasicMotions TEST cases %s (indices into basicmotions.npz) end to end, "
            "100 samples each; %s" % (" ".join(map(str, cases)), source)
        ),
    )
    for name in ("basicmotions.npz", "basicmotions_walk.npz"):
        path = os.path.join(out_dir, name)
        print("%-24s %7d bytes" % (name, os.path.getsize(path)))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ts-dir", help="folder holding BasicMotions_TRAIN.ts and _TEST.ts")
    parser.add_argument("--out-dir", default=HERE, help="where to write the .npz files")
    args = parser.parse_args(argv)
    if args.ts_dir:
        make(args.ts_dir, args.out_dir)
        return
    with tempfile.TemporaryDirectory() as tmp:
        make(fetch_ts(tmp), args.out_dir)


if __name__ == "__main__":
    main()
