"""Build the four MLPerf Tiny reference architectures as full-integer int8 TFLite models.

``python tests/data/make_mlperf_models.py`` (needs ``pip install 'kpdev[models]'``, i.e.
tensorflow-cpu; about 10 minutes on 2 shared cores; ``... make_mlperf_models.py kws vww``
builds only the files whose names hold one of the words) writes, next to this file:

- ``mlperf_kws_dscnn_int8.tflite``: keyword spotting, DS-CNN on 49x10x1 MFCCs, 12 classes.
- ``mlperf_ad_autoencoder_int8.tflite``: anomaly detection, the 640-input fully connected
  autoencoder (640-128-128-128-128-8-128-128-128-128-640, batch norm and ReLU after every
  hidden layer, linear output).
- ``mlperf_ic_resnet8_int8.tflite``: image classification, ResNet-8 (``resnet_v1_eembc``) on
  32x32x3, 10 classes.
- ``mlperf_vww_mobilenet_int8.tflite``: visual wake words, MobileNetV1 with width 0.25 on
  96x96x3, 2 classes.

The layer stacks follow the reference models of the mlcommons/tiny repository
(``benchmark/training/``: ``keyword_spotting/keras_model.py`` ``ds_cnn``,
``anomaly_detection/keras_model.py``, ``image_classification/keras_model.py``
``resnet_v1_eembc``, ``visual_wake_words/vww_model.py`` ``mobilenet_v1``), written here from
their published layer lists (ResNet-8 with the 16/32/64 filters of the v1.x reference; the
repository's later ``resnet_v1_eembc(conv_filters=26)`` is a wider variant).  What differs: no
real data.  Each model is trained for ``EPOCHS`` epochs on ``TRAIN_COUNT`` seeded synthetic
inputs of its real shape (images in [0, 1), MFCC-like or feature-like values; for the
classifiers, a fixed random template per class added to the noise, the class as the label; the
autoencoder reconstructs its input).  That is only so that batch-norm statistics and weight
ranges are a trained network's rather than the initializers'; after training, one pass over
``RECALIBRATE_COUNT`` training inputs sets the batch-norm moving statistics to those inputs'
(``recalibrate_batchnorm``): without it the converted MobileNet gave one output whatever the
input.  The models classify nothing real; they are there for their operators, sizes and
arithmetic.

Conversion: full-integer quantization (``TFLITE_BUILTINS_INT8``), int8 input and output, a
representative dataset of ``CALIB_COUNT`` synthetic inputs.  The batch dimension is fixed to
1 (``keras.Input(batch_size=1)``), so no Flatten becomes SHAPE, STRIDED_SLICE, PACK, RESHAPE
as with a dynamic batch (here the converter folds each Flatten into the FULLY_CONNECTED).

Seeds are fixed; TensorFlow 2.21 on one machine writes the same bytes each run, another
version or machine may not, and the tests do not depend on it (they compare kpdev's int8
interpreter with tflite-micro on whatever the files hold).  The script prints, per model, its
parameter count, the operators in execution order, the file size, the arena tflite-micro and
kpdev's int8 interpreter need for it, and on the held-out synthetic inputs the int8 model's
accuracy (classifiers) and how many distinct outputs it gave (one would make a bit-exactness
test on it meaningless).
"""

import contextlib
import io
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

keras = tf.keras
layers = keras.layers
l2 = keras.regularizers.l2

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0
EPOCHS = 8
TRAIN_COUNT = 512
CALIB_COUNT = 64
RECALIBRATE_COUNT = 256


# --- the four architectures ----------------------------------------------------------------


