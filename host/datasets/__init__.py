"""Labelled data for training and evaluation: .npz, UEA/UCR .ts, CSV and WAV recordings, sklearn.

``load_dataset(spec)`` picks a loader by what ``spec`` is (a ``sklearn:`` name, a file suffix, or
what a directory holds) and returns a :class:`Dataset`. ``load_signal(path)`` reads one continuous
recording for ``kpdev recognize --signal``.
"""

from __future__ import annotations

import csv
import os
import re
import wave
import zipfile
from dataclasses import dataclass, replace

import numpy as np

from kpdev.host.errors import UsageError

DEFAULT_TEST_FRACTION = 0.25
_FILE_KINDS = ".npz, .ts, .csv, a folder of .ts, .csv or .wav files, or sklearn:digits"
_INT_LABEL = re.compile(r"[+-]?\d+")
_TS_PAIR = re.compile(r"(.*)_(TRAIN|TEST)\.ts", re.IGNORECASE)


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
class _Options:
    window: tuple[int, int] | None
    label_column: str
    classes: list[str] | None


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
    opts = _Options(_check_window(window), label_column, _check_classes(classes, spec))
    if spec.startswith("sklearn:"):
        dataset = _load_sklearn(spec, opts)
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
        dataset = _with_classes(dataset, opts.classes, spec)
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


# --- windows --------------------------------------------------------------------------------


def _segment(signal: np.ndarray, size: int, stride: int) -> np.ndarray:
    """Windows ``[count, size, ...]`` of ``signal`` starting at 0, stride, 2 * stride, ..."""
    # The same windows as kpdev.host.features.segment; keep one of the two once both exist.
    count = (len(signal) - size) // stride + 1 if len(signal) >= size else 0
    index = np.arange(count)[:, None] * stride + np.arange(size)[None, :]
    return signal[index]


def _check_window(window) -> tuple[int, int] | None:
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


