"""BrainChip Akida models (``.fbz``) on the ``akida`` package: on an Akida device when one is
attached, otherwise in akida's software engine.

CPython only (numpy and akida's native library).  ``akida`` and numpy are imported when the
backend is constructed, not with this module.

Inputs are what akida takes: one 4-D tensor (N, H, W, C) of uint8 (int8 for a signed InputData
layer) within the bit width the input layer declares, e.g. 0..15 for 4 bits.  The backend
checks dtype, shape and values itself, so a wrong input is an ERROR frame, never a surprise
inside the engine.  Output: ``predict`` (float32, the last layer's potentials rescaled by the
model's own steps and thresholds) where akida defines it, i.e. when the last layer has no
activation (or, on IP v2, is a Dequantizer); ``forward`` (the integer activations or
potentials, uint8, int8 or int32) otherwise.

``load`` reads these ``meta`` keys:

- ``"output"``: ``"predict"``, ``"forward"`` or ``"auto"`` (the default, as above).
- ``"device"``: ``"software"`` runs in the software engine even when a device is attached.
- ``"virtual"``: a virtual device name (``"AKD1000"``, ``"TwoNodesIPv2"``, ... see
  ``VIRTUAL_DEVICES``); ``info()`` then reports how a copy of the model maps onto it.

Edge learning: when the model's last layer was compiled for learning (``akida.Model.compile``
with ``AkidaUnsupervised``, as ``kpdev.host.learning.models`` builds them), ``learning()`` reports
its settings, ``fit`` teaches it labelled samples, ``predict_classes`` reads classes off it,
``add_classes`` grows it and ``to_bytes`` gives the model with what it learned, as an ``.fbz``
file that ``load`` takes back.

A corrupt ``.fbz`` can crash akida's parser (a segmentation fault, not an exception), so a
forked child process loads each model and runs it once before the agent's own process does.
"""

import faulthandler
import os
import signal
import tempfile
import time

from kpdev.accelerators.base import Backend, LoadedModel
from kpdev.accelerators.ndarray import array_of, tensor_of
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.ops import (
    E_BAD_SHAPE,
    E_BAD_VALUE,
    E_INFER,
    E_LEARN,
    E_MODEL_LOAD,
    E_NO_MODEL,
)

akida = None  # the akida package, imported by AkidaBackend()
np = None

# The virtual devices a model can be mapped onto for info()'s report: akida function names.
VIRTUAL_DEVICES = (
    "AKD1000",
    "AKD1500",
    "TwoNodesIPv1",
    "TwoNodesIPv2",
    "FourNodesIPv2",
    "SixNodesIPv2",
    "TwelveNodesIPv2",
    "PicoIP",
)
OUTPUTS = ("auto", "predict", "forward")
# How long the child process may take to load and run a model once before it counts as hung.
CHECK_TIMEOUT = 60.0
# add_classes refuses to grow the learning layer beyond this many neurons: each one holds a
# weight per input, and a request for millions of classes would exhaust the agent's memory.
MAX_LEARNING_UNITS = 65536
NOT_IN_SOFTWARE = "not available in the software engine"


def _import_engine():
    global akida, np
    if akida is None:
        import akida as _akida
        import numpy as _np

        np = _np
        akida = _akida


