"""Compiled IREE modules (``.vmfb``) on the IREE runtime (the ``iree-base-runtime`` package).

CPython only: it needs numpy and IREE's native runtime.  On MicroPython the import fails, and that
is how the registry learns this backend is not offered there.

A ``.vmfb`` holds VM bytecode and the compiled executables of one or more exported functions;
this backend calls one of them.  Its inputs and outputs are read from the function's reflection
attribute ``iree.abi.declaration``, which IREE's compiler writes for every exported function, e.g.
``sync func @main(%input: tensor<1x16xf32>) -> (%logits: tensor<1x4xf32>)``.

The runtime verifies a module's bytecode when it loads it, but not the native code of the
executables inside: a ``.vmfb`` is a program, as trustworthy as whoever compiled it, and the
SHA-256 the upload checks is what guards it against corruption on the way.
"""

import importlib.metadata
import re

import iree.runtime as ireert
import numpy as np

from kpdev.accelerators.base import Backend, LoadedModel, read_source
from kpdev.accelerators.ndarray import array_of, tensor_of
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.ops import E_INFER, E_MODEL_LOAD, E_NO_MODEL

DEFAULT_DRIVER = "local-sync"
DEFAULT_FUNCTION = "main"

# MLIR element type -> numpy dtype name; "i8" (signless) is what frontends write for int8.
ELEMENT_TYPES = {
    "f16": "float16",
    "f32": "float32",
    "f64": "float64",
    "i8": "int8",
    "si8": "int8",
    "ui8": "uint8",
    "i16": "int16",
    "si16": "int16",
    "ui16": "uint16",
    "i32": "int32",
    "si32": "int32",
    "ui32": "uint32",
    "i64": "int64",
    "si64": "int64",
    "ui64": "uint64",
}

_DECLARATION = "iree.abi.declaration"
_HEAD = re.compile(r"\s*(sync|async)\s+func\s+@(\S+?)\(")
# "c/runtime/src/iree/vm/bytecode/archive.c:122: INVALID_ARGUMENT; " says more about IREE's
# source tree than about the model.
_SOURCE_LOCATION = re.compile(r"(?:\S+\.(?:c|cc|cpp|h)|<vm>):\d+: ")
_CLOSERS = {"<": ">", "(": ")", "[": "]", "{": "}"}


def _message(error):
    """The first line of an IREE status message, without the runtime's source locations."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = _SOURCE_LOCATION.sub("", text)
    for prefix in ("Error creating vm module from aligned memory: ", "Error invoking function: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.rstrip("; ")


def _split_list(text, start):
    """Items of the comma-separated list that opens at ``text[start]`` ("("), and the index just
    past its closing ")"; commas inside <>, (), [], {} and quotes do not split."""
    items = []
    stack = []
    quoted = False
    begin = start + 1
    i = begin
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c in _CLOSERS:
            stack.append(_CLOSERS[c])
        elif stack and c == stack[-1]:
            stack.pop()
        elif not stack and c in ",)":
            item = text[begin:i].strip()
            if item or items or c == ",":
                items.append(item)
            if c == ")":
                return items, i + 1
            begin = i + 1
        i += 1
    raise ValueError("unbalanced parentheses")


def _strip_attributes(text):
    # "tensor<4xf32> {iree.abi.encoding = ...}": the attribute dict does not change the type.
    depth = 0
    for i, c in enumerate(text):
        if c in "<([":
            depth += 1
        elif c in ">)]":
            depth -= 1
        elif c == "{" and depth == 0:
            return text[:i].strip()
    return text.strip()


def _parse_type(text):
    """(dtype name, shape list, is_scalar) of an MLIR tensor or scalar type, or None."""
    text = _strip_attributes(text)
    if text in ELEMENT_TYPES:
        return ELEMENT_TYPES[text], [], True
    if not (text.startswith("tensor<") and text.endswith(">")):
        return None
    body = text[len("tensor<") : -1]
    depth = 0
    for c in body:
        if c in "<([{":
            depth += 1
        elif c in ">)]}":
            depth -= 1
        elif c == "," and depth == 0:
            return None  # an encoding: the buffer's layout is not the plain row-major one
    parts = body.split("x")
    dtype = ELEMENT_TYPES.get(parts[-1].strip())
    if dtype is None:
        return None
    shape = []
    for d in parts[:-1]:
        d = d.strip()
        if d == "?":
            shape.append(-1)
        elif d.isdigit():
            shape.append(int(d))
        else:
            return None
    return dtype, shape, False


def _parse_declaration(text):
    """(invocation model, function name, [(name, type text)] inputs, [(name, type text)] outputs)
    of an ``iree.abi.declaration``; ValueError when it is not in the compiler's format."""
    head = _HEAD.match(text)
    if head is None:
        raise ValueError("no 'sync func @name(' at its start")
    args, end = _split_list(text, head.end() - 1)
    arrow = re.compile(r"\s*->\s*").match(text, end)
    if arrow is None:
        raise ValueError("no '->' after the arguments")
    if text[arrow.end() : arrow.end() + 1] != "(":
        raise ValueError("results are not a parenthesized list")
    results, _ = _split_list(text, arrow.end())

    def named(items, which):
        out = []
        for k, item in enumerate(items):
            if item.startswith("%") and ": " in item:
                name, type_text = item[1:].split(": ", 1)
            else:
                name, type_text = "%s%d" % (which, k), item
            out.append((name, type_text.strip()))
        return out

    return head.group(1), head.group(2), named(args, "input"), named(results, "output")


