"""TFLite int8 models on kpdev's own interpreter: bit-exact with TFLite Micro, runs anywhere.

Device code (MicroPython and CPython).  The interpreter (accelerators/int8/) reads the
flatbuffer itself and runs int8 kernels whose integer arithmetic is TFLM's, so a model gives
the same output bytes here as in TFLM's reference kernels.  On MicroPython the inner loops are
viper code where the port has the native emitter.

``load`` reads these ``meta`` keys:
- ``kernels``: "auto" (viper where available), "viper" or "plain";
- ``weights``: "mapped" (the model is read in place, through memoryview slices: a file in
  ROMFS (``/rom/...``, whose file objects expose their bytes), or the model's copy in the
  agent's model area, ``--model-area``: no weight in the heap), "ram" (the model file is read
  into RAM), "file" (weights stay in the file and are read per layer: least RAM, slower) or
  "auto" (mapped where the model is in ROMFS or the agent has a model area, else RAM when the
  file is under a quarter of the free heap, else file).

The agent adds two keys of its own: ``area`` (its ``modelarea.ModelArea``, if any) and
``sha256`` (the stored model's, which names its bytes in the area).
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


# MicroPython's gc tells the heap's figures; CPython's has none, and there a collection would
# measure nothing and cost a full pass over every object (tens of ms an inference in a big host).
_HEAP_FIGURES = hasattr(gc, "mem_alloc")


def _free_heap():
    if not _HEAP_FIGURES:  # CPython
        return 1 << 30
    gc.collect()
    return gc.mem_free()


def _heap_used():
    """Heap in use by live objects (after a collection); None on CPython."""
    if not _HEAP_FIGURES:
        return None
    gc.collect()
    return gc.mem_alloc()


def _in_place(path):
    """The file's bytes as a memoryview of the file system's own memory (ROMFS), else None."""
    if not path.startswith("/rom/"):
        return None
    try:
        f = open(path, "rb")
    except OSError:
        return None
    try:
        return memoryview(f)  # VfsRom files expose their bytes; the view keeps the file
    except TypeError:
        f.close()
        return None


def _sha_bytes(sha):
    if isinstance(sha, str) and len(sha) == 64:
        try:
            from binascii import unhexlify
        except ImportError:
            from ubinascii import unhexlify
        return unhexlify(sha)
    if isinstance(sha, (bytes, bytearray)) and len(sha) == 32:
        return bytes(sha)
    return None


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

    def __init__(self, interp, weights, area=None, record=-1):
        self._interp = interp
        self._weights = weights
        self._area = area  # the ModelArea whose record ``record`` holds the model's bytes
        self._record = record
        self.area_reused = False  # the bytes were already in the area (a reload, a reboot)
        t = interp.tensors
        self._spec = {
            "inputs": [_spec(t[i]) for i in interp.inputs],
            "outputs": [_spec(t[i]) for i in interp.outputs],
        }
        interp.compact()
        self.peak_heap = 0
        self.held_heap = None  # heap the loaded model holds (measured by the backend's load)
        self.invoke_heap = None  # heap one invoke allocates (measured at the first run)

    def io_spec(self):
        return self._spec

    def run(self, inputs):
        from kpdev.protocol.tensors import Tensor

        interp = self._interp
        if interp is None:
            raise DeviceError("model is closed", _E_NO_MODEL)
        self.check_inputs(inputs)
        before = _heap_used() if self.invoke_heap is None else None
        outs = interp.invoke([t.data for t in inputs])
        specs = self._spec["outputs"]
        outs = [Tensor(specs[k]["dtype"], specs[k]["shape"], outs[k]) for k in range(len(outs))]
        if before is not None:
            # Everything the invoke allocated, garbage included (no collection in between
            # unless the heap ran out): what running needs on top of the held heap.
            self.invoke_heap = gc.mem_alloc() - before
        return outs

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
        if self._area is not None:
            self._area.release(self._record)
            self._area = None

    def info(self):
        interp = self._interp
        if interp is None:
            return {}
        consts = 0
        small = 0
        for n in interp.const_len:
            consts += n
            if n <= 512:
                small += n
        if self._weights == "mapped":
            in_ram = 0
        elif interp.stream:
            in_ram = small
        else:
            in_ram = consts
        out = {
            "arena_size_bytes": interp.arena_size,
            "weights": self._weights,
            "weights_bytes": consts,
            "weights_in_ram_bytes": in_ram,
            "stream_buffer_bytes": len(interp.scratch) if interp.scratch is not None else 0,
            "kernels": interp.loops.NAME,
            "operators": _names(interp.ops),
        }
        if self.held_heap is not None:
            out["heap_held_bytes"] = self.held_heap
        if self.invoke_heap is not None:
            out["invoke_heap_bytes"] = self.invoke_heap
        if self._area is not None:
            out["model_area"] = self._area.describe()
            out["model_area_reused"] = self.area_reused
        return out


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
        before = _heap_used()
        try:
            model = self._load(source, meta)
        except MemoryError:
            forget_modules(LOAD_ONLY)
            raise DeviceError(
                "not enough memory to load the model (%d bytes of heap free)" % _free_heap(),
                _E_MODEL_LOAD,
            )
        if before is not None:
            # Measured, not estimated: live heap after the load (its code, records, arena and
            # any weights in RAM) less the live heap before it.
            model.held_heap = _heap_used() - before
        return model

    def _load(self, source, meta):
        from kpdev.accelerators.int8.interp import Source

        meta = meta or {}
        kernels = meta.get("kernels", "auto")
        weights = meta.get("weights", "auto")
        if weights not in ("auto", "mapped", "ram", "file"):
            raise DeviceError(
                "weights must be auto, mapped, ram or file, not %r" % weights, _E_MODEL_LOAD
            )
        area = meta.get("_area")
        record = -1
        reused = False
        if isinstance(source, str):
            view = _in_place(source) if weights in ("auto", "mapped") else None
            if weights == "auto" and (view is not None or area is not None):
                weights = "mapped"
            if weights == "mapped" and view is None:
                if area is None:
                    raise DeviceError(
                        "weights=mapped needs the model in ROMFS (/rom) or a model area "
                        "(agent option --model-area)",
                        _E_MODEL_LOAD,
                    )
                record, view, reused = self._place(area, source, meta.get("_sha256"))
            if view is not None:
                src = Source(data=view)
            else:
                area = None
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
            area = None
        else:
            raise DeviceError("model source must be a path or bytes", _E_MODEL_LOAD)
        from kpdev.accelerators.int8 import loader

        try:
            interp = loader.load(src, kernels, weights)
            model = TFLiteInt8Model(interp, weights, area, record)
            model.area_reused = reused
        except BaseException:
            src.close()
            if record >= 0:
                area.release(record)
            raise
        finally:
            forget_modules(LOAD_ONLY)
            gc.collect()
        return model

    def _place(self, area, path, sha):
        """(record, view, reused): the model file's bytes in the model area."""
        from kpdev.accelerators.modelarea import copy_file, file_sha256

        size = _file_size(path)
        if size <= 0:
            raise DeviceError("cannot read model file %s" % path, _E_MODEL_LOAD)
        sha = _sha_bytes(sha)
        if sha is None:  # a model the store did not name: its bytes do
            try:
                sha = file_sha256(path)
            except OSError as e:
                raise DeviceError("cannot read model file %s: %s" % (path, e), _E_MODEL_LOAD)
        return area.place(sha, size, lambda view: copy_file(path, view))
