"""NumPy ``.npz`` datasets (``x``, ``y``[, ``classes``, ``axes``, ``fold``]) and recordings
(``signal``[, ``labels``, ``classes``, ``axes``, ``rate_hz``])."""

from __future__ import annotations

import zipfile

import numpy as np

from kpdev.host.datasets.base import (
    Dataset,
    Options,
    Signal,
    class_list,
    cut_cases,
    sorted_labels,
    stem,
)
from kpdev.host.errors import UsageError


def _npz_get(data, key: str, path: str):
    """``data[key]`` or None; a pickled (object) array is refused."""
    if key not in data.files:
        return None
    try:
        return data[key]
    except ValueError:
        raise UsageError(
            f"{path}: {key!r} holds Python objects; save strings as a str array "
            "(np.array(names, dtype=str))"
        )


def _npz_names(value, path: str, key: str) -> list[str] | None:
    if value is None:
        return None
    if value.dtype.kind not in "US" or value.ndim != 1:
        raise UsageError(f"{path}: {key!r} must be a 1-D array of names (dtype str)")
    return [str(v) for v in value]


def _npz_scalar(value):
    return None if value is None else value.item()


def _open_npz(path: str):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise UsageError(f"{path}: not a readable .npz file ({e})")


def _npz_labels(y, declared: list[str] | None, path: str, key: str):
    """(class indices, class names) from integer indices or string names."""
    if y.ndim != 1:
        raise UsageError(f"{path}: {key!r} must be 1-D, one label per sample; it is {y.shape}")
    if y.dtype.kind in "US":
        names = [str(v) for v in y]
        classes = class_list(names, declared, path) if declared else sorted_labels(names)
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index[n] for n in names], dtype=np.int64), classes
    if y.dtype.kind not in "iub":
        raise UsageError(
            f"{path}: {key!r} has dtype {y.dtype}; store class indices (int) or class names (str)"
        )
    y = y.astype(np.int64)
    if declared is None:
        declared = [str(i) for i in range(int(y.max()) + 1 if len(y) else 0)]
    if len(y) and (y.min() < 0 or y.max() >= len(declared)):
        raise UsageError(
            f"{path}: {key!r} holds class indices outside 0..{len(declared) - 1} "
            f"({len(declared)} classes named)"
        )
    return y, declared


def load_npz(path: str, opts: Options) -> Dataset:
    with _open_npz(path) as data:
        for key in ("x", "y"):
            if key not in data.files:
                raise UsageError(
                    f"{path}: no array {key!r}; a dataset .npz holds x (samples) and y (labels)"
                )
        x, y = _npz_get(data, "x", path), _npz_get(data, "y", path)
        declared = _npz_names(_npz_get(data, "classes", path), path, "classes")
        axes = _npz_names(_npz_get(data, "axes", path), path, "axes")
        fold, group = _npz_get(data, "fold", path), _npz_get(data, "group", path)
        name = _npz_scalar(_npz_get(data, "name", path))
        source = _npz_scalar(_npz_get(data, "source", path))
        rate = _npz_scalar(_npz_get(data, "rate_hz", path))
    if x.dtype.kind not in "biuf" or x.ndim < 2:
        raise UsageError(f"{path}: x must be numbers shaped [n, ...]; it is {x.dtype} {x.shape}")
    if len(x) != len(y):
        raise UsageError(f"{path}: x has {len(x)} samples but y has {len(y)} labels")
    if axes is not None and len(axes) != x.shape[-1]:
        raise UsageError(f"{path}: {len(axes)} axes named but x's last dimension is {x.shape[-1]}")
    y, classes = _npz_labels(y, declared, path, "y")
    dataset = Dataset(
        name=str(name) if name is not None else stem(path),
        source=str(source) if source is not None else path,
        x=x,
        y=y,
        classes=classes,
        axes=axes,
        fold=fold,
        group=group,
        rate_hz=None if rate is None else float(rate),
    )
    return cut_cases(dataset, opts.window, path)


def signal_npz(path: str, label_column: str) -> Signal:
    with _open_npz(path) as data:
        signal = _npz_get(data, "signal", path)
        if signal is None:
            raise UsageError(f"{path}: no array 'signal'; a recording .npz holds signal [T, axes]")
        labels = _npz_get(data, "labels", path)
        declared = _npz_names(_npz_get(data, "classes", path), path, "classes")
        axes = _npz_names(_npz_get(data, "axes", path), path, "axes")
        rate = _npz_scalar(_npz_get(data, "rate_hz", path))
    if signal.ndim == 1:
        signal = signal[:, None]
    if signal.ndim != 2 or signal.dtype.kind not in "biuf":
        raise UsageError(f"{path}: signal must be numbers shaped [T, axes]; it is {signal.shape}")
    if axes is None:
        axes = ["dim%d" % i for i in range(signal.shape[1])]
    elif len(axes) != signal.shape[1]:
        raise UsageError(f"{path}: {len(axes)} axes named but the signal has {signal.shape[1]}")
    classes = declared
    if labels is not None:
        if len(labels) != len(signal):
            raise UsageError(f"{path}: {len(labels)} labels for {len(signal)} samples")
        labels, classes = _npz_labels(labels, declared, path, "labels")
    return Signal(
        signal.astype(np.float32), labels, classes, axes, None if rate is None else float(rate)
    )
