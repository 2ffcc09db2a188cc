"""What every dataset loader makes: ``Dataset`` (labelled samples, their split) and ``Signal``
(one continuous recording), and the helpers loaders share: class lists, cutting recordings and
time series into windows."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

import numpy as np

from kpdev.host.errors import UsageError
from kpdev.host.features.transforms import windows_of

DEFAULT_TEST_FRACTION = 0.25


_INT_LABEL = re.compile(r"[+-]?\d+")


@dataclass
class Dataset:
    """Labelled samples; the first axis of ``x`` is the sample.

    ``x`` is ``[n, length, axes]`` (time major) for time series, ``[n, h, w]`` for images and
    ``[n, f]`` for feature tables. ``fold`` is a predefined split (0 train, 1 test); ``group``
    says which recording each sample was cut from, so a split never puts overlapping windows of
    one recording on both sides.
    """

    name: str
    source: str
    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    axes: list[str] | None = None
    fold: np.ndarray | None = None
    group: np.ndarray | None = None
    rate_hz: float | None = None

    def __post_init__(self):
        self.y = np.asarray(self.y, dtype=np.int64)
        n = len(self.x)
        if self.y.shape != (n,):
            raise UsageError(f"{self.name}: {n} samples but y has shape {self.y.shape}")
        if n and (self.y.min() < 0 or self.y.max() >= len(self.classes)):
            raise UsageError(f"{self.name}: a class index is outside 0..{len(self.classes) - 1}")
        for what in ("fold", "group"):
            value = getattr(self, what)
            if value is not None:
                value = np.asarray(value, dtype=np.int64)
                if value.shape != (n,):
                    raise UsageError(
                        f"{self.name}: {n} samples but {what} has shape {value.shape}"
                    )
                setattr(self, what, value)
        if self.fold is not None and not np.isin(self.fold, (0, 1)).all():
            raise UsageError(f"{self.name}: fold holds values other than 0 (train) and 1 (test)")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx) -> Dataset:
        """The samples at ``idx`` (indices or a boolean mask), in that order."""
        idx = np.asarray(idx)
        return replace(
            self,
            x=self.x[idx],
            y=self.y[idx],
            classes=list(self.classes),
            axes=None if self.axes is None else list(self.axes),
            fold=None if self.fold is None else self.fold[idx],
            group=None if self.group is None else self.group[idx],
        )

    def split(self, test_fraction: float | None = None, seed: int = 0) -> tuple[Dataset, Dataset]:
        """(train, test): the predefined fold, or a stratified random split drawn with ``seed``.

        The fold is used when ``test_fraction`` is None and the data has one. Otherwise each class
        gives ``test_fraction`` (default 0.25, at least one, never all) of its samples to the test
        side; samples cut from one recording stay together and count for the recording's
        majority class. A class with a single sample or recording stays on the train side.
        """
        if test_fraction is None and self.fold is not None:
            train, test = np.flatnonzero(self.fold == 0), np.flatnonzero(self.fold == 1)
            if not len(train) or not len(test):
                empty = "train" if not len(train) else "test"
                raise UsageError(
                    f"{self.name}: its predefined fold has no {empty} samples; "
                    "give a test fraction to split it at random"
                )
            return self.subset(train), self.subset(test)
        fraction = DEFAULT_TEST_FRACTION if test_fraction is None else float(test_fraction)
        if not 0.0 < fraction < 1.0:
            raise UsageError(f"test fraction {fraction:g} must lie between 0 and 1")
        if self.group is None:
            unit_of, unit_class = np.arange(len(self)), self.y
        else:
            _, unit_of = np.unique(self.group, return_inverse=True)
            counts = np.zeros((unit_of.max() + 1 if len(self) else 0, len(self.classes)), int)
            np.add.at(counts, (unit_of, self.y), 1)
            unit_class = counts.argmax(axis=1)
        rng = np.random.default_rng(seed)
        test_units = []
        for c in range(len(self.classes)):
            members = np.flatnonzero(unit_class == c)
            if len(members) < 2:
                continue
            k = min(max(int(np.floor(len(members) * fraction + 0.5)), 1), len(members) - 1)
            test_units.append(rng.permutation(members)[:k])
        is_test = np.isin(unit_of, np.concatenate(test_units) if test_units else [])
        if not is_test.any():
            units = "samples" if self.group is None else "recordings"
            raise UsageError(
                f"{self.name}: too few {units} to split: no class has 2 or more; "
                "add data or use its predefined train/test fold"
            )
        return self.subset(np.flatnonzero(~is_test)), self.subset(np.flatnonzero(is_test))

    def summary(self) -> dict:
        """Plain data for ``--json``: what the data is, its sample shape and per-class counts."""
        counts = np.bincount(self.y, minlength=len(self.classes))
        return {
            "name": self.name,
            "source": self.source,
            "n": len(self),
            "classes": list(self.classes),
            "shape": [int(d) for d in self.x.shape[1:]],
            "dtype": self.x.dtype.name,
            "axes": None if self.axes is None else list(self.axes),
            "counts": {c: int(k) for c, k in zip(self.classes, counts, strict=True)},
            "fold": None
            if self.fold is None
            else {"train": int((self.fold == 0).sum()), "test": int((self.fold == 1).sum())},
            "recordings": None if self.group is None else int(len(np.unique(self.group))),
            "rate_hz": self.rate_hz,
        }


@dataclass
class Signal:
    """One continuous recording: ``x`` is ``[T, axes]``; ``labels`` a class index per sample."""

    x: np.ndarray
    labels: np.ndarray | None
    classes: list[str] | None
    axes: list[str]
    rate_hz: float | None

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Options:
    window: tuple[int, int] | None
    label_column: str
    classes: list[str] | None


def check_window(window) -> tuple[int, int] | None:
    if window is None:
        return None
    try:
        size, stride = window
        ok = all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in window
        )
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UsageError(f"window {window!r}: give two positive integers, SIZE,STRIDE in samples")
    return int(size), int(stride)


def majority(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The most frequent class of each row of ``labels``; a tie goes to the class listed first."""
    counts = np.stack([(labels == c).sum(axis=1) for c in range(n_classes)], axis=1)
    return counts.argmax(axis=1)


