"""Reference outputs from tflite-micro's own interpreter, run in this process."""

import hashlib

import pytest

_interpreters = {}


def reference(model, x):
    """Output 0 of ``model`` on ``x``, run by tflite-micro's own interpreter in this process."""
    pytest.importorskip("tflite_micro")
    from tflite_micro import runtime

    key = hashlib.sha256(model).digest()
    if key not in _interpreters:
        _interpreters[key] = runtime.Interpreter.from_bytes(model, arena_size=256 * 1024)
    interp = _interpreters[key]
    interp.set_input(x, 0)
    interp.invoke()
    return interp.get_output(0).copy()