def _majority(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The most frequent class of each row of ``labels``; a tie goes to the class listed first."""
    counts = np.stack([(labels == c).sum(axis=1) for c in range(n_classes)], axis=1)
    return counts.argmax(axis=1)


def _cut_cases(dataset: Dataset, window, where: str) -> Dataset:
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
    windows = _segment(np.moveaxis(dataset.x, 1, 0), size, stride)  # [count, size, n, axes]
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


# --- classes --------------------------------------------------------------------------------


def _check_classes(classes, spec) -> list[str] | None:
    if classes is None:
        return None
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes) or not classes:
        raise UsageError(
            f"{spec}: the classes given ({', '.join(classes)}) repeat a name or are empty"
        )
    return classes


def _sorted_labels(labels) -> list[str]:
    """Label names sorted; numerically when every name is an integer ("2" before "10")."""
    names = set(labels)
    if all(_INT_LABEL.fullmatch(n) for n in names):
        return sorted(names, key=int)
    return sorted(names)


def _class_list(found, classes: list[str] | None, where: str) -> list[str]:
    """The class order: ``classes`` when given (it must cover ``found``), else sorted."""
    if classes is None:
        return _sorted_labels(found)
    extra = sorted(set(found) - set(classes))
    if extra:
        raise UsageError(
            f"{where}: class {extra[0]!r} is in the data but not in the class list "
            f"({', '.join(classes)})"
        )
    return list(classes)


def _with_classes(dataset: Dataset, classes: list[str], where: str) -> Dataset:
    """``dataset`` with its classes renumbered into the order of ``classes``."""
    if dataset.classes == classes:
        return dataset
    present = [dataset.classes[i] for i in np.unique(dataset.y)]
    _class_list(present, classes, where)
    index = {c: i for i, c in enumerate(classes)}
    mapping = np.array([index.get(c, -1) for c in dataset.classes], dtype=np.int64)
    return replace(dataset, y=mapping[dataset.y], classes=list(classes))


# --- scikit-learn ---------------------------------------------------------------------------


def _load_digits(spec: str, opts: _Options) -> Dataset:
    try:
        import sklearn
        from sklearn.datasets import load_digits
    except ImportError:
        raise UsageError(f"{spec} needs scikit-learn: pip install 'kpdev[datasets]'")
    digits = load_digits()
    dataset = Dataset(
        name="digits",
        source=f"scikit-learn {sklearn.__version__} load_digits (UCI optical hand-written digits)",
        x=digits.images.astype(np.float32),
        y=digits.target,
        classes=[str(i) for i in range(10)],
    )
    return _cut_cases(dataset, opts.window, spec)


_SKLEARN = {"digits": _load_digits}


def _load_sklearn(spec: str, opts: _Options) -> Dataset:
    name = spec.partition(":")[2]
    loader = _SKLEARN.get(name)
    if loader is None:
        known = ", ".join("sklearn:" + k for k in _SKLEARN)
        raise UsageError(f"{spec}: unknown scikit-learn dataset {name!r}; known: {known}")
    return loader(spec, opts)


# --- .npz -----------------------------------------------------------------------------------


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
        classes = _class_list(names, declared, path) if declared else _sorted_labels(names)
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


def _load_npz(path: str, opts: _Options) -> Dataset:
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
        name=str(name) if name is not None else _stem(path),
        source=str(source) if source is not None else path,
        x=x,
        y=y,
        classes=classes,
        axes=axes,
        fold=fold,
        group=group,
        rate_hz=None if rate is None else float(rate),
    )
    return _cut_cases(dataset, opts.window, path)


# --- UEA/UCR .ts ----------------------------------------------------------------------------


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
    name = header.get("problemname") or (match.group(1) if match else _stem(path))
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


def _load_ts(path: str, opts: _Options) -> Dataset:
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
    return _cut_cases(dataset, opts.window, path)


def _load_ts_dir(path: str, opts: _Options) -> Dataset:
    names = sorted(f for f in os.listdir(path) if f.lower().endswith(".ts"))
    trains = [f for f in names if f.upper().endswith("_TRAIN.TS")]
    if len(trains) == 1:
        return _load_ts(os.path.join(path, trains[0]), opts)
    if len(trains) == 0 and len(names) == 1:
        return _load_ts(os.path.join(path, names[0]), opts)
    raise UsageError(
        f"{path}: holds {', '.join(names)}; name one .ts file, or keep one "
        "NAME_TRAIN.ts/NAME_TEST.ts pair per folder"
    )


# --- CSV recordings -------------------------------------------------------------------------


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
    where: str, recordings: list[tuple[str, str | None]], opts: _Options
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
    classes = _class_list({n for _, labels in loaded for n in labels}, opts.classes, where)
    index = {c: i for i, c in enumerate(classes)}
    xs, ys, groups = [], [], []
    for number, (values, labels) in enumerate(loaded):
        windows = _segment(values, size, stride)
        label_windows = _segment(np.array([index[n] for n in labels]), size, stride)
        xs.append(windows)
        ys.append(_majority(label_windows, len(classes)))
        groups.append(np.full(len(windows), number))
    x = np.concatenate(xs)
    if not len(x):
        raise UsageError(f"{where}: no recording is {size} samples long, the window size")
    return Dataset(
        name=_stem(where),
        source=f"{len(recordings)} CSV recording(s) in {where}, windows of {size} every {stride}",
        x=x,
        y=np.concatenate(ys),
        classes=classes,
        axes=axes,
        group=np.concatenate(groups),
    )


def _load_csv(path: str, opts: _Options) -> Dataset:
    return _load_recordings(path, [(path, None)], opts)


def _load_csv_dir(path: str, opts: _Options) -> Dataset:
    return _load_recordings(path, _csv_recordings(path), opts)


# --- WAV recordings -------------------------------------------------------------------------


def _read_wav(path: str) -> tuple[np.ndarray, int]:
    """(int16 samples [T, channels], frame rate) of an 8- or 16-bit PCM WAV file."""
    try:
        with wave.open(path, "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            data = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as e:
        raise UsageError(f"{path}: not a PCM WAV file kpdev can read ({e})")
    if width == 2:
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
    elif width == 1:
        # 8-bit WAV is unsigned with 128 as zero; scale it to the int16 range.
        samples = (np.frombuffer(data, dtype=np.uint8).astype(np.int16) - 128) * 256
    else:
        raise UsageError(
            f"{path}: {8 * width}-bit samples; kpdev reads 8- and 16-bit PCM, convert it to 16-bit"
        )
    return samples.reshape(-1, channels), rate


def _load_wav_dir(path: str, opts: _Options) -> Dataset:
    files = []
    for folder in sorted(os.listdir(path)):
        full = os.path.join(path, folder)
        if folder.startswith("."):
            continue
        if os.path.isfile(full) and folder.lower().endswith(".wav"):
            raise UsageError(
                f"{full}: a WAV file outside a class folder; put WAV files in one folder per class"
            )
        if os.path.isdir(full):
            files += [
                (os.path.join(full, name), folder)
                for name in sorted(os.listdir(full))
                if name.lower().endswith(".wav") and not name.startswith(".")
            ]
    if not files:
        raise UsageError(f"{path}: no WAV files in its class folders")
    classes = _class_list({folder for _, folder in files}, opts.classes, path)
    index = {c: i for i, c in enumerate(classes)}
    recordings = []
    for file, folder in files:
        samples, rate = _read_wav(file)
        if recordings and (samples.shape[1], rate) != recordings[0][1:3]:
            first, channels, first_rate = recordings[0][3], recordings[0][1], recordings[0][2]
            raise UsageError(
                f"{file}: {samples.shape[1]} channel(s) at {rate} Hz, but {first} has "
                f"{channels} at {first_rate} Hz; convert the files to one format"
            )
        recordings.append((samples, samples.shape[1], rate, os.path.basename(file), folder))
    channels, rate = recordings[0][1], recordings[0][2]
    if opts.window is None:
        lengths = {len(r[0]) for r in recordings}
        if len(lengths) > 1:
            short = min(recordings, key=lambda r: len(r[0]))
            long = max(recordings, key=lambda r: len(r[0]))
            raise UsageError(
                f"{path}: WAV files differ in length ({short[3]} {len(short[0])} samples, "
                f"{long[3]} {len(long[0])}); give a window (--window SIZE,STRIDE)"
            )
        x = np.stack([r[0] for r in recordings])
        y = [index[r[4]] for r in recordings]
        group = np.arange(len(recordings))
        how = "one sample per file"
    else:
        size, stride = opts.window
        windows = [_segment(r[0], size, stride) for r in recordings]
        x = np.concatenate(windows)
        if not len(x):
            raise UsageError(f"{path}: no WAV file is {size} samples long, the window size")
        y = np.concatenate(
            [np.full(len(w), index[r[4]]) for w, r in zip(windows, recordings, strict=True)]
        )
        group = np.concatenate([np.full(len(w), i) for i, w in enumerate(windows)])
        how = f"windows of {size} every {stride}"
    return Dataset(
        name=_stem(path),
        source=f"{len(recordings)} WAV file(s) in {path}, {rate} Hz, {how}",
        x=x,
        y=y,
        classes=classes,
        axes=["ch%d" % i for i in range(channels)],
        group=group,
        rate_hz=float(rate),
    )


def _load_wav_file(path: str, opts: _Options) -> Dataset:
    raise UsageError(
        f"{path}: a lone WAV file has no class; give the folder holding one folder per class"
    )


# --- dispatch -------------------------------------------------------------------------------


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(os.path.normpath(path)))[0]


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


_FILE_LOADERS = {".npz": _load_npz, ".ts": _load_ts, ".csv": _load_csv, ".wav": _load_wav_file}
_DIR_LOADERS = {".ts": _load_ts_dir, ".csv": _load_csv_dir, ".wav": _load_wav_dir}


# --- single recordings ----------------------------------------------------------------------


def _signal_csv(path: str, label_column: str) -> Signal:
    axes, values, names = _read_csv(path, label_column)
    if names is None:
        return Signal(values, None, None, axes, None)
    classes = _sorted_labels(names)
    index = {c: i for i, c in enumerate(classes)}
    return Signal(values, np.array([index[n] for n in names], dtype=np.int64), classes, axes, None)


def _signal_npz(path: str, label_column: str) -> Signal:
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


def _signal_wav(path: str, label_column: str) -> Signal:
    samples, rate = _read_wav(path)
    axes = ["ch%d" % i for i in range(samples.shape[1])]
    return Signal(samples.astype(np.float32), None, None, axes, float(rate))


_SIGNAL_LOADERS = {".csv": _signal_csv, ".npz": _signal_npz, ".wav": _signal_wav}