def cut_cases(dataset: Dataset, window, where: str) -> Dataset:
    """Cut each time series case into windows; a window keeps its case's class, fold and group."""
    if window is None:
        return dataset
    if dataset.x.ndim == 3 and dataset.x.shape[1] == window[0]:
        return dataset  # cases already one window long: nothing to cut
    if dataset.axes is None or dataset.x.ndim != 3:
        raise UsageError(
            f"{where}: a window cuts time series [n, length, axes]; this data has none"
        )
    size, stride = window
    length = dataset.x.shape[1]
    if length < size:
        raise UsageError(
            f"{where}: cases have {length} samples, fewer than the window size {size}"
        )
    windows = windows_of(np.moveaxis(dataset.x, 1, 0), size, stride)  # [count, size, n, axes]
    count = len(windows)
    x = np.moveaxis(windows, 2, 0).reshape((-1, size) + dataset.x.shape[2:])
    case = np.repeat(np.arange(len(dataset)), count)
    group = case if dataset.group is None else dataset.group[case]
    return replace(
        dataset,
        x=np.ascontiguousarray(x),
        y=dataset.y[case],
        fold=None if dataset.fold is None else dataset.fold[case],
        group=group,
    )


def check_classes(classes, spec) -> list[str] | None:
    if classes is None:
        return None
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes) or not classes:
        raise UsageError(
            f"{spec}: the classes given ({', '.join(classes)}) repeat a name or are empty"
        )
    return classes


def sorted_labels(labels) -> list[str]:
    """Label names sorted; numerically when every name is an integer ("2" before "10")."""
    names = set(labels)
    if all(_INT_LABEL.fullmatch(n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


def class_list(found, classes: list[str] | None, where: str) -> list[str]:
    """The class order: ``classes`` when given (it must cover ``found``), else sorted."""
    if classes is None:
        return sorted_labels(found)
    extra = sorted(set(found) - set(classes))
    if extra:
        raise UsageError(
            f"{where}: class {extra[0]!r} is in the data but not in the class list "
            f"({', '.join(classes)})"
        )
    return list(classes)


def with_classes(dataset: Dataset, classes: list[str], where: str) -> Dataset:
    """``dataset`` with its classes renumbered into the order of ``classes``."""
    if dataset.classes == classes:
        return dataset
    present = [dataset.classes[i] for i in np.unique(dataset.y)]
    class_list(present, classes, where)
    index = {c: i for i, c in enumerate(classes)}
    mapping = np.array([index.get(c, -1) for c in dataset.classes], dtype=np.int64)
    return replace(dataset, y=mapping[dataset.y], classes=list(classes))


def stem(path: str) -> str:
    return os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