def _plain(value):
    """``value`` as CBOR-ready data: numpy and pybind11 values become ints, floats and text."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, dict):
        return {str(_plain(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if np is not None and isinstance(value, np.generic):
        return value.item()
    if np is not None and isinstance(value, np.ndarray):
        return value.tolist()
    name = getattr(value, "name", None)  # pybind11 enums (LayerType.InputData, Type.CNP1, ...)
    if isinstance(name, str):
        return name
    return str(value)


def _setting(value):
    return round(float(value), 6)


def _fbz_bytes(model):
    """``model`` as the bytes of an ``.fbz`` file.

    ``Model.to_buffer()`` gives the bare flatbuffer, which akida cannot load back from a file:
    only ``save()`` writes the file format, so it writes to an in-memory file where Linux has
    them.
    """
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("kpdev-akida.fbz")
        try:
            model.save("/proc/self/fd/%d" % fd)
            with os.fdopen(os.dup(fd), "rb") as f:
                return f.read()
        finally:
            os.close(fd)
    fd, path = tempfile.mkstemp(suffix=".fbz", prefix="kpdev-akida-")
    os.close(fd)
    try:
        model.save(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


def _survives_loading(path):
    """Load and run the model at ``path`` in a forked child; raise DeviceError if it crashes.

    Python exceptions in the child do not count: the parent's own load raises them again, with
    their message.  Only a child killed by a signal (or hung) means the file would take the
    agent down with it.
    """
    pid = os.fork()
    if pid == 0:  # the child: never return into the agent's code
        try:
            # The agent's stdout may be the framed link: nothing akida prints may reach it.
            # Nor stderr: a crash here would dump faulthandler's trace of the parent's stack
            # into the agent's log, and the parent's own load repeats any message akida gives.
            faulthandler.disable()  # it may write to a descriptor of its own
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            model = akida.Model(path)
            shape = [1] + [int(d) for d in model.input_shape]
            model.forward(np.zeros(shape, _input_dtype(model.layers[0])[0]))
        except BaseException:
            pass
        os._exit(0)
    deadline = time.monotonic() + CHECK_TIMEOUT
    pause = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise DeviceError(
                "akida did not finish loading and running the model within %d s" % CHECK_TIMEOUT,
                E_MODEL_LOAD,
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.02)
    if os.WIFSIGNALED(status):
        raise DeviceError(
            "akida crashed (%s) loading the model: the .fbz file is corrupt or was not written "
            "by akida" % _signal_name(os.WTERMSIG(status)),
            E_MODEL_LOAD,
        )


def _input_dtype(layer):
    """(numpy dtype name, bits, lowest, highest) of the values the input ``layer`` takes."""
    bits = int(layer.input_bits)
    params = layer.parameters
    # LayerParams raise ValueError, not AttributeError, for a key the layer does not have.
    signed = "input_signed" in dir(params) and bool(params.input_signed)
    if signed:
        return "int8", bits, -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return "uint8", bits, 0, (1 << bits) - 1


def _layer_summary(layer):
    """One layer as plain data: type, shapes, bit widths and all its parameters."""
    params = layer.parameters
    names = [n for n in dir(params) if not n.startswith("_")]
    values = {n: _plain(getattr(params, n)) for n in names}
    values["layer_type"] = params.layer_type.name
    v2 = "output_bits" in names
    activation = values.get("activation")
    if activation is not None:
        # IP v1 layers have an on/off activation, IP v2 layers an ActivationType number.
        activation = akida.ActivationType(activation).name if v2 else bool(activation)
    variables = list(layer.get_variable_names())
    return {
        "name": layer.name,
        "type": params.layer_type.name,
        "inbounds": [inbound.name for inbound in layer.inbounds],
        "input_shape": _plain(layer.input_dims),
        "output_shape": _plain(layer.output_dims),
        "input_bits": int(layer.input_bits),
        "weights_bits": values.get("weights_bits"),
        "weights_shape": _plain(layer.get_variable("weights").shape)
        if "weights" in variables
        else None,
        "activation": activation,
        # IP v1 layers quantize their activations to act_bits (without an activation they
        # output int32 potentials); IP v2 layers always saturate to output_bits.
        "activation_bits": values.get("output_bits")
        if v2
        else (values.get("act_bits") if activation else None),
        "parameters": values,
    }


def _sequences(model):
    return [
        {
            "name": seq.name,
            "backend": seq.backend.name,
            "passes": [[layer.name for layer in p.layers] for p in seq.passes],
        }
        for seq in model.sequences
    ]


def _program_memory(program):
    infos = akida.get_program_memory_infos(program)
    return {
        n + "_bytes": int(getattr(infos, n))
        for n in dir(infos)
        if not n.startswith("_") and isinstance(getattr(infos, n), int)
    }


def _mapping_report(model, device_name):
    """Map a copy of ``model`` onto the virtual device ``device_name``; what it takes there."""
    device = getattr(akida, device_name)()
    report = {
        "device": device_name,
        "description": device.desc,
        "ip_version": device.ip_version.name,
        "nps_available": len(device.mesh.nps),
    }
    copy = akida.Model(layers=model.layers)
    try:
        copy.map(device)
    except Exception as e:  # RuntimeError for an IP version mismatch, anything the mapper says
        report["fits"] = False
        report["error"] = str(e)
        return report
    sequences = _sequences(copy)
    software = []
    for seq, summary in zip(copy.sequences, sequences, strict=True):
        program = seq.program
        summary["program_bytes"] = len(program) if program is not None else None
        if program is not None:
            summary["program_memory"] = _program_memory(program)
        if seq.backend.name != "Hardware":
            software += [layer.name for p in seq.passes for layer in p.layers]
    layers = []
    nps_used = 0
    for layer in copy.layers:
        mapping = layer.mapping
        if mapping is None:
            continue
        nps = []
        for component in mapping.nps:
            ident = component.ident
            mem = component.mem_info
            nps.append(
                {
                    "np": [int(ident.col), int(ident.row), int(ident.id)],
                    "type": component.type.name,
                    "filters": int(component.filters),
                    "weight_bytes": int(mem.weight_size),
                    "external_bytes": int(mem.external_size),
                }
            )
        if layer.parameters.layer_type.name not in ("InputConvolutional", "InputConv2D"):
            nps_used += len(nps)  # as akida's summary counts them: the HRC is no NP
        layers.append(
            {
                "name": layer.name,
                "nps": nps,
                "skip_dma_stores": len(mapping.skipdma_stores),
                "skip_dma_loads": len(mapping.skipdma_loads),
            }
        )
    report.update(
        {
            "fits": not software,
            "software_layers": software,
            "sequences": sequences,
            "passes": sum(len(s["passes"]) for s in sequences),
            "components": {t.name: int(n) for t, n in copy.component_count.items()},
            "nps_used": nps_used,
            "external_memory_bytes": int(copy.external_memory_size),
            "layers": layers,
            "power": "not estimated: akida's virtual devices give no power or timing figures",
        }
    )
    return report


class AkidaModel(LoadedModel):
    """An Akida model, mapped onto a device or running in akida's software engine."""

    def __init__(self, model, output, spec, device, virtual):
        super().__init__()
        self._model = model
        self._output = output
        self._spec = spec
        self._device = device  # akida HardwareDevice, or None for the software engine
        self._virtual = virtual
        self._report = None
        self._runs = 0

    def io_spec(self):
        """The 4-D input (batch -1, its bits and value range) and output of the model."""
        return self._spec

    def check_inputs(self, inputs):
        """The base checks, then a batch of at least one and values within the input bits."""
        super().check_inputs(inputs)
        spec = self._spec["inputs"][0]
        t = inputs[0]
        label = "input 0 (%s)" % spec["name"]
        if t.shape[0] < 1:
            raise DeviceError("%s: a batch of 0 inputs" % label, E_BAD_SHAPE)
        low, high = spec["range"]
        if spec["bits"] == 8:
            return  # every uint8 (or int8) value is an 8-bit value
        x = np.frombuffer(t.data, dtype=spec["dtype"])
        if x.max() > high or (low < 0 and x.min() < low):
            i = int(np.argmax((x < low) | (x > high)))
            where = [int(k) for k in np.unravel_index(i, t.shape)]
            raise DeviceError(
                "%s: values must be in %d..%d (the model's input layer takes %d-bit values), "
                "got %d at %s" % (label, low, high, spec["bits"], int(x[i]), where),
                E_BAD_VALUE,
            )

    def run(self, inputs):
        """Run one batch through the model; returns its output as one ``Tensor``."""
        if self._model is None:
            raise DeviceError("model is closed", E_NO_MODEL)
        self.check_inputs(inputs)
        t = inputs[0]
        x = array_of(t)
        try:
            y = getattr(self._model, self._output)(x)
        except Exception as e:  # ValueError, RuntimeError: whatever akida objects to
            raise DeviceError("akida %s failed: %s" % (self._output, e), E_INFER)
        self._runs += 1
        return [tensor_of(np.ascontiguousarray(y))]

    def _open(self):
        if self._model is None:
            raise DeviceError("model is closed", E_NO_MODEL)
        return self._model

    def _learner(self):
        """The akida model and its learning settings; E_LEARN when it has none."""
        model = self._open()
        optimizer = model.learning
        if optimizer is None:
            raise DeviceError(
                "the model cannot learn: its last layer (%s) is not compiled for learning "
                "(akida.Model.compile with AkidaUnsupervised)" % (model.layers[-1].name or "?"),
                E_LEARN,
            )
        return model, optimizer

    def learning(self):
        """The learning layer's settings as plain data, or None when the model cannot learn.

        ``{"num_classes", "neurons_per_class", "units", "num_weights", "learning_competition",
        "initial_plasticity", "min_plasticity", "plasticity_decay"}``: ``units`` is the number
        of neurons of the last layer, ``neurons_per_class`` of them for each class.
        """
        model = self._open()
        optimizer = model.learning
        if optimizer is None:
            return None
        num_classes = int(optimizer.num_classes)  # akida reports its counts as floats
        units = int(model.layers[-1].output_dims[-1])
        return {
            "num_classes": num_classes,
            "neurons_per_class": units // num_classes,
            "units": units,
            "num_weights": int(optimizer.num_weights),
            # float32 inside akida: rounded so that 0.1 reads back as 0.1
            "learning_competition": _setting(optimizer.learning_competition),
            "initial_plasticity": _setting(optimizer.initial_plasticity),
            "min_plasticity": _setting(optimizer.min_plasticity),
            "plasticity_decay": _setting(optimizer.plasticity_decay),
        }

    def fit(self, inputs, labels):
        """Teach the learning layer a batch: ``inputs`` as ``run`` takes them, ``labels`` a list
        of one class index (an int in 0..num_classes-1) per sample.

        akida discards a sample whose label is out of range without a word; this refuses the
        whole batch instead (E_BAD_VALUE) and learns nothing from it.
        """
        model, optimizer = self._learner()
        self.check_inputs(inputs)
        t = inputs[0]
        n = int(t.shape[0])
        if not isinstance(labels, (list, tuple)):
            raise DeviceError(
                "labels must be a list of class indices, not %s" % type(labels).__name__,
                E_BAD_VALUE,
            )
        if len(labels) != n:
            raise DeviceError(
                "got %d label%s for a batch of %d input%s: give one label per input"
                % (len(labels), "" if len(labels) == 1 else "s", n, "" if n == 1 else "s"),
                E_BAD_VALUE,
            )
        num_classes = int(optimizer.num_classes)
        for i, label in enumerate(labels):
            if isinstance(label, bool) or not isinstance(label, int):
                raise DeviceError(
                    "label %d is %r; labels are class indices, ints in 0..%d"
                    % (i, label, num_classes - 1),
                    E_BAD_VALUE,
                )
            if not 0 <= label < num_classes:
                raise DeviceError(
                    "label %d is %d; the model has %d classes, 0..%d"
                    % (i, label, num_classes, num_classes - 1),
                    E_BAD_VALUE,
                )
        try:
            model.fit(array_of(t), np.array(labels, np.int32))
        except Exception as e:  # ValueError, RuntimeError: whatever akida objects to
            raise DeviceError("akida fit failed: %s" % e, E_LEARN)

    def predict_classes(self, inputs):
        """The class of each input and the potential that chose it: ``[(class, potential)]``.

        The class is that of the learning layer's neuron with the highest potential (its index
        // neurons_per_class; the lowest index wins a tie), whatever ``run`` outputs.
        """
        model, optimizer = self._learner()
        self.check_inputs(inputs)
        t = inputs[0]
        try:
            y = model.forward(array_of(t))
        except Exception as e:
            raise DeviceError("akida forward failed: %s" % e, E_INFER)
        units = int(y.shape[-1])
        per_class = units // int(optimizer.num_classes)
        # A layer with spatial outputs: each neuron's highest potential over the positions.
        potentials = y.reshape(y.shape[0], -1, units).max(axis=1)
        neurons = np.argmax(potentials, axis=1)
        return [(int(k) // per_class, int(potentials[i, k])) for i, k in enumerate(neurons)]

    def add_classes(self, n):
        """Add ``n`` classes (``n`` * neurons_per_class neurons) to the learning layer, keeping
        what it learned; the new classes take the next indices."""
        model, optimizer = self._learner()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DeviceError(
                "the number of classes to add is %r; it must be an int >= 1" % (n,), E_BAD_VALUE
            )
        units = int(model.layers[-1].output_dims[-1])
        per_class = units // int(optimizer.num_classes)
        if units + n * per_class > MAX_LEARNING_UNITS:
            raise DeviceError(
                "adding %d classes of %d neurons to the %d the layer has would exceed the %d "
                "neurons a learning layer may have here"
                % (n, per_class, units, MAX_LEARNING_UNITS),
                E_BAD_VALUE,
            )
        try:
            model.add_classes(n)
        except Exception as e:
            raise DeviceError("akida add_classes failed: %s" % e, E_LEARN)
        # The output grew: the spec says so, and a virtual mapping report is out of date.
        self._spec["outputs"][0]["shape"] = [-1] + [int(d) for d in model.output_shape]
        self._report = None

    def to_bytes(self):
        """The model as an ``.fbz`` file: its weights as learned so far and its learning
        settings, so that a model loaded from it classifies as this one does and goes on
        learning.  akida (2.19) does not save how far each neuron's plasticity has decayed:
        the loaded model goes on learning at ``initial_plasticity``."""
        return _fbz_bytes(self._open())

    def close(self):
        """Drop the model (and with it its device mapping)."""
        self._model = None

    def info(self):
        """Engine, device, layer summary, the engine's statistics of the last inference and,
        when meta asked for a virtual device, how the model maps onto it."""
        if self._model is None:
            return {}
        model = self._model
        out = {
            "engine": "akida " + akida.__version__,
            "device": self._device.desc if self._device is not None else "software",
            "ip_version": model.ip_version.name,
            "output": self._output,
            "input_bits": self._spec["inputs"][0]["bits"],
            "layers": [_layer_summary(layer) for layer in model.layers],
            "sequences": _sequences(model),
            "learning": self.learning(),
        }
        macs = int(model.macs)
        out["macs"] = macs if macs else "not reported by akida for this model"
        out["statistics"] = self._statistics()
        if self._virtual is not None:
            if self._report is None:
                self._report = _mapping_report(model, self._virtual)
            out["virtual"] = self._report
        return out

    def _statistics(self):
        if not self._runs:
            return "no inference yet"
        metrics = self._model.metrics
        names = list(metrics.names)
        stats = {}
        if "inference_start" in names and "inference_end" in names:
            stats["last_batch_ms"] = int(metrics["inference_end"] - metrics["inference_start"])
        if "inference_frames" in names:
            stats["last_batch_frames"] = int(metrics["inference_frames"])
        engine = self._model.statistics
        # akida's fps divides by whole milliseconds: None when the batch took less than one.
        stats["fps"] = engine.fps
        if self._device is None:
            stats["power"] = NOT_IN_SOFTWARE
            stats["energy"] = NOT_IN_SOFTWARE
            stats["clock_cycles"] = NOT_IN_SOFTWARE
            return stats
        why = "not measured (enable power measurement on the device's SoC)"
        stats["power_mw"] = _plain(engine.powers) if engine.powers else why
        stats["energy_mj_per_frame"] = engine.energy if engine.energy else why
        stats["clock_cycles"] = engine.inference_clk
        return stats


class AkidaBackend(Backend):
    """Runs ``.fbz`` models with the ``akida`` package; see the module docstring for meta."""

    name = "akida"

    def __init__(self):
        super().__init__()
        _import_engine()

    def version(self):
        """The akida package version."""
        return akida.__version__

    def load(self, source, meta=None):
        """Load an ``.fbz`` model from a path or bytes, on a device if one is attached."""
        meta = meta or {}
        output = meta.get("output", "auto")
        if output not in OUTPUTS:
            raise DeviceError(
                "meta output must be one of %s, not %r" % (", ".join(OUTPUTS), output),
                E_MODEL_LOAD,
            )
        if meta.get("device") not in (None, "software"):
            raise DeviceError(
                'meta device must be "software" (or absent: a device when one is attached), '
                "not %r" % (meta["device"],),
                E_MODEL_LOAD,
            )
        virtual = meta.get("virtual")
        if virtual is not None and (virtual not in VIRTUAL_DEVICES or not hasattr(akida, virtual)):
            raise DeviceError(
                "unknown virtual device %r (akida %s knows: %s)"
                % (virtual, akida.__version__, ", ".join(_virtual_names())),
                E_MODEL_LOAD,
            )
        if isinstance(source, str):
            model = _load_path(source)
        elif isinstance(source, (bytes, bytearray, memoryview)):
            model = _load_bytes(bytes(source))
        else:
            raise DeviceError(
                "model source must be a path or bytes, not %s" % type(source).__name__,
                E_MODEL_LOAD,
            )
        device = None
        devices = akida.devices()
        if devices and meta.get("device") is None:
            device = devices[0]
            try:
                model.map(device)
            except Exception as e:
                raise DeviceError(
                    "akida cannot map the model onto %s: %s" % (device.desc, e), E_MODEL_LOAD
                )
        return _loaded(model, output, device, virtual)


def _virtual_names():
    return [n for n in VIRTUAL_DEVICES if hasattr(akida, n)]


def _load_model(path):
    _survives_loading(path)
    try:
        model = akida.Model(path)
    except Exception as e:  # ValueError, RuntimeError: akida's parser says what is wrong
        raise DeviceError("akida cannot load the model: %s" % e, E_MODEL_LOAD)
    if model.layer_count < 1:
        raise DeviceError("akida cannot load the model: it has no layers", E_MODEL_LOAD)
    return model


def _load_path(path):
    try:
        size = os.stat(path).st_size
    except OSError as e:
        raise DeviceError("cannot read model file %s: %s" % (path, e), E_MODEL_LOAD)
    if size == 0:
        raise DeviceError("model file %s is empty" % path, E_MODEL_LOAD)
    return _load_model(path)


def _load_bytes(data):
    # akida reads models from files only: hand it an in-memory file where Linux has them.
    if not data:
        raise DeviceError("model is empty (0 bytes)", E_MODEL_LOAD)
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("kpdev-akida.fbz")
        try:
            with os.fdopen(os.dup(fd), "wb") as f:
                f.write(data)
            return _load_model("/proc/self/fd/%d" % fd)
        finally:
            os.close(fd)
    fd, path = tempfile.mkstemp(suffix=".fbz", prefix="kpdev-akida-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return _load_model(path)
    finally:
        os.unlink(path)


def _loaded(model, output, device, virtual):
    """Probe the model once with zeros to learn its output dtype and shape; build the spec."""
    first, last = model.layers[0], model.layers[-1]
    dtype, bits, low, high = _input_dtype(first)
    shape = [int(d) for d in model.input_shape]
    x = np.zeros([1] + shape, dtype)
    y = None
    if output == "auto":
        try:
            y = model.predict(x)
            output = "predict"
        except (RuntimeError, ValueError):  # the last layer has an activation, or no Dequantizer
            output = "forward"
    if y is None:
        try:
            y = getattr(model, output)(x)
        except Exception as e:
            raise DeviceError("akida cannot run the model with %s: %s" % (output, e), E_MODEL_LOAD)
    spec = {
        "inputs": [
            {
                "name": first.name or "input",
                "dtype": dtype,
                "shape": [-1] + shape,
                "scale": None,
                "zero_point": None,
                "bits": bits,
                "range": [low, high],
            }
        ],
        "outputs": [
            {
                "name": last.name or "output",
                "dtype": y.dtype.name,
                "shape": [-1] + [int(d) for d in y.shape[1:]],
                "scale": None,
                "zero_point": None,
            }
        ],
    }
    return AkidaModel(model, output, spec, device, virtual)
