"""TFLite int8 models on kpdev's own interpreter: bit-exact with TFLite Micro, runs anywhere.

Device code (MicroPython and CPython).  The interpreter (accelerators/int8/) reads the
flatbuffer itself and runs int8 kernels whose integer arithmetic is TFLM's, so a model gives
the same output bytes here as in TFLM's reference kernels.  On MicroPython the inner loops are
viper code where the port has the native emitter.

``load`` reads these ``meta`` keys:
- ``kernels``: "auto" (viper where available), "viper" or "plain";
- ``weights``: "ram" (the model file is read into RAM), "file" (weights stay in the file and
  are read per layer: least RAM, slower) or "auto" (RAM when the file is under a quarter of the
  free heap, else file).
"""

import gc

from kpdev.accelerators import BACKENDS
from kpdev.accelerators.base import Backend, LoadedModel
from kpdev.protocol.compat import const, forget_modules
from kpdev.protocol.errors import DeviceError

_E_MODEL_LOAD = const(23)
_E_NO_MODEL = const(16)

# Modules only loading needs: dropped again on MicroPython once a model is loaded (or failed).
LOAD_ONLY = (
    "kpdev.accelerators.int8.loader",
    "kpdev.accelerators.int8.reader",
    "kpdev.accelerators.int8.kcommon",
    "kpdev.accelerators.int8.fixedpoint",
    "kpdev.accelerators.int8.opnames",
)


def _free_heap():
    try:
        gc.collect()
        return gc.mem_free()
    except AttributeError:  # CPython
        return 1 << 30


def _file_size(path):
    try:
        import os

        return os.stat(path)[6]
    except (OSError, ImportError):
        return 0


def _scale_value(bits):
    from kpdev.accelerators.int8.fixedpoint import f32_value

    return f32_value(bits)


def _spec(t):
    spec = {
        "name": t.name,
        "dtype": t.dtype,
        "shape": list(t.shape),
        "scale": None,
        "zero_point": None,
    }
    if len(t.scales) == 1 and t.scales[0] != 0:
        spec["scale"] = _scale_value(t.scales[0])
        spec["zero_point"] = t.zero_points[0] if t.zero_points else 0
    elif len(t.scales) > 1:
        spec["scale"] = [_scale_value(b) for b in t.scales]
        spec["zero_point"] = list(t.zero_points)
        spec["axis"] = t.qdim
    return spec


def _names(counts):
    from kpdev.accelerators.int8.interp import op_name

    return dict([(op_name(code), n) for code, n in counts.items()])


class TFLiteInt8Model(LoadedModel):
    """A ``.tflite`` model prepared by the int8 interpreter."""

    def __init__(self, interp, weights):
        self._interp = interp
        self._weights = weights
        t = interp.tensors
        self._spec = {
            "inputs": [_spec(t[i]) for i in interp.inputs],
            "outputs": [_spec(t[i]) for i in interp.outputs],
        }
        self.peak_heap = 0

    def io_spec(self):
        return self._spec

    def run(self, inputs):
        from kpdev.protocol.tensors import Tensor

        interp = self._interp
        if interp is None:
            raise DeviceError("model is closed", _E_NO_MODEL)
        self.check_inputs(inputs)
        outs = interp.invoke([t.data for t in inputs])
        specs = self._spec["outputs"]
        return [Tensor(specs[k]["dtype"], specs[k]["shape"], outs[k]) for k in range(len(outs))]

    def input_buffer(self, index, nbytes):
        # The input tensor's own place in the arena: a staged input costs no second copy.
        interp = self._interp
        if interp is not None:
            view = interp.buf[interp.inputs[index]]
            if len(view) == nbytes:
                return view
        return bytearray(nbytes)

    def close(self):
        if self._interp is not None:
            self._interp.close()
            self._interp = None

    def info(self):
        interp = self._interp
        if interp is None:
            return {}
        const_ram = 0
        for t in interp.tensors:
            if t.const is not None and (not interp.stream or t.const[1] <= 512):
                const_ram += t.const[1]
        return {
            "arena_size_bytes": interp.arena_size,
            "weights": self._weights,
            "weights_in_ram_bytes": const_ram,
            "stream_buffer_bytes": len(interp.scratch) if interp.scratch is not None else 0,
            "kernels": interp.loops.NAME,
            "operators": _names(interp.ops),
        }


class TFLiteInt8Backend(Backend):
    """kpdev's int8 TFLite interpreter (see the module docstring for load options)."""

    name = "tflite_int8"

    def version(self):
        # The registry's table holds the version (it offers this backend without importing it).
        return BACKENDS[self.name].version

    def load(self, source, meta=None):
        # The free heap a load needs (about 40 KB measured on the unix port, plus headroom):
        # the registry's figure, which it also checks before importing this module.
        need = BACKENDS[self.name].heap
        if isinstance(source, str) and (meta or {}).get("weights") == "ram":
            need += _file_size(source)  # "auto" streams the weights when they do not fit
        free = _free_heap()
        if free < need:
            # Refuse before importing anything: an attempt that runs out of memory half-way
            # leaves names interned for good and could starve the agent itself.
            raise DeviceError(
                "not enough memory to load the model: tflite_int8 needs about %d KB of free "
                "heap, this board has %d KB" % (need // 1024, free // 1024),
                _E_MODEL_LOAD,
            )
        try:
            return self._load(source, meta)
        except MemoryError:
            forget_modules(LOAD_ONLY)
            raise DeviceError(
                "not enough memory to load the model (%d bytes of heap free)" % _free_heap(),
                _E_MODEL_LOAD,
            )

    def _load(self, source, meta):
        from kpdev.accelerators.int8.interp import Source

        meta = meta or {}
        kernels = meta.get("kernels", "auto")
        weights = meta.get("weights", "auto")
        if weights not in ("auto", "ram", "file"):
            raise DeviceError("weights must be auto, ram or file, not %r" % weights, _E_MODEL_LOAD)
        if isinstance(source, str):
            try:
                src = Source(path=source)
            except OSError as e:
                raise DeviceError("cannot read model file %s: %s" % (source, e), _E_MODEL_LOAD)
            if weights == "auto":
                gc.collect()
                weights = "ram" if src.size * 4 < _free_heap() else "file"
            if weights == "ram":
                src.file.seek(0)
                data = src.file.read()
                src.close()
                src = Source(data=data)
        elif isinstance(source, (bytes, bytearray, memoryview)):
            src = Source(data=bytes(source))
            weights = "ram"
        else:
            raise DeviceError("model source must be a path or bytes", _E_MODEL_LOAD)
        from kpdev.accelerators.int8 import loader

        try:
            interp = loader.load(src, kernels, weights)
            model = TFLiteInt8Model(interp, weights)
        except BaseException:
            src.close()
            raise
        finally:
            forget_modules(LOAD_ONLY)
            gc.collect()
        return model
