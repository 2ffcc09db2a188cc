"""The host reference runtime: run a model in-process, exactly as an embedded Linux board would.

``kpdev pack build`` needs each model's tensors (shapes, dtypes, quantization), its outputs on
the test vectors and its accuracy on a dataset.  Rather than a second implementation of each
engine, the host loads the model with the very backend classes the device agent uses on a Linux
board (``kpdev.accelerators``: tflite-micro's interpreter, IREE, akida, LiteRT, the pure-Python
int8 interpreter), from the same Python packages a Linux board installs.  So the io spec a pack
records is the one the device reports, the stored test vector outputs are what a Linux board
computes (bit for bit with tflite-micro, whose kernels are the microcontroller's too), and a
difference a device shows against them is a finding about that device, not about two runtimes
disagreeing.  numpy arrays cross into the backends as ``Tensor`` through
``kpdev.accelerators.ndarray``, as on the device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kpdev import accelerators
from kpdev.accelerators.ndarray import array_of, tensor_of
from kpdev.host.errors import UsageError
from kpdev.protocol.errors import KpdevError

# Backend -> the pip extra that installs its runtime (pyproject.toml).
EXTRAS = {"tflite_micro": "tflite", "litert": "litert", "iree": "iree", "akida": "akida"}


def _install_hint(names: list[str]) -> str:
    extras = [EXTRAS[n] for n in names if n in EXTRAS]
    if not extras:
        return ""
    return " or ".join(f"pip install 'kpdev[{x}]'" for x in dict.fromkeys(extras))


def concrete_shape(shape: list[int]) -> list[int]:
    """A tensor shape with each dynamic dimension (-1) taken as 1."""
    return [1 if d == -1 else int(d) for d in shape]


class ReferenceModel:
    """A model loaded in one of the device's backends, driven with numpy arrays."""

    def __init__(self, backend: Any, loaded: Any):
        self.backend = backend.name
        self.backend_version = backend.version()
        self._loaded = loaded

    def io_spec(self) -> dict[str, list[dict[str, Any]]]:
        """``{"inputs": [...], "outputs": [...]}``, each ``{"name", "dtype", "shape", "scale",
        "zero_point"}`` as the backend reports them on a device (base.LoadedModel.io_spec)."""
        spec = self._loaded.io_spec()
        return {which: [dict(t) for t in spec[which]] for which in ("inputs", "outputs")}

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """One inference: input arrays (the model's dtypes and shapes) -> output arrays."""
        tensors = [tensor_of(np.ascontiguousarray(a)) for a in inputs]
        try:
            outputs = self._loaded.run(tensors)
        except KpdevError as e:
            raise UsageError(f"{self.backend}: {e}")
        return [np.array(array_of(t)) for t in outputs]

    def arena_bytes(self) -> int | None:
        """Working memory the engine planned for the model (tflite-micro: the arena its
        allocator used; tflite_int8: its planned arena), None where the engine does not say."""
        info = self._loaded.info() or {}
        for key in ("arena_used_bytes", "arena_size_bytes"):
            if isinstance(info.get(key), int):
                return info[key]
        return None

    def info(self) -> dict[str, Any]:
        """The backend's facts about the loaded model (LoadedModel.info)."""
        return self._loaded.info() or {}

    def close(self) -> None:
        """Release the engine's resources."""
        self._loaded.close()


def load_reference(
    fmt: str, data: bytes, backend: str | None = None, options: dict | None = None
) -> ReferenceModel:
    """Load model ``data`` of format ``fmt`` in the backend a Linux board would use.

    ``backend`` names one (default: the first available for the format, as on the device);
    ``options`` are the load options (``kpdev deploy -O``).  A missing runtime, or a model the
    engine refuses, is a ``UsageError``; a missing runtime's names the extra to install.
    """
    names = list(accelerators.FORMATS.get(fmt) or ())
    if not names:
        known = ", ".join(sorted(accelerators.FORMATS))
        raise UsageError(f"unknown model format {fmt!r} (kpdev knows: {known})")
    offered = accelerators.available()
    if backend is not None:
        if backend not in accelerators.BACKENDS:
            raise UsageError(
                f"unknown backend {backend!r} for {fmt} models (kpdev knows: {', '.join(names)})"
            )
        if backend not in names:
            raise UsageError(
                f"backend {backend} does not load {fmt} models (those run on: {', '.join(names)})"
            )
        try:
            engine = accelerators.get(backend)
        except KpdevError as e:
            raise UsageError(f"{e}; {_install_hint([backend]) or 'install its runtime'}")
    else:
        usable = [n for n in names if n in offered]
        if not usable:
            raise UsageError(f"no runtime for {fmt} models on this host; {_install_hint(names)}")
        engine = accelerators.get(usable[0])
    try:
        loaded = engine.load(bytes(data), dict(options or {}))
    except KpdevError as e:
        hint = ""
        missing = [n for n in names[: names.index(engine.name)] if n not in offered]
        if backend is None and missing:
            hint = f" (a fuller runtime is not installed: {_install_hint(missing)})"
        raise UsageError(f"{engine.name} cannot load the model: {e}{hint}")
    return ReferenceModel(engine, loaded)
