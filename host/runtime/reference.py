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


def tflm_arena_bytes(data: bytes) -> int | None:
    """The arena TFLite Micro's allocator uses for ``.tflite`` model ``data`` in this process
    (the reference an MCU runtime's heap is weighed against), or None when tflite-micro is not
    installed here or does not load the model."""
    if "tflite_micro" not in accelerators.available():
        return None
    try:
        return load_reference("tflite", data, "tflite_micro").arena_bytes()
    except (UsageError, KpdevError):
        return None


class ReferenceLearner:
    """A pack's learner (``learning``) run in-process by the device's own code.

    The memory learner is ``kpdev.accelerators.learner.MemoryLearner`` started from the pack's
    state (or empty); the akida learner is the pack's Akida model in akida's software engine.
    ``classify`` takes the learner's input (the pipeline's output, or the model input of a
    pack without a pipeline), as the device's CLASSIFY does after its pipeline.
    """

    def __init__(self, pack: Any):
        learning = pack.learning
        self.kind = learning["learner"]
        self.labels = list(learning["classes"])
        self._pack = pack
        self._models: dict[str, ReferenceModel] = {}
        self._embed = learning.get("model") if self.kind == "memory" else None
        self._output = learning.get("output") or 0
        if self.kind == "akida":
            entry = pack.model(learning["model"])
            try:
                backend = accelerators.get("akida")
                self._akida = backend.load(pack.model_bytes(entry["id"]), {"output": "forward"})
            except KpdevError as e:
                raise UsageError(
                    f"akida cannot load the learner model: {e}; pip install 'kpdev[akida]'"
                )
            return
        from kpdev.accelerators.learner import MemoryLearner

        state = pack.learner_state()
        if state is not None:
            try:
                self._memory = MemoryLearner.from_bytes(state)
            except KpdevError as e:
                raise UsageError(f"{pack.path}: its learner state does not load: {e}")
            return
        if self._embed is not None:
            out = self.model(self._embed).io_spec()["outputs"][self._output]
            dtype, shape = out["dtype"], concrete_shape(out["shape"])
        else:
            from kpdev.host import features

            spec = pack.manifest["pipeline"]
            dtype = spec["output"]["dtype"] if spec.get("output") else "float32"
            shape = list(features.out_shape(spec))
        options = learning.get("options") or {}
        try:
            self._memory = MemoryLearner(
                int(np.prod(shape[1:])),
                dtype,
                options["per_class"],
                options["k"],
                options["metric"],
                options["mode"],
                learning["max_classes"],
                list(self.labels),
            )
        except KpdevError as e:
            raise UsageError(f"memory learner settings: {e}")

    def model(self, model_id: str) -> ReferenceModel:
        """The pack model ``model_id`` in the host reference runtime (loaded once)."""
        if model_id not in self._models:
            entry = self._pack.model(model_id)
            self._models[model_id] = load_reference(
                entry["format"],
                self._pack.model_bytes(model_id),
                entry.get("backend"),
                entry.get("options"),
            )
        return self._models[model_id]

    def model_outputs(self, model_id: str, x: np.ndarray) -> list[np.ndarray]:
        """The outputs of pack model ``model_id`` for model input ``x`` (the learned Akida
        model for the akida learner's)."""
        if self.kind == "akida" and model_id == self._pack.learning["model"]:
            tensors = self._akida.run([tensor_of(np.ascontiguousarray(x))])
            return [np.array(array_of(t)) for t in tensors]
        return self.model(model_id).run([x])

    def output_specs(self) -> list[dict[str, Any]]:
        """The akida learner model's output tensors (they grow with added classes)."""
        return [dict(t) for t in self._akida.io_spec()["outputs"]]

    def classify(self, x: np.ndarray) -> tuple[int, str | None]:
        """(class index, label) the learner gives model input ``x``; (-1, None) when it has
        learned nothing."""
        t = tensor_of(np.ascontiguousarray(x))
        try:
            if self.kind == "akida":
                c = self._akida.predict_classes([t])[0][0]
            else:
                if self._embed is not None:
                    y = self.model(self._embed).run([x])[self._output]
                    t = tensor_of(np.ascontiguousarray(y))
                c = self._memory.predict(t)[0]
        except KpdevError as e:
            raise UsageError(f"the {self.kind} learner refuses the input: {e}")
        labels = self._memory.labels if self.kind == "memory" else self.labels
        return c, (labels[c] if 0 <= c < len(labels) else None)

    def learn(self, xs: list[np.ndarray], ys: list[int]) -> bytes:
        """Teach the learner model inputs ``xs`` with class indices ``ys`` (as the device's
        LEARN does); its state after: the memory learner's bytes, or the Akida model file."""
        try:
            if self.kind == "akida":
                batch = np.concatenate([np.asarray(x) for x in xs])
                self._akida.fit([tensor_of(np.ascontiguousarray(batch))], [int(y) for y in ys])
                return self._akida.to_bytes()
            for x, y in zip(xs, ys, strict=True):
                if self._embed is not None:
                    x = self.model(self._embed).run([x])[self._output]
                self._memory.learn(tensor_of(np.ascontiguousarray(x)), int(y))
            return self._memory.to_bytes()
        except KpdevError as e:
            raise UsageError(f"the {self.kind} learner refuses a sample: {e}")

    def close(self) -> None:
        """Release the engines."""
        for m in self._models.values():
            m.close()
        if self.kind == "akida":
            self._akida.close()
