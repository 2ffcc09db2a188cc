"""TFLite models on tflite-micro's Python interpreter (the ``tflite-micro`` package).

CPython only: it needs numpy and the interpreter's native extension.  On MicroPython the import
fails, and that is how the registry learns this backend is not offered there.
"""

import os
import re
import struct
import sys
import tempfile

import tflite_micro
from tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from kpdev.accelerators.base import Backend, LoadedModel, read_source
from kpdev.accelerators.ndarray import array_of, tensor_of, tflite_spec
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.ops import E_INFER, E_MODEL_LOAD, E_NO_MODEL

DEFAULT_ARENA = 256 * 1024
# Without an arena of its own the interpreter cannot even report the failure: it crashes.
MIN_ARENA = 1024
# When the default arena is too small, grow it (x4) up to this before giving up.
MAX_ARENA = 64 * 1024 * 1024

_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


class _NativeStderr:
    """Capture what the C++ interpreter writes to file descriptor 2 while in the block.

    TFLM reports why a model fails to load, and how much arena it used, only there.  The
    redirection is process-wide: other threads writing to stderr meanwhile land in the capture.
    """

    def __enter__(self):
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc):
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        return False


def _last_lines(text, n=3):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines[-n:])


def _check_flatbuffer(data):
    """Reject bytes that are not a well-formed TFLite model before the C++ side trusts them."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise DeviceError(
            "not a TFLite model: %d bytes without the TFL3 file identifier" % len(data),
            E_MODEL_LOAD,
        )
    # TFLM does not verify the flatbuffer: an offset or index out of range would crash the
    # process, so walk the tables once here, where a bad offset is only a Python exception.
    try:
        model = schema.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
        n_codes = model.OperatorCodesLength()
        # Buffer 0 is the conventional empty buffer; a model may omit the table altogether.
        n_buffers = max(model.BuffersLength(), 1)
        for s in range(model.SubgraphsLength()):
            sg = model.Subgraphs(s)
            n_tensors = sg.TensorsLength()
            for t in range(n_tensors):
                if not 0 <= sg.Tensors(t).Buffer() < n_buffers:
                    raise ValueError("tensor %d of subgraph %d names a missing buffer" % (t, s))
            ends = [sg.Inputs(k) for k in range(sg.InputsLength())]
            ends += [sg.Outputs(k) for k in range(sg.OutputsLength())]
            if not all(0 <= i < n_tensors for i in ends):
                raise ValueError("subgraph %d names a missing input or output tensor" % s)
            for o in range(sg.OperatorsLength()):
                op = sg.Operators(o)
                if not 0 <= op.OpcodeIndex() < n_codes:
                    raise ValueError("operator %d names a missing operator code" % o)
                ids = [op.Inputs(k) for k in range(op.InputsLength())]
                ids += [op.Outputs(k) for k in range(op.OutputsLength())]
                # -1 marks an absent optional input.
                if not all(-1 <= i < n_tensors for i in ids):
                    raise ValueError("operator %d names a missing tensor" % o)
    except (struct.error, IndexError, ValueError, TypeError, AttributeError) as e:
        raise DeviceError("corrupt TFLite model: %s" % e, E_MODEL_LOAD)
    return model


def _tensor_names(model, which):
    sg = model.Subgraphs(0)
    count = sg.InputsLength() if which == "inputs" else sg.OutputsLength()
    names = []
    for k in range(count):
        index = sg.Inputs(k) if which == "inputs" else sg.Outputs(k)
        raw = sg.Tensors(index).Name()
        names.append(raw.decode("utf-8", "replace") if raw else "%s_%d" % (which[:-1], k))
    return names


class TFLiteMicroModel(LoadedModel):
    """A ``.tflite`` model in a tflite-micro interpreter with its own arena."""

    def __init__(self, interpreter, data, arena_size, arena_used, spec):
        super().__init__()
        self._interpreter = interpreter
        self._data = data  # the interpreter reads the flatbuffer in place: keep it alive
        self._arena_size = arena_size
        self._arena_used = arena_used
        self._spec = spec

    def io_spec(self):
        """Names, dtypes, shapes and quantization of the model's inputs and outputs."""
        return self._spec

    def run(self, inputs):
        """Run one inference on a list of ``Tensor``; returns the outputs as ``Tensor``."""
        if self._interpreter is None:
            raise DeviceError("model is closed", E_NO_MODEL)
        self.check_inputs(inputs)
        interp = self._interpreter
        try:
            for i, t in enumerate(inputs):
                interp.set_input(array_of(t), i)
            interp.invoke()
            outputs = []
            for i, spec in enumerate(self._spec["outputs"]):
                outputs.append(tensor_of(interp.get_output(i), spec["dtype"]))
        except (RuntimeError, ValueError, IndexError) as e:
            raise DeviceError("tflite_micro inference failed: %s" % e, E_INFER)
        return outputs

    def reset(self):
        """Return variable tensors (RNN state and the like) to their initial values."""
        if self._interpreter is not None:
            self._interpreter.reset()

    def close(self):
        """Drop the interpreter and its arena."""
        self._interpreter = None
        self._data = None

    def info(self):
        """Arena given to the interpreter and the part its allocator recorded as used.

        ``arena_used_bytes`` excludes the scratch memory kernels borrow while preparing, so a
        working arena must be a little larger than it.
        """
        return {
            "arena_size_bytes": self._arena_size,
            "arena_used_bytes": self._arena_used,
        }


class TFLiteMicroBackend(Backend):
    """Runs ``.tflite`` flatbuffers in tflite-micro's reference interpreter.

    ``load`` reads ``meta["arena_size"]`` (bytes) when given; otherwise it starts at 256 KiB and
    grows the arena while the model does not fit.
    """

    name = "tflite_micro"

    def version(self):
        """The tflite-micro package version, with the git commit it was built from."""
        return tflite_micro.__version__

    def load(self, source, meta=None):
        """Load a ``.tflite`` model from a path or bytes into a new interpreter."""
        data = read_source(source)
        model = _check_flatbuffer(data)
        arena = (meta or {}).get("arena_size")
        grow = arena is None
        if arena is None:
            arena = DEFAULT_ARENA
        if not isinstance(arena, int) or arena < MIN_ARENA:
            raise DeviceError(
                "arena_size must be an int of at least %d bytes, not %r" % (MIN_ARENA, arena),
                E_MODEL_LOAD,
            )
        while True:
            with _NativeStderr() as log:
                try:
                    interp = runtime.Interpreter.from_bytes(data, arena_size=arena)
                    error = None
                    interp.print_allocations()
                except Exception as e:  # the wrapper raises RuntimeError, ValueError, ...
                    interp = None
                    error = e
            if interp is not None:
                break
            too_small = "Failed to allocate" in log.text or "Failed to resize" in log.text
            if grow and too_small and arena * 4 <= MAX_ARENA:
                arena *= 4
                continue
            detail = _last_lines(log.text)
            raise DeviceError(
                "tflite_micro cannot load the model (arena %d bytes): %s%s"
                % (arena, error, " (" + detail + ")" if detail else ""),
                E_MODEL_LOAD,
            )
        found = _ARENA_TOTAL.search(log.text)
        arena_used = int(found.group(1)) if found else None
        spec = {"inputs": [], "outputs": []}
        for which, details in (
            ("inputs", interp.get_input_details),
            ("outputs", interp.get_output_details),
        ):
            for k, name in enumerate(_tensor_names(model, which)):
                spec[which].append(tflite_spec(details(k), name))
        return TFLiteMicroModel(interp, data, arena, arena_used, spec)
