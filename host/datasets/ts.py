"""UEA/UCR time-series archive files (``.ts``): one file, its TRAIN/TEST pair, or a folder."""

from __future__ import annotations

import os
import re

import numpy as np

from kpdev.host.datasets.base import Dataset, Options, cut_cases, stem
from kpdev.host.errors import UsageError

_TS_PAIR = re.compile(r"(.*)_(TRAIN|TEST)\.ts", re.IGNORECASE)


def _parse_ts(path: str) -> tuple[str, list[str], np.ndarray, np.ndarray]:
    """(problem name, classes, x [n, length, dims] float32, y) of one sktime-format .ts file."""
    header: dict[str, str] = {}
    cases, labels = [], []
    length = dims = None
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{path}: cannot read it ({e.strerror})")
    with f:
        in_data = False
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise UsageError(
                        f"{path}:{lineno}: expected a header line (@...) before @data"
                    )
                key, *value = line[1:].split(None, 1)
                key = key.lower()
                if key == "data":
                    in_data = True
                    classes = _ts_classes(path, header)
                    index = {c: i for i, c in enumerate(classes)}
                    if header.get("dimensions", "").isdigit():
                        dims = int(header["dimensions"])
                else:
                    header[key] = value[0].strip() if value else ""
                continue
            *fields, label = line.split(":")
            label = label.strip()
            if not fields:
                raise UsageError(f"{path}:{lineno}: a case with no ':' between series and class")
            if dims is None:
                dims = len(fields)
            if len(fields) != dims:
                raise UsageError(
                    f"{path}:{lineno}: {len(fields)} dimensions where the file has {dims}"
                )
            case = [_ts_values(v, path, lineno) for v in fields]
            for values in case:
                if length is None:
                    length = len(values)
                if len(values) != length:
                    raise UsageError(
                        f"{path}:{lineno}: a series of {len(values)} values where others have "
                        f"{length}; kpdev needs equal-length series (resample or pad them first)"
                    )
            if label not in index:
                raise UsageError(
                    f"{path}:{lineno}: class {label!r} is not in @classLabel ({' '.join(classes)})"
                )
            cases.append(case)
            labels.append(index[label])
    if not in_data:
        raise UsageError(f"{path}: no @data line; is it a UEA/UCR .ts file?")
    if not cases:
        raise UsageError(f"{path}: no cases after @data")
    x = np.asarray(cases, dtype=np.float32).transpose(0, 2, 1)
    match = _TS_PAIR.fullmatch(os.path.basename(path))
    name = header.get("problemname") or (match.group(1) if match else stem(path))
    return name, classes, np.ascontiguousarray(x), np.asarray(labels, dtype=np.int64)


def _ts_classes(path: str, header: dict[str, str]) -> list[str]:
    """The class names of @classLabel, after refusing what kpdev cannot load."""
    if header.get("timestamps", "false").lower() == "true":
        raise UsageError(f"{path}: series with timestamps are not supported; drop the timestamps")
    if header.get("equallength", "true").lower() == "false":
        raise UsageError(
            f"{path}: @equalLength false; kpdev needs equal-length series (resample or pad them)"
        )
    parts = header.get("classlabel", "").split()
    if not parts or parts[0].lower() != "true" or len(parts) < 2:
        raise UsageError(
            f"{path}: no '@classLabel true NAMES...' header; kpdev needs class labels"
        )
    return parts[1:]


def _ts_values(text: str, path: str, lineno: int) -> np.ndarray:
    items = text.split(",")
    if any(item.strip() == "?" for item in items):
        raise UsageError(
            f"{path}:{lineno}: missing values ('?'); complete series needed: fill or drop them"
        )
    try:
        values = np.array(items, dtype=np.float64)
    except ValueError:
        raise UsageError(f"{path}:{lineno}: a value that is not a number in {text[:40]!r}")
    if np.isnan(values).any():
        raise UsageError(
            f"{path}:{lineno}: missing values (NaN); complete series needed: fill or drop them"
        )
    return values


def load_ts(path: str, opts: Options) -> Dataset:
    match = _TS_PAIR.fullmatch(os.path.basename(path))
    parts = [path]
    if match:
        folder, stem = os.path.dirname(path), match.group(1)
        pair = [os.path.join(folder, stem + s) for s in ("_TRAIN.ts", "_TEST.ts")]
        if all(os.path.isfile(p) for p in pair):
            parts = pair
    loaded = [_parse_ts(p) for p in parts]
    name, classes, x, y = loaded[0]
    for p, (_, other_classes, other_x, _) in zip(parts[1:], loaded[1:], strict=True):
        if other_classes != classes or other_x.shape[1:] != x.shape[1:]:
            raise UsageError(
                f"{p}: its classes or series shape differ from {os.path.basename(parts[0])}'s"
            )
    dataset = Dataset(
        name=name,
        source="UEA/UCR .ts " + " + ".join(parts),
        x=np.concatenate([part[2] for part in loaded]),
        y=np.concatenate([part[3] for part in loaded]),
        classes=classes,
        axes=["dim%d" % i for i in range(x.shape[2])],
        fold=np.repeat([0, 1], [len(part[3]) for part in loaded]) if len(loaded) == 2 else None,
    )
    return cut_cases(dataset, opts.window, path)


def load_ts_dir(path: str, opts: Options) -> Dataset:
    names = sorted(f for f in os.listdir(path) if f.lower().endswith(".ts"))
    trains = [f for f in names if f.upper().endswith("_TRAIN.TS")]
    if len(trains) == 1:
        return load_ts(os.path.join(path, trains[0]), opts)
    if len(trains) == 0 and len(names) == 1:
        return load_ts(os.path.join(path, names[0]), opts)
    raise UsageError(
        f"{path}: holds {', '.join(names)}; name one .ts file, or keep one "
        "NAME_TRAIN.ts/NAME_TEST.ts pair per folder"
    )