def kws_dscnn(classes=12, filters=64):
    """DS-CNN: a 10x4 stride-2 convolution, four depthwise-separable blocks, average pool."""
    shape = (49, 10, 1)
    reg = l2(1e-4)
    x = inputs = keras.Input(shape=shape, batch_size=1, name="mfcc")
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", kernel_regularizer=reg)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.2)(x)
    for _ in range(4):
        x = layers.DepthwiseConv2D((3, 3), padding="same", depthwise_regularizer=reg)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2D(filters, (1, 1), padding="same", kernel_regularizer=reg)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    x = layers.AveragePooling2D(pool_size=(shape[0] // 2, shape[1] // 2))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mlperf_kws_dscnn")


def ad_autoencoder(dim=640):
    """The fully connected autoencoder: four 128s, an 8-wide bottleneck, four 128s, 640 out."""
    x = inputs = keras.Input(shape=(dim,), batch_size=1, name="features")
    for width in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = layers.Dense(width)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    outputs = layers.Dense(dim, name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="mlperf_ad_autoencoder")


def _conv_bn(x, filters, strides, relu=True):
    x = layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        kernel_initializer="he_normal",
        kernel_regularizer=l2(1e-4),
    )(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x) if relu else x


def ic_resnet8(classes=10, filters=16):
    """ResNet-8 (resnet_v1_eembc): a stem and three residual stacks of 16, 32, 64 filters."""
    x = inputs = keras.Input(shape=(32, 32, 3), batch_size=1, name="image")
    x = _conv_bn(x, filters, 1)
    for stack, strides in enumerate((1, 2, 2)):
        width = filters * (2**stack)
        y = _conv_bn(x, width, strides)
        y = _conv_bn(y, width, 1, relu=False)
        if strides != 1:
            # The identity path changes shape with the weights path: a 1x1 stride-2 conv.
            x = layers.Conv2D(
                width,
                1,
                strides=strides,
                padding="same",
                kernel_initializer="he_normal",
                kernel_regularizer=l2(1e-4),
            )(x)
        x = layers.Activation("relu")(layers.add([x, y]))
    x = layers.AveragePooling2D(pool_size=int(min(x.shape[1:3])))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(
        classes, activation="softmax", kernel_initializer="he_normal", name="probabilities"
    )(x)
    return keras.Model(inputs, outputs, name="mlperf_ic_resnet8")


def vww_mobilenet(classes=2, alpha=0.25):
    """MobileNetV1 at width ``alpha``: a stride-2 stem and 13 depthwise-separable blocks."""
    reg = l2(1e-4)

    def bn_relu(x):
        return layers.Activation("relu")(layers.BatchNormalization()(x))

    x = inputs = keras.Input(shape=(96, 96, 3), batch_size=1, name="image")
    x = bn_relu(
        layers.Conv2D(
            int(32 * alpha),
            3,
            strides=2,
            padding="same",
            kernel_initializer="he_normal",
            kernel_regularizer=reg,
        )(x)
    )
    # (pointwise filters at width 1.0, depthwise stride) of the 13 blocks.
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
    blocks += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for width, strides in blocks:
        x = bn_relu(
            layers.DepthwiseConv2D(
                3,
                strides=strides,
                padding="same",
                depthwise_initializer="he_normal",
                depthwise_regularizer=reg,
            )(x)
        )
        x = bn_relu(
            layers.Conv2D(
                int(width * alpha),
                1,
                padding="same",
                kernel_initializer="he_normal",
                kernel_regularizer=reg,
            )(x)
        )
    x = layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mlperf_vww_mobilenet")


# --- synthetic data, training, conversion --------------------------------------------------


def synthetic_inputs(rng, shape, count, kind):
    """``count`` float32 inputs of ``shape``: images in [0, 1), MFCC-like or feature-like."""
    if kind == "image":
        return rng.random((count,) + shape, dtype=np.float32)
    if kind == "mfcc":
        # Centred per coefficient with a spread that shrinks along the coefficients.
        spread = np.linspace(8.0, 1.0, shape[1], dtype=np.float32)[None, None, :, None]
        return (rng.standard_normal((count,) + shape).astype(np.float32) * spread).astype(
            np.float32
        )
    return rng.standard_normal((count,) + shape).astype(np.float32)


def templated(rng, x, classes, kind):
    """Labels, and inputs with their class's fixed random template added (a learnable task)."""
    y = rng.integers(0, classes, len(x))
    templates = synthetic_inputs(rng, x.shape[1:], classes, kind)
    if kind == "image":
        x = 0.5 * x + 0.5 * templates[y]  # stays in [0, 1)
    else:
        x = 0.5 * x + templates[y]
    return x.astype(np.float32), y.astype(np.int64), templates


def train(model, x, y, loss):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    model.fit(x, y, epochs=EPOCHS, batch_size=16, shuffle=True, verbose=0)
    return model


def recalibrate_batchnorm(model, x):
    """Set every batch norm's moving mean and variance to those of one batch ``x``.

    A few hundred training steps leave the moving averages (momentum 0.99) far from the
    activations' statistics, and a deep network in inference mode then gives nearly one output
    for every input (MobileNet did).  One training-mode pass with momentum 0 sets them to the
    batch's statistics (Dropout is active in that pass, as it was while training).
    """
    norms = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)
    for layer in norms:
        layer.momentum = 0.99


