"""Labelled data for training and evaluation: .npz, UEA/UCR .ts, CSV and WAV recordings, sklearn.

``load_dataset(spec)`` picks a loader by what ``spec`` is (a ``sklearn:`` name, a file suffix, or
what a directory holds) and returns a :class:`Dataset`. ``load_signal(path)`` reads one continuous
recording for ``kpdev recognize --signal``.

One module per format, each behind the loader tables below (``_FILE_LOADERS`` by file suffix,
``_DIR_LOADERS`` by what a folder holds, ``_SIGNAL_LOADERS`` for single recordings): ``npz``,
``ts`` (UEA/UCR), ``csv_recordings``, ``wav``, ``sklearn_sets``.  ``base`` holds ``Dataset``,
``Signal`` and what the loaders share.  A new format is a module with a loader
``(path, Options) -> Dataset`` and one line in a table.
"""

from __future__ import annotations

import os

from kpdev.host.datasets.base import (
    DEFAULT_TEST_FRACTION,
    Dataset,
    Options,
    Signal,
    check_classes,
    check_window,
    with_classes,
)
from kpdev.host.datasets.csv_recordings import load_csv, load_csv_dir, signal_csv
from kpdev.host.datasets.npz import load_npz, signal_npz
from kpdev.host.datasets.sklearn_sets import load_sklearn
from kpdev.host.datasets.ts import load_ts, load_ts_dir
from kpdev.host.datasets.wav import load_wav_dir, load_wav_file, signal_wav
from kpdev.host.errors import UsageError

_FILE_KINDS = ".npz, .ts, .csv, a folder of .ts, .csv or .wav files, or sklearn:digits"


def load_dataset(
    spec: str,
    *,
    window: tuple[int, int] | None = None,
    label_column: str = "label",
    classes: list[str] | None = None,
) -> Dataset:
    """Load the dataset ``spec`` names: ``sklearn:NAME``, a file, or a directory.

    ``window=(size, stride)`` cuts recordings (CSV, WAV) or time series cases into windows;
    ``classes`` fixes the class order (every class in the data must be in it).
    """
    opts = Options(check_window(window), label_column, check_classes(classes, spec))
    if spec.startswith("sklearn:"):
        dataset = load_sklearn(spec, opts)
    else:
        path = os.path.expanduser(spec)
        if os.path.isdir(path):
            dataset = _DIR_LOADERS[_directory_kind(path)](path, opts)
        elif os.path.isfile(path):
            suffix = os.path.splitext(path)[1].lower()
            loader = _FILE_LOADERS.get(suffix)
            if loader is None:
                raise UsageError(
                    f"{spec}: unknown dataset type {suffix or '(none)'!r}; use {_FILE_KINDS}"
                )
            dataset = loader(path, opts)
        else:
            raise UsageError(f"{spec}: no such file or directory")
    if opts.classes is not None:
        dataset = with_classes(dataset, opts.classes, spec)
    return dataset


def load_signal(path: str, label_column: str = "label") -> Signal:
    """Read one recording: a CSV (header row, optional label column), an .npz or a WAV file."""
    suffix = os.path.splitext(path)[1].lower()
    loader = _SIGNAL_LOADERS.get(suffix)
    if loader is None:
        known = ", ".join(_SIGNAL_LOADERS)
        raise UsageError(f"{path}: unknown recording type {suffix or '(none)'!r}; use {known}")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    return loader(path, label_column)


def _directory_kind(path: str) -> str:
    """Which loader a directory needs, by the data files in it and its subfolders."""
    top, below = set(), set()
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if entry.startswith("."):
            continue
        if os.path.isfile(full):
            top.add(os.path.splitext(entry)[1].lower())
        elif os.path.isdir(full):
            below.update(os.path.splitext(n)[1].lower() for n in os.listdir(full))
    if ".ts" in top:
        return ".ts"
    kinds = sorted((top | below) & {".csv", ".wav"})
    if len(kinds) == 1:
        return kinds[0]
    if kinds:
        raise UsageError(f"{path}: holds both .csv and .wav files; keep one kind per dataset")
    raise UsageError(
        f"{path}: no .ts, .csv or .wav files in it or its subfolders; give {_FILE_KINDS}"
    )


_FILE_LOADERS = {".npz": load_npz, ".ts": load_ts, ".csv": load_csv, ".wav": load_wav_file}


_DIR_LOADERS = {".ts": load_ts_dir, ".csv": load_csv_dir, ".wav": load_wav_dir}


_SIGNAL_LOADERS = {".csv": signal_csv, ".npz": signal_npz, ".wav": signal_wav}

__all__ = ["DEFAULT_TEST_FRACTION", "Dataset", "Signal", "load_dataset", "load_signal"]
