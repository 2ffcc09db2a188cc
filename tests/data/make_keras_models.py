"""Train two small CNNs on scikit-learn's digits and convert them to full-integer TFLite models.

``python tests/data/make_keras_models.py`` (needs ``pip install 'kpdev[keras]' scikit-learn``)
writes, next to this file:

- ``keras_cnn_int8.tflite``: int8 input and output.  Conv2D same+relu, DepthwiseConv2D+relu,
  MaxPooling2D, a stride-2 Conv2D, Flatten, Dense relu, Dense softmax.  The batch dimension
  stays dynamic, so the converter writes Flatten as SHAPE, STRIDED_SLICE, PACK, RESHAPE.
- ``keras_mix_float.tflite``: float32 input and output (QUANTIZE and DEQUANTIZE inside), with
  ZeroPadding2D, Add, a sigmoid gate through Multiply, Concatenate, Reshape,
  GlobalAveragePooling2D and Dense softmax.
- ``digits_sample.npz``: 40 held-out digits, ``x`` float32 [40, 8, 8, 1] in [0, 1] (pixel / 16,
  what both models take) and ``y`` int64 labels, so that tests need neither TensorFlow nor
  scikit-learn.

Seeds are fixed, but TensorFlow's training and converter are only reproducible on one version
and machine: a rerun elsewhere may write different bytes, which the tests do not mind (they
compare the int8 interpreter with tflite-micro on whatever the files hold).  It prints the
operators of each model and the test accuracy of the float Keras model and of the converted
model in tflite-micro.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

keras = tf.keras
layers = keras.layers

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0
EPOCHS = 30
SAMPLE_COUNT = 40


def load_data():
    """Digits as float32 [n, 8, 8, 1] in [0, 1] and labels, split 75/25 with a fixed seed."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)


def cnn_int8():
    """The int8-in/int8-out CNN; the Input leaves the batch dimension open."""
    x = inputs = keras.Input(shape=(8, 8, 1), name="image")
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(32, activation="relu")(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="keras_cnn_int8")


def mix_float():
    """The float-in/float-out model of the elementwise, padding and reduction operators.

    The Reshape folds the rows of the 4x4 map into the channels, so that the global average
    keeps where along a row a stroke lies (plain global pooling would lose it all).
    """
    inputs = keras.Input(shape=(8, 8, 1), name="image")
    x = layers.Conv2D(12, 3, padding="same", activation="relu")(inputs)
    # Padding on the top and left only: no SAME padding matches it, so the converter keeps
    # the PAD (a symmetric one it folds into the next convolution).
    x = layers.ZeroPadding2D(((1, 0), (1, 0)))(x)
    x = layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    y = layers.Conv2D(16, 1)(x)
    added = layers.Add()([x, y])
    gate = layers.Conv2D(16, 1, activation="sigmoid")(x)
    gated = layers.Multiply()([added, gate])
    x = layers.Concatenate()([added, gated])
    x = layers.Reshape((4, 1, 128))(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="keras_mix_float")


def train(model, x, y):
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, epochs=EPOCHS, batch_size=32, shuffle=True, verbose=0)
    return model


def convert(model, x_calib, int8_io):
    """Full-integer quantization with a representative dataset; int8 or float32 at the edges."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        for i in range(0, len(x_calib)):
            yield [x_calib[i : i + 1]]

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
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


def tflm_accuracy(data, x, y):
    """Accuracy of the model in tflite-micro's reference interpreter."""
    from tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(data, arena_size=256 * 1024)
    details = interp.get_input_details(0)
    correct = 0
    for xi, yi in zip(x, y, strict=True):
        xi = xi[None]
        if details["dtype"] == np.int8:
            scale = details["quantization_parameters"]["scales"][0]
            zero_point = details["quantization_parameters"]["zero_points"][0]
            xi = np.clip(np.round(xi / scale) + zero_point, -128, 127).astype(np.int8)
        interp.set_input(xi, 0)
        interp.invoke()
        correct += int(np.argmax(interp.get_output(0)) == yi)
    return correct / len(y)


def main():
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    x_train, x_test, y_train, y_test = load_data()
    np.savez(
        os.path.join(HERE, "digits_sample.npz"),
        x=x_test[:SAMPLE_COUNT],
        y=y_test[:SAMPLE_COUNT],
    )
    for name, build, int8_io in (
        ("keras_cnn_int8.tflite", cnn_int8, True),
        ("keras_mix_float.tflite", mix_float, False),
    ):
        keras.utils.set_random_seed(SEED)
        model = train(build(), x_train, y_train)
        float_acc = model.evaluate(x_test, y_test, verbose=0)[1]
        data = convert(model, x_train[:200], int8_io)
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        print("%s: %d bytes" % (name, len(data)))
        print("  operators: %s" % ", ".join(operators(data)))
        print(
            "  test accuracy (%d digits): keras float %.4f, tflite-micro %.4f"
            % (len(y_test), float_acc, tflm_accuracy(data, x_test, y_test))
        )


if __name__ == "__main__":
    main()