def convert(model, x_calib):
    """Full-integer quantization, int8 input and output."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        for i in range(len(x_calib)):
            yield [x_calib[i : i + 1]]

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with contextlib.redirect_stdout(io.StringIO()):  # Keras export prints the signature
        return converter.convert()


def operators(data):
    """Builtin operator names of subgraph 0, in execution order."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAsModel(data, 0)
    sg = model.Subgraphs(0)
    ops = []
    for i in range(sg.OperatorsLength()):
        code = model.OperatorCodes(sg.Operators(i).OpcodeIndex())
        ops.append(names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())])
    return ops


def tflm_arena(data):
    """tflite-micro's arena for the model: {"total", "head", "tail"} in bytes.

    What its RecordingMicroAllocator prints (``print_allocations``, on file descriptor 2):
    ``head`` is the planned non-persistent memory (activations and kernel scratch), ``tail``
    the persistent records (per-tensor and per-node structs, quantization data, kernel
    buffers).  On this 64-bit host its structs hold 8-byte pointers, so the tail is larger
    than a 32-bit microcontroller's.
    """
    import re
    import tempfile

    from tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(data, arena_size=1024 * 1024)
    with tempfile.TemporaryFile() as log:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            interp.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        text = log.read().decode(errors="replace")
    found = dict(re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", text))
    return {k: int(v) for k, v in found.items()}


def kpdev_arena(data):
    """Bytes of kpdev's int8 interpreter's arena for the model (planned from lifetimes)."""
    from kpdev.accelerators.tflite_int8 import TFLiteInt8Backend

    loaded = TFLiteInt8Backend().load(data)
    try:
        return loaded.info()["arena_size_bytes"]
    finally:
        loaded.close()


MODELS = (
    # file name, builder, input kind, loss ("sce" classification, "mse" reconstruction)
    ("mlperf_kws_dscnn_int8.tflite", kws_dscnn, "mfcc", "sce"),
    ("mlperf_ad_autoencoder_int8.tflite", ad_autoencoder, "features", "mse"),
    ("mlperf_ic_resnet8_int8.tflite", ic_resnet8, "image", "sce"),
    ("mlperf_vww_mobilenet_int8.tflite", vww_mobilenet, "image", "sce"),
)


def tflm_outputs(data, x):
    """tflite-micro's int8 outputs for float inputs ``x`` (quantized as the model says)."""
    from tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(data, arena_size=512 * 1024)
    q = interp.get_input_details(0)["quantization_parameters"]
    scale, zero_point = q["scales"][0], q["zero_points"][0]
    out = []
    for xi in x:
        xi = np.clip(np.round(xi[None] / scale) + zero_point, -128, 127).astype(np.int8)
        interp.set_input(xi, 0)
        interp.invoke()
        out.append(interp.get_output(0)[0].copy())
    return np.array(out)


def main(argv):
    """Build every model, or those whose file names contain one of ``argv``'s words."""
    tf.config.experimental.enable_op_determinism()
    for name, build, kind, loss in MODELS:
        if argv and not any(word in name for word in argv):
            continue
        keras.utils.set_random_seed(SEED)
        rng = np.random.default_rng(SEED)
        model = build()
        shape = tuple(model.input_shape[1:])
        x = synthetic_inputs(rng, shape, TRAIN_COUNT + CALIB_COUNT, kind)
        if loss == "sce":
            x, y, _ = templated(rng, x, model.output_shape[-1], kind)
            train(model, x[:TRAIN_COUNT], y[:TRAIN_COUNT], "sparse_categorical_crossentropy")
        else:
            train(model, x[:TRAIN_COUNT], x[:TRAIN_COUNT], "mse")
        recalibrate_batchnorm(model, x[:RECALIBRATE_COUNT])
        data = convert(model, x[TRAIN_COUNT:])
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        ops = operators(data)
        counts = {}
        for op in ops:
            counts[op] = counts.get(op, 0) + 1
        print("%s: %d bytes, %d parameters" % (name, len(data), model.count_params()))
        print("  operators (%d): %s" % (len(ops), ", ".join(ops)))
        print("  by kind: %s" % ", ".join("%s x%d" % kv for kv in sorted(counts.items())))
        arena = tflm_arena(data)
        print(
            "  arena: tflite-micro %d bytes (head %d, tail %d); kpdev tflite_int8 %d bytes"
            % (arena["total"], arena["head"], arena["tail"], kpdev_arena(data))
        )
        out = tflm_outputs(data, x[TRAIN_COUNT:])
        if loss == "sce":
            acc = np.mean(np.argmax(out, axis=1) == y[TRAIN_COUNT:])
            print("  int8 accuracy on the %d held-out synthetic inputs: %.3f" % (len(out), acc))
        print("  distinct int8 outputs on them: %d" % len({o.tobytes() for o in out}))


if __name__ == "__main__":
    main(sys.argv[1:])
