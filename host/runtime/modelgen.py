"""Build small int8 ``.tflite`` models from seeded random weights, without TensorFlow.

The models are real TFLite flatbuffers written with tflite-micro's ``model_editor``: int8
activations and weights with per-tensor quantization, int32 biases, and activation ranges
calibrated on seeded random inputs so that outputs vary with the input.  Tests and benchmarks use
them as stand-ins for trained networks; the same seed always gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kpdev.protocol.errors import KpdevError

# Inputs are floats in [-1, 1) quantized with this scale and zero point.
INPUT_SCALE = 1.0 / 128.0
INPUT_ZERO_POINT = 0
# TFLM's int8 SOFTMAX only accepts this output quantization.
SOFTMAX_SCALE = 1.0 / 256.0
SOFTMAX_ZERO_POINT = -128

_CALIBRATION_SAMPLES = 256


def _tflm():
    """tflite-micro's model_editor and schema modules, or a KpdevError saying how to get them."""
    try:
        from tflite_micro.tensorflow.lite.micro.compression import model_editor
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated
    except ImportError as e:
        raise KpdevError(
            "building models needs tflite-micro (pip install 'kpdev[tflite]'): %s" % e
        )
    return model_editor, schema_py_generated


def symmetric_int8(w: np.ndarray) -> tuple[np.ndarray, float]:
    """Quantize weights to int8 with one scale and zero point 0."""
    scale = float(np.float32(max(float(np.abs(w).max()), 1e-6) / 127.0))
    q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    return q, scale


def _activation_quant(values: np.ndarray, relu: bool) -> tuple[float, int]:
    """Scale and zero point covering the calibrated range of an activation (and 0)."""
    if relu:
        hi = max(float(values.max()), 1e-3)
        return float(np.float32(hi / 255.0)), -128
    lo = min(float(values.min()), 0.0)
    hi = max(float(values.max()), 0.0)
    if hi - lo < 1e-3:
        hi = lo + 1e-3
    scale = float(np.float32((hi - lo) / 255.0))
    zero_point = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return scale, zero_point


class Graph:
    """One subgraph under construction: tensors are model_editor ``Tensor`` objects."""

    def __init__(self):
        self.me, self.tfl = _tflm()
        self.operators = []

    def tensor(self, name, shape, dtype="int8", quant=None, data=None):
        types = {
            "int8": self.tfl.TensorType.INT8,
            "int32": self.tfl.TensorType.INT32,
            "float32": self.tfl.TensorType.FLOAT32,
        }
        q = None if quant is None else self.me.Quantization(quant[0], quant[1])
        return self.me.Tensor(
            shape=tuple(shape), dtype=types[dtype], quantization=q, data=data, name=name
        )

    def op(self, opcode, inputs, outputs, options_type=None, options=None):
        op = self.me.Operator(opcode=opcode, inputs=inputs, outputs=outputs)
        if options is not None:
            op._fb.builtinOptionsType = options_type
            op._fb.builtinOptions = options
        self.operators.append(op)

    def fully_connected(self, name, x, x_scale, w, b, relu, out_quant):
        """Append FULLY_CONNECTED with float weights ``w`` [out, in] and bias ``b``."""
        tfl = self.tfl
        qw, w_scale = symmetric_int8(w)
        bias_scale = float(np.float32(x_scale * w_scale))
        qb = np.round(b / bias_scale).astype("<i4")
        weights = self.tensor(name + "/weights", w.shape, "int8", (w_scale, 0), qw)
        bias = self.tensor(name + "/bias", b.shape, "int32", (bias_scale, 0), qb)
        y = self.tensor(name, (1, w.shape[0]), "int8", out_quant)
        act = tfl.ActivationFunctionType.RELU if relu else tfl.ActivationFunctionType.NONE
        self.op(
            tfl.BuiltinOperator.FULLY_CONNECTED,
            [x, weights, bias],
            [y],
            tfl.BuiltinOptions.FullyConnectedOptions,
            tfl.FullyConnectedOptionsT(fusedActivationFunction=act),
        )
        return y

    def softmax(self, x, shape):
        y = self.tensor("probabilities", shape, "int8", (SOFTMAX_SCALE, SOFTMAX_ZERO_POINT))
        self.op(
            self.tfl.BuiltinOperator.SOFTMAX,
            [x],
            [y],
            self.tfl.BuiltinOptions.SoftmaxOptions,
            self.tfl.SoftmaxOptionsT(beta=1.0),
        )
        return y

    def float_input(self, x, shape):
        """Put a float32 input and a QUANTIZE in front of int8 tensor ``x``."""
        f = self.tensor("input_float", shape, "float32")
        self.operators.insert(0, self.me.Operator(self.tfl.BuiltinOperator.QUANTIZE, [f], [x]))
        return f

    def float_output(self, y, shape):
        """Append a DEQUANTIZE of int8 tensor ``y`` to a float32 output."""
        f = self.tensor("output_float", shape, "float32")
        self.op(self.tfl.BuiltinOperator.DEQUANTIZE, [y], [f])
        return f

    def build(self, inputs, outputs, description) -> bytes:
        sg = self.me.Subgraph(operators=self.operators, inputs=inputs, outputs=outputs)
        model = self.me.Model(subgraphs=[sg], description=description)
        return bytes(model.build())


