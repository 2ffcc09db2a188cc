"""The contract every inference backend keeps: load a model, describe its tensors, run it.

Device code: runs on MicroPython and CPython alike.  A backend subclasses ``Backend`` and returns
a ``LoadedModel`` subclass from ``load``; input checking lives here so that every backend rejects
a wrong input the same way, with the same error codes, before it touches the engine.
"""

from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_E_BAD_DTYPE = const(19)
_E_BAD_SHAPE = const(18)
_E_MODEL_LOAD = const(23)


def read_source(source):
    """The model bytes of ``source``: a filesystem path (str) is read, bytes pass through."""
    if isinstance(source, str):
        try:
            with open(source, "rb") as f:
                return f.read()
        except OSError as e:
            raise DeviceError("cannot read model file %s: %s" % (source, e), _E_MODEL_LOAD)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    raise DeviceError(
        "model source must be a path or bytes, not %s" % type(source).__name__, _E_MODEL_LOAD
    )


class Backend:
    """An inference engine the agent can load models into.

    ``name`` is the registry key; the formats it loads are the registry's FORMATS table.
    Constructing a backend must be cheap and must raise if the engine cannot work here: the
    registry constructs each one once to find out what the agent offers.
    """

    name = ""

    def version(self):
        """Version string of the engine."""
        raise NotImplementedError

    def load(self, source, meta=None):
        """Load a model from a path (str) or bytes and return a ``LoadedModel``.

        ``meta`` is an optional dict of load hints (backends document the keys they read).
        A model the engine rejects raises ``DeviceError`` with code ``E_MODEL_LOAD``.
        """
        raise NotImplementedError


class LoadedModel:
    """A model ready to run: describes its tensors and maps input tensors to output tensors.

    ``io_spec()`` returns ``{"inputs": [spec, ...], "outputs": [spec, ...]}``, each spec a dict
    ``{"name", "dtype", "shape", "scale", "zero_point"}``: dtype a numpy-style name ("int8"),
    shape a list of ints (-1 for a dimension that takes any size), scale and zero_point None for
    an unquantized tensor, numbers for per-tensor quantization, and lists for per-channel
    quantization (the spec then also carries "axis").
    """

    def io_spec(self):
        """Names, dtypes, shapes and quantization of the model's inputs and outputs."""
        raise NotImplementedError

    def run(self, inputs):
        """Run one inference on a list of ``Tensor`` and return the list of output ``Tensor``.

        Implementations call ``check_inputs(inputs)`` first.
        """
        raise NotImplementedError

    def input_buffer(self, index, nbytes):
        """A writable buffer of ``nbytes`` for input ``index``, filled piece by piece before a
        run (INFER_INPUT).  A backend may hand out the engine's own input memory."""
        return bytearray(nbytes)

    def reset(self):
        """Forget the state a stateful model keeps between runs (nothing for stateless ones)."""

    def close(self):
        """Release the engine's resources; the model cannot run afterwards."""

    def info(self):
        """Engine facts about the loaded model (memory used and the like) as a plain dict."""
        return {}

    def check_inputs(self, inputs):
        """Raise ``DeviceError`` unless ``inputs`` match the model's inputs in number, dtype,
        shape and byte count (E_BAD_SHAPE for number, shape and size; E_BAD_DTYPE for dtype).
        """
        # Imported here so that the registry and this module load without the tensor codec.
        from kpdev.protocol.tensors import itemsize

        specs = self.io_spec()["inputs"]
        if len(inputs) != len(specs):
            raise DeviceError(
                "model takes %d input%s, got %d"
                % (len(specs), "" if len(specs) == 1 else "s", len(inputs)),
                _E_BAD_SHAPE,
            )
        for i in range(len(specs)):
            spec = specs[i]
            t = inputs[i]
            label = "input %d (%s)" % (i, spec["name"])
            if t.dtype != spec["dtype"]:
                raise DeviceError(
                    "%s: expected dtype %s, got %s" % (label, spec["dtype"], t.dtype), _E_BAD_DTYPE
                )
            shape = list(t.shape)
            want = list(spec["shape"])
            if not _shape_matches(want, shape):
                raise DeviceError(
                    "%s: expected shape %s, got %s" % (label, _fmt_shape(want), _fmt_shape(shape)),
                    _E_BAD_SHAPE,
                )
            n = 1
            for d in shape:
                n *= d
            need = n * itemsize(t.dtype)
            if len(t.data) != need:
                raise DeviceError(
                    "%s: shape %s of %s needs %d bytes, got %d"
                    % (label, _fmt_shape(shape), t.dtype, need, len(t.data)),
                    _E_BAD_SHAPE,
                )


def _shape_matches(want, got):
    if len(want) != len(got):
        return False
    for i in range(len(want)):
        if want[i] != -1 and want[i] != got[i]:
            return False
    return True


def _fmt_shape(shape):
    # "[1, 16]" on both runtimes, whatever the int subtype of the dimensions.
    return "[" + ", ".join([str(int(d)) for d in shape]) + "]"
