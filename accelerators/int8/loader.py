"""Load a TFLite model into an ``interp.Interpreter``: parse, prepare every operator, plan.

Device code, needed only while a model loads: a small board drops this module, the reader,
the prepare-time arithmetic and the kernels' prepare helpers once the model is ready
(tflite_int8.LOAD_ONLY).
"""

import gc
import sys

from kpdev.accelerators.base import take_arena
from kpdev.accelerators.int8.interp import (
    KERNELS,
    Interpreter,
    Op,
    op_name,
    select_loops,
    supported,
)
from kpdev.protocol.compat import MICROPYTHON, const, forget_modules
from kpdev.protocol.errors import DeviceError

_E_MODEL_LOAD = const(23)
# Arena offsets are aligned like TFLM's (16 bytes).
_ALIGN = const(16)
# Constants up to this size are held in RAM even when weights stay in the file.
_SMALL_CONST = const(512)


def _module(name):
    full = "kpdev.accelerators.int8." + name
    __import__(full)
    return sys.modules[full]


def plan_arena(sizes, first, last, align=_ALIGN):
    """Offsets for buffers of ``sizes`` alive from op ``first[i]`` to op ``last[i]`` inclusive.

    Greedy by size, largest first, each at the lowest aligned offset where it overlaps no
    placed buffer that is alive at the same time.  Returns (offsets, arena size).
    """
    # Ties broken by index: MicroPython's sort is not stable, and an order that differs from
    # CPython's gave MobileNet's arena 9 KB more there.
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    placed = []  # (offset, end, first, last)
    offsets = [0] * len(sizes)
    total = 0
    for i in order:
        size = sizes[i]
        if size <= 0:
            continue
        busy = sorted([(o, e) for (o, e, f, z) in placed if not (z < first[i] or f > last[i])])
        off = 0
        for o, e in busy:
            if off + size <= o:
                break
            if e > off:
                off = (e + align - 1) // align * align
        offsets[i] = off
        placed.append((off, off + size, first[i], last[i]))
        if off + size > total:
            total = off + size
    return offsets, total


def load(src, kernels="auto", weights="ram"):
    """Parse, prepare and plan the model in ``src`` (an ``interp.Source``)."""
    from kpdev.accelerators.int8.reader import Model

    try:
        model = Model(src)
    except (DeviceError, MemoryError):
        raise
    except Exception as e:  # ValueError, IndexError, struct.error on CPython, ...
        raise DeviceError("corrupt TFLite model: %s" % e, _E_MODEL_LOAD)
    # The parser is not needed any more: free it before the kernels' prepare code loads.
    tensors = model.tensors
    ops = model.ops
    inputs = model.inputs
    outputs = model.outputs
    subgraphs = model.subgraphs
    del model
    forget_modules(("kpdev.accelerators.int8.reader",))
    if subgraphs != 1:
        raise DeviceError(
            "the model has %d subgraphs; only single-subgraph models run on tflite_int8"
            % subgraphs,
            _E_MODEL_LOAD,
        )
    stream = weights == "file" and src.data is None
    interp = Interpreter(src, select_loops(kernels), tensors, inputs, outputs, stream)
    # The arena is the one large block a model needs: planned (lifetimes need only the graph)
    # and allocated now, while the parse's garbage is collected and the heap is in one piece.
    if MICROPYTHON:
        gc.collect()
    _plan(interp, ops, inputs, outputs)
    stream_size = 0
    for i in range(len(tensors)):
        t = tensors[i]
        if t.const is not None:
            off, size = t.const
            if not stream:
                interp.buf[i] = src.read(off, size)
            elif size <= _SMALL_CONST:
                b = bytearray(size)
                src.readinto(off, b)
                interp.buf[i] = b
            elif size > stream_size:
                stream_size = size
    for op in ops:
        name = KERNELS.get(op.code)
        if name is None:
            raise DeviceError(
                "operator %s is not supported by tflite_int8 (it runs %s)"
                % (op_name(op.code), ", ".join(supported())),
                _E_MODEL_LOAD,
            )
        for i in op.inputs + op.outputs:
            if i >= 0:
                _check_dtype(op, tensors[i])
        module = _module(name)
        try:
            params = module.prepare(interp, op)
        except DeviceError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError) as e:
            raise DeviceError("operator %s cannot run: %s" % (op_name(op.code), e), _E_MODEL_LOAD)
        # What run needs of the operator; its options table and lists go with the loader.
        interp.steps.append((module, Op(op.code, tuple(op.inputs), tuple(op.outputs)), params))
        if MICROPYTHON:
            # A prepare leaves much garbage (exact double arithmetic per channel) among the
            # few arrays it keeps: collected now, the next operator's arrays go next to these,
            # and a small heap does not end up in pieces too small for the arena.
            gc.collect()
        interp.ops[op.code] = interp.ops.get(op.code, 0) + 1
    if stream_size:
        interp.scratch = bytearray(stream_size)
    return interp


def _check_dtype(op, t):
    if t.dtype not in ("int8", "int32", "float32"):
        raise DeviceError(
            "operator %s: tensor %r has dtype %s; tflite_int8 runs int8 models "
            "(int32 biases and shapes, float32 only at QUANTIZE/DEQUANTIZE)"
            % (op_name(op.code), t.name, t.dtype),
            _E_MODEL_LOAD,
        )


def _plan(interp, ops, inputs, outputs):
    tensors = interp.tensors
    end = len(ops)
    first = {}
    last = {}
    for i in inputs:
        first[i] = 0
    for k in range(len(ops)):
        op = ops[k]
        for i in op.outputs:
            if i >= 0 and i not in first:
                first[i] = k
        for i in op.inputs:
            if i >= 0 and tensors[i].const is None:
                if i not in first:
                    first[i] = 0
                last[i] = k
    for i in outputs:
        last[i] = end
    for i in inputs:
        if i not in last:
            last[i] = 0
    ids = [i for i in first if tensors[i].const is None]
    ids.sort()
    for i in ids:
        if i not in last:  # an output no operator reads and the graph does not return
            last[i] = first[i]
    sizes = [tensors[i].nbytes() for i in ids]
    offsets, total = plan_arena(sizes, [first[i] for i in ids], [last[i] for i in ids])
    interp.arena, interp.reserved = take_arena(total)  # the block set aside at start, if free
    interp.arena_size = total
    mv = memoryview(interp.arena)
    for k in range(len(ids)):
        interp.buf[ids[k]] = mv[offsets[k] : offsets[k] + sizes[k]]