def mlp_int8(
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    calibration: np.ndarray,
    input_quant: tuple[float, int] = (INPUT_SCALE, INPUT_ZERO_POINT),
    softmax: bool = True,
    float_io: bool = False,
    description: str = "kpdev modelgen.mlp_int8",
) -> bytes:
    """An int8 MLP from float weights: FULLY_CONNECTED+RELU per hidden layer, FULLY_CONNECTED,
    then SOFTMAX.

    ``layers`` are (w [out, in], b [out]) pairs; ``calibration`` [n, in] float inputs (the
    dequantized values the model will see) set each activation's quantization.  The input is
    int8 [1, in] quantized with ``input_quant``; the output int8 [1, out] of probabilities
    (scale 1/256, zero point -128), or the logits when ``softmax`` is False.  With ``float_io``
    the model takes and returns float32 through QUANTIZE and DEQUANTIZE.
    """
    inputs = layers[0][0].shape[1]
    outputs = layers[-1][0].shape[0]
    g = Graph()
    x = g.tensor("input", (1, inputs), "int8", input_quant)
    first = x
    x_scale = input_quant[0]
    act = np.asarray(calibration, dtype=np.float32)
    for i, (w, b) in enumerate(layers):
        last = i == len(layers) - 1
        act = act @ w.T + b
        if not last:
            act = np.maximum(act, 0.0)
        quant = _activation_quant(act, relu=not last)
        name = "logits" if last else "dense_%d" % i
        w32 = np.asarray(w, dtype=np.float32)
        b32 = np.asarray(b, dtype=np.float32)
        x = g.fully_connected(name, x, x_scale, w32, b32, relu=not last, out_quant=quant)
        x_scale = quant[0]
    if softmax:
        x = g.softmax(x, (1, outputs))
    if float_io:
        first = g.float_input(first, (1, inputs))
        x = g.float_output(x, (1, outputs))
    return g.build([first], [x], description)


def dense_int8(
    inputs: int = 16,
    hidden: int | Sequence[int] = 32,
    outputs: int = 4,
    seed: int = 0,
    float_io: bool = False,
    softmax: bool = True,
) -> bytes:
    """An int8 MLP with seeded random weights (``mlp_int8``), for tests and benchmarks.

    ``hidden`` is one width or a sequence of widths.  The input is int8 [1, inputs] with scale
    1/128 (floats in [-1, 1)), calibrated on seeded random inputs so that outputs vary.
    """
    widths = [hidden] if isinstance(hidden, int) else list(hidden)
    rng = np.random.default_rng(seed)
    calib = rng.uniform(-1.0, 1.0, (_CALIBRATION_SAMPLES, inputs)).astype(np.float32)
    layers = []
    layer_sizes = [inputs] + widths + [outputs]
    for i in range(len(layer_sizes) - 1):
        fan_in, fan_out = layer_sizes[i], layer_sizes[i + 1]
        last = i == len(layer_sizes) - 2
        # He init keeps activations in range through the ReLUs; the last layer is scaled up so
        # that the softmax is not flat.
        std = np.sqrt((6.0 if last else 2.0) / fan_in)
        w = rng.normal(0.0, std, (fan_out, fan_in)).astype(np.float32)
        b = rng.normal(0.0, 0.1, (fan_out,)).astype(np.float32)
        layers.append((w, b))
    desc = "kpdev modelgen.dense_int8(%d, %r, %d, seed=%d)" % (inputs, widths, outputs, seed)
    return mlp_int8(layers, calib, softmax=softmax, float_io=float_io, description=desc)


