"""TFLite models on LiteRT's interpreter (the ``ai-edge-litert`` package, TensorFlow Lite's
runtime as Google ships it today).

CPython only: it needs numpy and the interpreter's native extension.  On MicroPython the import
fails, and that is how the registry learns this backend is not offered there.

Unlike tflite-micro, LiteRT has the optimized kernels of full TFLite (and by default the XNNPACK
delegate for float and int8 CPU work), a multithreaded runtime, and a flatbuffer verifier: a
model it cannot read is refused with an error instead of crashing the process.
"""

import ai_edge_litert
from ai_edge_litert import interpreter as litert_interpreter

from kpdev.accelerators.base import Backend, LoadedModel, read_source
from kpdev.accelerators.ndarray import array_of, tensor_of, tflite_spec
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.ops import E_INFER, E_MODEL_LOAD, E_NO_MODEL
from kpdev.protocol.tensors import DTYPES

# meta["op_resolver"] -> LiteRT's kernel set.  "auto" (LiteRT's default) and "builtin" apply
# the XNNPACK delegate, "builtin_without_default_delegates" does not, "builtin_ref" runs the
# unoptimized reference kernels.
OP_RESOLVERS = {
    "auto": litert_interpreter.OpResolverType.AUTO,
    "builtin": litert_interpreter.OpResolverType.BUILTIN,
    "builtin_ref": litert_interpreter.OpResolverType.BUILTIN_REF,
    "builtin_without_default_delegates": (
        litert_interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    ),
}
DEFAULT_OP_RESOLVER = "auto"
# What the operator list calls a node a delegate (XNNPACK) took over.
_DELEGATE_OP = "DELEGATE"


def _check_header(head, what):
    """Refuse bytes without TFLite's "TFL3" file identifier before the interpreter sees them."""
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise DeviceError(
            "not a TFLite model: %s does not carry the TFL3 file identifier" % what, E_MODEL_LOAD
        )


def _read_head(path):
    try:
        with open(path, "rb") as f:
            return f.read(8)
    except OSError as e:
        raise DeviceError("cannot read model file %s: %s" % (path, e), E_MODEL_LOAD)


def _operators(interp):
    """(operator count, {op name: count}, delegate kernels) of an allocated interpreter.

    The list comes from a private method of LiteRT's Python interpreter: where it is missing,
    the counts are None rather than a failed load.
    """
    ops_details = getattr(interp, "_get_ops_details", None)
    if ops_details is None:
        return None, None, None
    try:
        names = [op["op_name"] for op in ops_details()]
    except Exception:  # a private API: any failure only means "unknown"
        return None, None, None
    counts = {}
    for name in names:
        if name != _DELEGATE_OP:
            counts[name] = counts.get(name, 0) + 1
    return sum(counts.values()), counts, names.count(_DELEGATE_OP)


class LiteRTModel(LoadedModel):
    """A ``.tflite`` model in a LiteRT interpreter with its tensors allocated."""

    def __init__(self, interpreter, data, spec, inputs, outputs, facts):
        super().__init__()
        self._interpreter = interpreter
        self._data = data  # the interpreter reads a model given as bytes in place
        self._spec = spec
        self._inputs = inputs  # tensor indices
        self._outputs = outputs
        self._facts = facts

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
            for index, t in zip(self._inputs, inputs, strict=True):
                interp.set_tensor(index, array_of(t))
            interp.invoke()
            outputs = []
            for index, spec in zip(self._outputs, self._spec["outputs"], strict=True):
                outputs.append(tensor_of(interp.get_tensor(index), spec["dtype"]))
        except (RuntimeError, ValueError, IndexError) as e:
            raise DeviceError("litert inference failed: %s" % e, E_INFER)
        return outputs

    def reset(self):
        """Return variable tensors (RNN state and the like) to their initial values."""
        if self._interpreter is not None:
            self._interpreter.reset_all_variables()

    def close(self):
        """Drop the interpreter and its tensors."""
        self._interpreter = None
        self._data = None

    def info(self):
        """Threads and kernels asked for, tensor and operator counts, and how many kernels a
        delegate (XNNPACK) runs in place of the model's own operators."""
        return dict(self._facts)


class LiteRTBackend(Backend):
    """Runs ``.tflite`` flatbuffers in LiteRT's interpreter.

    ``load`` reads ``meta["threads"]`` (an int >= 1; default: LiteRT's choice) and
    ``meta["op_resolver"]`` (one of ``OP_RESOLVERS``; default "auto").
    """

    name = "litert"

    def version(self):
        """The ai-edge-litert package version."""
        return ai_edge_litert.__version__

    def load(self, source, meta=None):
        """Load a ``.tflite`` model from a path (memory-mapped by LiteRT) or bytes."""
        meta = meta or {}
        threads = meta.get("threads")
        if threads is not None and (
            not isinstance(threads, int) or isinstance(threads, bool) or threads < 1
        ):
            raise DeviceError(
                "threads must be an int of at least 1, not %r" % (threads,), E_MODEL_LOAD
            )
        resolver = meta.get("op_resolver", DEFAULT_OP_RESOLVER)
        if not isinstance(resolver, str) or resolver not in OP_RESOLVERS:
            raise DeviceError(
                "unknown op_resolver %r (known: %s)" % (resolver, ", ".join(OP_RESOLVERS)),
                E_MODEL_LOAD,
            )
        kwargs = {"num_threads": threads, "experimental_op_resolver_type": OP_RESOLVERS[resolver]}
        if isinstance(source, str):
            _check_header(_read_head(source), source)
            data = None
            kwargs["model_path"] = source
        else:
            data = read_source(source)
            _check_header(data, "the %d bytes given" % len(data))
            kwargs["model_content"] = data
        try:
            interp = litert_interpreter.Interpreter(**kwargs)
            interp.allocate_tensors()
            input_details = interp.get_input_details()
            output_details = interp.get_output_details()
            subgraphs = interp.num_subgraphs()
            tensors = len(interp.get_tensor_details())
        except Exception as e:  # ValueError, RuntimeError, even UnicodeDecodeError on bad names
            # LiteRT's messages span lines; the agent's errors are one line each.
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            raise DeviceError(
                "litert cannot load the model: %s" % ("; ".join(lines) or type(e).__name__),
                E_MODEL_LOAD,
            )
        spec = {"inputs": [], "outputs": []}
        for which, details in (("inputs", input_details), ("outputs", output_details)):
            for k, d in enumerate(details):
                s = tflite_spec(d)
                if s["dtype"] not in DTYPES:
                    raise DeviceError(
                        "%s %d (%s) of the model is %s, which kpdev tensors do not carry"
                        % (which[:-1], k, s["name"], s["dtype"]),
                        E_MODEL_LOAD,
                    )
                spec[which].append(s)
        operators, op_counts, delegated = _operators(interp)
        facts = {
            "threads": threads,
            "op_resolver": resolver,
            "subgraphs": subgraphs,
            "tensors": tensors,
            "operators": operators,
            "op_counts": op_counts,
            "delegate_kernels": delegated,
        }
        return LiteRTModel(
            interp,
            data,
            spec,
            [d["index"] for d in input_details],
            [d["index"] for d in output_details],
            facts,
        )
