"""CSV recordings: a header row of axis names and an optional label column; one file, or a
folder of them (one folder per class, or labels in the files)."""

from __future__ import annotations

import csv
import os

import numpy as np

from kpdev.host.datasets.base import (
    Dataset,
    Options,
    Signal,
    class_list,
    majority,
    sorted_labels,
    stem,
)
from kpdev.host.errors import UsageError
from kpdev.host.features.transforms import windows_of


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(path: str, label_column: str):
    """(axes, values [T, axes] float32, per-sample label names or None) of a CSV recording."""
    try:
        f = open(path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise UsageError(f"{path}: cannot read it ({e.strerror})")
    with f:
        reader = csv.reader(f)
        header = None
        rows, labels = [], []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                if all(_is_number(cell) for cell in header):
                    raise UsageError(
                        f"{path}: the first row is numbers; add a header row naming the columns"
                    )
                if len(set(header)) != len(header):
                    raise UsageError(f"{path}: the header names a column twice")
                label_at = header.index(label_column) if label_column in header else None
                continue
            if len(row) != len(header):
                raise UsageError(
                    f"{path}:{reader.line_num}: {len(row)} fields, the header has {len(header)}"
                )
            if label_at is not None:
                label = row.pop(label_at).strip()
                if not label:
                    raise UsageError(f"{path}:{reader.line_num}: empty {label_column!r} value")
                labels.append(label)
            try:
                rows.append([float(cell) for cell in row])
            except ValueError:
                raise UsageError(
                    f"{path}:{reader.line_num}: a value that is not a number (columns "
                    f"other than {label_column!r} are sensor axes)"
                )
    if header is None or not rows:
        raise UsageError(f"{path}: no samples; a recording is a header row and one row per sample")
    axes = [h for i, h in enumerate(header) if i != label_at]
    if not axes:
        raise UsageError(f"{path}: only a label column; a recording needs sensor axis columns")
    values = np.asarray(rows, dtype=np.float32)
    if np.isnan(values).any():
        raise UsageError(f"{path}: missing values (NaN); fill or drop them first")
    return axes, values, (labels if label_at is not None else None)


def _csv_recordings(path: str) -> list[tuple[str, str | None]]:
    """(file, class folder name or None) for the CSV files in ``path`` and its subfolders."""
    found = []
    for entry in sorted(os.listdir(path)):
        full = os.path.join(path, entry)
        if entry.startswith("."):
            continue
        if os.path.isfile(full) and entry.lower().endswith(".csv"):
            found.append((full, None))
        elif os.path.isdir(full):
            for name in sorted(os.listdir(full)):
                if name.lower().endswith(".csv") and not name.startswith("."):
                    found.append((os.path.join(full, name), entry))
    return found


def _load_recordings(
    where: str, recordings: list[tuple[str, str | None]], opts: Options
) -> Dataset:
    """Windows of CSV recordings, labelled per sample or by their class folder."""
    if opts.window is None:
        raise UsageError(
            f"{where}: CSV recordings need a window to cut them into samples "
            "(--window SIZE,STRIDE)"
        )
    size, stride = opts.window
    axes = None
    loaded = []
    for file, folder in recordings:
        file_axes, values, labels = _read_csv(file, opts.label_column)
        if labels is None:
            if folder is None:
                raise UsageError(
                    f"{file}: no label column {opts.label_column!r}; name it with "
                    "--label-column, or put recordings in one folder per class"
                )
            labels = [folder] * len(values)
        if axes is None:
            axes, first = file_axes, file
        elif file_axes != axes:
            raise UsageError(
                f"{file}: columns {', '.join(file_axes)} differ from {os.path.basename(first)}'s "
                f"({', '.join(axes)})"
            )
        loaded.append((values, labels))
    classes = class_list({n for _, labels in loaded for n in labels}, opts.classes, where)
    index = {c: i for i, c in enumerate(classes)}
    xs, ys, groups = [], [], []
    for number, (values, labels) in enumerate(loaded):
        windows = windows_of(values, size, stride)
        label_windows = windows_of(np.array([index[n] for n in labels]), size, stride)
        xs.append(windows)
        ys.append(majority(label_windows, len(classes)))
        groups.append(np.full(len(windows), number))
    x = np.concatenate(xs)
    if not len(x):
        raise UsageError(f"{where}: no recording is {size} samples long, the window size")
    return Dataset(
        name=stem(where),
        source=f"{len(recordings)} CSV recording(s) in {where}, windows of {size} every {stride}",
        x=x,
        y=np.concatenate(ys),
        classes=classes,
        axes=axes,
        group=np.concatenate(groups),
    )


def load_csv(path: str, opts: Options) -> Dataset:
    return _load_recordings(path, [(path, None)], opts)


def load_csv_dir(path: str, opts: Options) -> Dataset:
    return _load_recordings(path, _csv_recordings(path), opts)


def signal_csv(path: str, label_column: str) -> Signal:
    axes, values, names = _read_csv(path, label_column)
    if names is None:
        return Signal(values, None, None, axes, None)
    classes = sorted_labels(names)
    index = {c: i for i, c in enumerate(classes)}
    return Signal(values, np.array([index[n] for n in names], dtype=np.int64), classes, axes, None)