def conv_int8(
    height: int = 16,
    width: int = 16,
    channels: int = 1,
    filters: int = 8,
    outputs: int = 4,
    seed: int = 0,
) -> bytes:
    """A small int8 CNN: CONV_2D 3x3 SAME + RELU, global AVERAGE_POOL_2D, FULLY_CONNECTED, SOFTMAX.

    Input int8 [1, height, width, channels] with scale 1/128; output int8 [1, outputs]
    probabilities.
    """
    rng = np.random.default_rng(seed)
    calib = rng.uniform(-1.0, 1.0, (32, height, width, channels)).astype(np.float32)
    g = Graph()
    tfl = g.tfl

    w = rng.normal(0.0, np.sqrt(2.0 / (9 * channels)), (filters, 3, 3, channels))
    w = w.astype(np.float32)
    b = rng.normal(0.0, 0.1, (filters,)).astype(np.float32)
    padded = np.pad(calib, ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros((calib.shape[0], height, width, filters), np.float32)
    for dy in range(3):
        for dx in range(3):
            patch = padded[:, dy : dy + height, dx : dx + width, :]
            conv += np.einsum("nhwc,oc->nhwo", patch, w[:, dy, dx, :])
    conv = np.maximum(conv + b, 0.0)
    conv_quant = _activation_quant(conv, relu=True)
    pooled = conv.mean(axis=(1, 2))
    # Average pooling keeps the input's quantization (TFLM requires it).
    pool_quant = conv_quant

    x = g.tensor("input", (1, height, width, channels), "int8", (INPUT_SCALE, INPUT_ZERO_POINT))
    qw, w_scale = symmetric_int8(w)
    bias_scale = float(np.float32(INPUT_SCALE * w_scale))
    t_w = g.tensor("conv/weights", w.shape, "int8", (w_scale, 0), qw)
    qb = np.round(b / bias_scale).astype("<i4")
    t_b = g.tensor("conv/bias", b.shape, "int32", (bias_scale, 0), qb)
    t_conv = g.tensor("conv/output", (1, height, width, filters), "int8", conv_quant)
    g.op(
        tfl.BuiltinOperator.CONV_2D,
        [x, t_w, t_b],
        [t_conv],
        tfl.BuiltinOptions.Conv2DOptions,
        tfl.Conv2DOptionsT(
            padding=tfl.Padding.SAME,
            strideW=1,
            strideH=1,
            fusedActivationFunction=tfl.ActivationFunctionType.RELU,
        ),
    )
    t_pool = g.tensor("pool/output", (1, 1, 1, filters), "int8", pool_quant)
    g.op(
        tfl.BuiltinOperator.AVERAGE_POOL_2D,
        [t_conv],
        [t_pool],
        tfl.BuiltinOptions.Pool2DOptions,
        tfl.Pool2DOptionsT(
            padding=tfl.Padding.VALID,
            strideW=1,
            strideH=1,
            filterWidth=width,
            filterHeight=height,
        ),
    )
    wf = rng.normal(0.0, np.sqrt(6.0 / filters), (outputs, filters)).astype(np.float32)
    bf = rng.normal(0.0, 0.1, (outputs,)).astype(np.float32)
    logits = pooled @ wf.T + bf
    t_logits = g.fully_connected(
        "logits", t_pool, pool_quant[0], wf, bf, False, _activation_quant(logits, relu=False)
    )
    y = g.softmax(t_logits, (1, outputs))
    desc = "kpdev modelgen.conv_int8(%d, %d, %d, %d, %d, seed=%d)" % (
        height,
        width,
        channels,
        filters,
        outputs,
        seed,
    )
    return g.build([x], [y], desc)
