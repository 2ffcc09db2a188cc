"""Datasets that ship with scikit-learn (``sklearn:digits``)."""

from __future__ import annotations

import numpy as np

from kpdev.host.datasets.base import Dataset, Options, cut_cases
from kpdev.host.errors import UsageError


def _load_digits(spec: str, opts: Options) -> Dataset:
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
    return cut_cases(dataset, opts.window, spec)


_SKLEARN = {"digits": _load_digits}


def load_sklearn(spec: str, opts: Options) -> Dataset:
    name = spec.partition(":")[2]
    loader = _SKLEARN.get(name)
    if loader is None:
        known = ", ".join("sklearn:" + k for k in _SKLEARN)
        raise UsageError(f"{spec}: unknown scikit-learn dataset {name!r}; known: {known}")
    return loader(spec, opts)
