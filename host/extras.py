"""Which pip extra of kpdev brings which optional part: model formats, backends, tools.

One table each way a user meets a missing part: a model format a simulated board cannot run, a
backend asked for by name, a distribution ``kpdev doctor`` looks for.
"""

from __future__ import annotations

# Model format (protocol/formats.py) -> the extra whose runtime runs it on a CPython agent.
FORMAT_EXTRAS = {"tflite": "tflite", "vmfb": "iree", "fbz": "akida"}
# Backend name (accelerators/) -> the extra that installs its runtime.
BACKEND_EXTRAS = {"tflite_micro": "tflite", "litert": "litert", "iree": "iree", "akida": "akida"}
# Optional distribution -> (extra, what it is for); kpdev doctor reports each.
OPTIONAL_DISTRIBUTIONS = {
    "akida": ("akida", "backend akida: BrainChip Akida .fbz models"),
    "tflite-micro": ("tflite", "backend tflite_micro: .tflite models on CPython boards"),
    "ai-edge-litert": ("litert", "backend litert: .tflite models on LiteRT"),
    "iree-base-runtime": ("iree", "backend iree: IREE .vmfb modules"),
    "matplotlib": ("report", "figures in kpdev report and kpdev learn"),
    "scikit-learn": ("datasets", "the sklearn:digits dataset"),
    "mpremote": ("micropython", "kpdev agent install and kpdev repl on a board"),
    "labgrid": ("fleet", "labgrid places in fleets: --place, kpdev fleet add NAME place:..."),
}


def pip_install(extra: str) -> str:
    """The command that installs an extra, as a user pastes it."""
    return f"pip install 'kpdev[{extra}]'"


def extra_for(fmt: str | None = None, backend: str | None = None) -> str | None:
    """The extra that brings ``backend`` (when named) or else a runtime for format ``fmt``."""
    if backend:
        return BACKEND_EXTRAS.get(backend)
    return FORMAT_EXTRAS.get(fmt or "")