def _signature(function):
    """(io spec, scalar flags of the inputs, scalar flags of the outputs) of a VmFunction."""
    text = function.reflection.get(_DECLARATION)
    if text is None:
        raise DeviceError(
            "function %s has no %s reflection to tell its inputs and outputs "
            "(compiled without IREE's native ABI?)" % (function.name, _DECLARATION),
            E_MODEL_LOAD,
        )
    try:
        model, _, inputs, outputs = _parse_declaration(text)
    except ValueError as e:
        raise DeviceError(
            "cannot read the signature of function %s from %s %r: %s"
            % (function.name, _DECLARATION, text, e),
            E_MODEL_LOAD,
        )
    if model != "sync" or function.reflection.get("iree.abi.model") == "coarse-fences":
        raise DeviceError(
            "function %s uses IREE's async ABI (wait and signal fences); kpdev calls the "
            "default synchronous one: compile without --iree-execution-model=async-external"
            % function.name,
            E_MODEL_LOAD,
        )
    spec = {"inputs": [], "outputs": []}
    scalars = {"inputs": [], "outputs": []}
    for which, items in (("inputs", inputs), ("outputs", outputs)):
        for k, (name, type_text) in enumerate(items):
            parsed = _parse_type(type_text)
            if parsed is None:
                raise DeviceError(
                    "%s %d (%s) of function %s is %s: kpdev passes plain tensors and scalars of "
                    "%s"
                    % (which[:-1], k, name, function.name, type_text, ", ".join(ELEMENT_TYPES)),
                    E_MODEL_LOAD,
                )
            dtype, shape, scalar = parsed
            spec[which].append(
                {"name": name, "dtype": dtype, "shape": shape, "scale": None, "zero_point": None}
            )
            scalars[which].append(scalar)
    return spec, scalars["inputs"], scalars["outputs"]


def _check_readable(path):
    # The runtime's own error for a missing file is a bare errno; say which file it was.
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise DeviceError("cannot read model file %s: %s" % (path, e), E_MODEL_LOAD)


def exported_functions(vm_module):
    """Names of the functions a module exports for callers (IREE's own "__init" and the like
    left out)."""
    return [name for name in vm_module.function_names if not name.startswith("__")]


class IREEModel(LoadedModel):
    """One exported function of a ``.vmfb`` module, in its own VM context on a HAL device."""

    def __init__(self, instance, device, driver, vm_module, function, spec, scalars):
        super().__init__()
        self._instance = instance
        self._device = device
        self._driver = driver
        self._module = vm_module
        self._function = function
        self._spec = spec
        self._in_scalar, self._out_scalar = scalars
        self._context = None
        self._invoker = None
        self._new_context()

    def _new_context(self):
        # A context holds the module's globals: a new one starts a stateful model afresh.
        hal = ireert.create_hal_module(self._instance, self._device)
        self._context = ireert.VmContext(self._instance, modules=[hal, self._module])
        self._invoker = ireert.FunctionInvoker(self._context, self._device, self._function)

    def io_spec(self):
        """Names, dtypes and shapes of the function's arguments and results (-1: dynamic)."""
        return self._spec

    def run(self, inputs):
        """Call the function on a list of ``Tensor``; returns its results as ``Tensor``."""
        if self._invoker is None:
            raise DeviceError("model is closed", E_NO_MODEL)
        self.check_inputs(inputs)
        args = []
        for t, scalar in zip(inputs, self._in_scalar, strict=True):
            a = array_of(t)
            args.append(a.reshape(-1)[0].item() if scalar else a)
        try:
            results = self._invoker(*args)
            if results is None:
                results = ()
            elif not isinstance(results, tuple):
                results = (results,)
            specs = self._spec["outputs"]
            if len(results) != len(specs):
                raise ValueError(
                    "function returned %d results, its declaration %d" % (len(results), len(specs))
                )
            outputs = []
            for r, spec, scalar in zip(results, specs, self._out_scalar, strict=True):
                dtype = np.dtype(spec["dtype"])
                # A scalar result comes back as a Python int or float.
                a = np.array(r, dtype) if scalar else np.asarray(r)
                if a.dtype != dtype:
                    # Signless MLIR integers may come back with either signedness.
                    if a.dtype.kind not in "iu" or a.dtype.itemsize != dtype.itemsize:
                        raise ValueError(
                            "result %s came back as %s, declared %s"
                            % (spec["name"], a.dtype, dtype)
                        )
                    a = a.view(dtype)
                outputs.append(tensor_of(a, spec["dtype"]))
        except (RuntimeError, ValueError, TypeError) as e:
            raise DeviceError("iree inference failed: %s" % _message(e), E_INFER)
        return outputs

    def reset(self):
        """Start the module afresh in a new VM context: its globals (a stateful model's state)
        return to their initial values."""
        if self._invoker is not None:
            try:
                self._new_context()
            except (RuntimeError, ValueError) as e:
                raise DeviceError("iree cannot reset the model: %s" % _message(e), E_INFER)

    def close(self):
        """Drop the function, its context and the module."""
        self._invoker = None
        self._context = None
        self._function = None
        self._module = None

    def info(self):
        """The HAL driver, the function called and every function the module exports."""
        if self._module is None:
            return {"driver": self._driver}
        return {
            "driver": self._driver,
            "module": self._module.name,
            "function": self._function.name,
            "functions": exported_functions(self._module),
        }


