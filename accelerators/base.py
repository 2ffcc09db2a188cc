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


# The block reserved for a model's arena when the agent started (``--arena``), as a firmware
# reserves TFLM's arena statically: [bytearray or None, in use].  Taken before MicroPython's
# heap is split up by the agent's own objects, it stays one piece; a model whose arena is
# larger, or a second model, allocates its own.  This module stays loaded while backends come
# and go (``accelerators.release``), so the block is never freed.
_arena = [None, False]


def reserve_arena(nbytes):
    """Set ``nbytes`` aside now for the arenas of models loaded later."""
    _arena[0] = bytearray(nbytes) if nbytes > 0 else None


def reserved_arena():
    """(size of the reserved block, whether a model holds it)."""
    return (len(_arena[0]) if _arena[0] is not None else 0), _arena[1]


def take_arena(nbytes):
    """The reserved block's first ``nbytes``, zeroed, when it is free and large enough; else a
    new ``bytearray(nbytes)``.  Returns (buffer, whether it is the reserved block)."""
    block = _arena[0]
    if block is None or _arena[1] or nbytes > len(block):
        return bytearray(nbytes), False
    view = memoryview(block)
    zero = bytes(256)
    for at in range(0, nbytes, 256):
        n = min(256, nbytes - at)
        view[at : at + n] = zero if n == 256 else zero[:n]
    _arena[1] = True
    return view[:nbytes], True


def give_back_arena():
    """The model holding the reserved block is gone: the next one may take it."""
    _arena[1] = False


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
        # Inputs exactly as the model takes them (the usual case) pass one comparison each: the
        # (dtype, shape, bytes) of every input, made once per loaded model.
        exact = getattr(self, "_exact_inputs", None)
        if exact is None:
            exact = self._exact_inputs = _exact_inputs(self.io_spec()["inputs"])
        if len(inputs) == len(exact):
            for i in range(len(exact)):
                e = exact[i]
                t = inputs[i]
                if e is None or t.dtype != e[0] or t.shape != e[1] or len(t.data) != e[2]:
                    break
            else:
                return
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


def _exact_inputs(specs):
    # [(dtype, shape tuple, byte count) or None where a dimension takes any size, per input]
    from kpdev.protocol.tensors import DTYPES

    out = []
    for spec in specs:
        n = 1
        for d in spec["shape"]:
            n *= d
        entry = DTYPES.get(spec["dtype"])
        if n < 0 or entry is None:
            out.append(None)
        else:
            out.append((spec["dtype"], tuple(spec["shape"]), n * entry[1]))
    return out


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