class IREEBackend(Backend):
    """Runs ``.vmfb`` modules compiled by IREE, on its CPU drivers by default.

    ``load`` reads ``meta["driver"]`` (default "local-sync": the calling thread runs the
    executables; "local-task": a pool of worker threads) and ``meta["function"]`` (the exported
    function to call, default "main").
    """

    name = "iree"

    def __init__(self):
        super().__init__()
        self._instance = None

    def version(self):
        """The iree-base-runtime package version; the runtime's own build string when IREE
        was installed some other way (built from source, an older package name)."""
        try:
            return importlib.metadata.version("iree-base-runtime")
        except importlib.metadata.PackageNotFoundError:
            from iree.runtime import version as runtime_version

            return runtime_version.VERSION

    def drivers(self):
        """Names of the HAL drivers this IREE runtime was built with."""
        return sorted(ireert.query_available_drivers())

    def load(self, source, meta=None):
        """Load a ``.vmfb`` from a path (memory-mapped) or bytes and bind one of its functions."""
        meta = meta or {}
        driver = meta.get("driver", DEFAULT_DRIVER)
        function_name = meta.get("function", DEFAULT_FUNCTION)
        known = self.drivers()
        if not isinstance(driver, str) or driver not in known:
            raise DeviceError(
                "unknown IREE driver %r (known: %s)" % (driver, ", ".join(known)), E_MODEL_LOAD
            )
        if not isinstance(function_name, str) or not function_name:
            raise DeviceError(
                "function must be the name of an exported function, not %r" % (function_name,),
                E_MODEL_LOAD,
            )
        if self._instance is None:
            self._instance = ireert.VmInstance()
        instance = self._instance
        try:
            device = ireert.get_device(driver)
        except (RuntimeError, ValueError) as e:
            raise DeviceError(
                "IREE driver %s has no device here: %s" % (driver, _message(e)), E_MODEL_LOAD
            )
        if isinstance(source, str):
            _check_readable(source)
            try:
                vm_module = ireert.VmModule.mmap(instance, source)
            except (OSError, RuntimeError, ValueError) as e:
                raise DeviceError(
                    "not a valid IREE module (.vmfb): %s" % _message(e), E_MODEL_LOAD
                )
        else:
            data = read_source(source)
            try:
                vm_module = ireert.VmModule.copy_buffer(instance, data)
            except (RuntimeError, ValueError) as e:
                raise DeviceError(
                    "not a valid IREE module (.vmfb): %s" % _message(e), E_MODEL_LOAD
                )
        function = vm_module.lookup_function(function_name)
        if function is None or function_name.startswith("__"):
            raise DeviceError(
                "no function %r in the IREE module (it exports: %s)"
                % (function_name, ", ".join(exported_functions(vm_module)) or "none"),
                E_MODEL_LOAD,
            )
        spec, in_scalar, out_scalar = _signature(function)
        try:
            return IREEModel(
                instance, device, driver, vm_module, function, spec, (in_scalar, out_scalar)
            )
        except (RuntimeError, ValueError) as e:
            # Executables for another target, a module this runtime lacks, a failing __init.
            raise DeviceError(
                "IREE cannot load the module on %s: %s" % (driver, _message(e)),
                E_MODEL_LOAD,
            )
