"""Build the Akida test models in this folder with the ``akida`` package alone (no TensorFlow).

``python tests/data/make_akida_models.py`` (needs ``pip install 'kpdev[akida]' scikit-learn``)
writes, next to this file:

- ``akida_digits_fc.fbz`` (IP v1): InputData 8x8x1 of 4-bit values, FullyConnected 10 with
  4-bit weights and no activation.  A linear classifier of scikit-learn's 8x8 digits: a
  logistic regression fitted on the host, its weights quantized to 4 bits, its biases in the
  layer's thresholds, so that ``predict`` gives the logits.  Input: the digit's pixels (0..16)
  times 15/16, rounded.
- ``akida_digits_cnn.fbz`` (IP v1): InputConvolutional 8x8x1 of 8-bit pixels (3x3, 16 filters,
  4-bit weights, 2x2 max pooling, 4-bit activations), Convolutional (3x3, 32 filters, 2-bit
  weights, 4-bit activations), FullyConnected 10 with 4-bit weights and no activation.  The two
  convolutions keep seeded random weights, their thresholds and activation steps calibrated on
  the training digits; only the last layer is fitted (logistic regression on the akida
  features).  Input: the digit's pixels (0..16) times 255/16, rounded.
- ``akida_large.fbz`` (IP v2): InputData 32x32x3 of 4-bit values, Conv2D 3x3 16, Conv2D 3x3
  32 with 2x2 max pooling, Conv2D 3x3 64, Conv2D 3x3 64 stride 2 (4-bit weights and 4-bit
  ReLU outputs each), Dense1D 10 (int8), Dequantizer (scale 1/16), so ``predict`` gives
  float32.  Seeded random weights, output shifts calibrated on seeded random images so that no
  layer saturates or goes silent; about 2 ms per image in akida's software engine, for
  throughput measurements (``bench/backends.py``).

The digits are split 75/25 with a fixed seed, as ``make_keras_models.py`` does, so the
held-out images of ``digits_sample.npz`` were never seen in training.  It prints each model's
size, its held-out accuracy and the time per inference in the software engine.
"""

import os
import time

import akida
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0


def digits_4bit(pixels):
    """Digit pixels (0..16) as the 4-bit uint8 input of ``akida_digits_fc``, [n, 8, 8, 1]."""
    return np.round(np.asarray(pixels, np.float64) * 15 / 16).astype(np.uint8)[..., None]


def digits_8bit(pixels):
    """Digit pixels (0..16) as the 8-bit uint8 input of ``akida_digits_cnn``, [n, 8, 8, 1]."""
    return np.round(np.asarray(pixels, np.float64) * 255 / 16).astype(np.uint8)[..., None]


def load_data():
    """Digit images (pixels 0..16, [n, 8, 8]) and labels, split 75/25 with a fixed seed."""
    d = load_digits()
    return train_test_split(
        d.images, d.target, test_size=0.25, random_state=SEED, stratify=d.target
    )


def flat(x):
    """Samples flattened in the order akida's FullyConnected numbers its input features.

    The layer's weights are (1, 1, features, units) and feature f is input element f of the
    sample read in Fortran order (the first spatial dimension varies fastest).
    """
    return np.stack([a.ravel(order="F") for a in x]).astype(np.float64)


def fit_readout(features, labels):
    """4-bit weights, thresholds and activation steps of a FullyConnected classifier layer.

    A logistic regression on the features (4-bit values, fitted as value / 15, which lbfgs
    converges on much faster); its weights are quantized with the scale that
    classifies the training set best, and the bias b becomes the threshold -b/scale, so that
    ``predict`` ((potential - threshold) / act_step) returns the regression's logits.
    """
    lr = LogisticRegression(max_iter=5000).fit(features / 15, labels)
    w, b = lr.coef_.T / 15, lr.intercept_
    best = None
    for k in np.linspace(0.1, 1.0, 19):
        scale = np.abs(w).max() * k / 7
        wq = np.clip(np.round(w / scale), -7, 7)
        bq = np.round(b / scale)
        accuracy = np.mean(np.argmax(features @ wq + bq, axis=1) == labels)
        if best is None or accuracy > best[0]:
            best = (accuracy, scale, wq, bq)
    _, scale, wq, bq = best
    units = w.shape[1]
    return {
        "weights": wq.astype(np.int8).reshape(1, 1, -1, units),
        "threshold": (-bq).astype(np.int32),
        "act_step": np.full(units, 1 / scale, np.float32),
    }


def calibrate(potentials):
    """Threshold and activation step per neuron from its potentials on the training data.

    Half of the neurons' responses fall below the threshold (0) and the 99th percentile maps to
    the top of the 4-bit activation range.
    """
    pot = potentials.reshape(-1, potentials.shape[-1]).astype(np.float64)
    low = np.percentile(pot, 50, axis=0)
    high = np.percentile(pot, 99, axis=0)
    step = np.maximum((high - low) / 15, 1.0)
    return {"threshold": np.round(low).astype(np.int32), "act_step": step.astype(np.float32)}


def sequential(layers, variables):
    """A Model of ``layers`` in order, with ``variables[layer name]`` set on each layer."""
    model = akida.Model()
    for layer in layers:
        model.add(layer)
    for layer in model.layers:
        for name, value in variables.get(layer.name, {}).items():
            layer.set_variable(name, value)
    return model


def digits_fc(data):
    """``akida_digits_fc``: a 4-bit linear classifier of the digits."""
    x_train, _, y_train, _ = data
    readout = fit_readout(flat(digits_4bit(x_train)), y_train)
    layers = [
        akida.InputData((8, 8, 1), input_bits=4, name="digits"),
        akida.FullyConnected(10, name="classes", weights_bits=4, activation=False),
    ]
    return sequential(layers, {"classes": readout})


def _cnn_layers(depth, activations):
    conv0, conv1 = activations
    layers = [
        akida.InputConvolutional(
            (8, 8, 1),
            (3, 3),
            16,
            name="conv0",
            weights_bits=4,
            pool_size=(2, 2),
            pool_type=akida.PoolType.Max,
            pool_stride=(2, 2),
            activation=conv0,
            act_bits=4,
        ),
        akida.Convolutional(
            (3, 3), 32, name="conv1", weights_bits=2, activation=conv1, act_bits=4
        ),
        akida.FullyConnected(10, name="classes", weights_bits=4, activation=False),
    ]
    return layers[:depth]


def digits_cnn(data):
    """``akida_digits_cnn``: random convolutions calibrated on the digits, a fitted readout."""
    x_train, _, y_train, _ = data
    x = digits_8bit(x_train)
    rng = np.random.default_rng(SEED)
    w0 = rng.integers(-7, 8, size=(3, 3, 1, 16))
    # Zero-mean filters respond to strokes and edges rather than to overall brightness.
    w0 = np.clip(w0 - np.round(w0.mean(axis=(0, 1, 2), keepdims=True)), -7, 7)
    variables = {"conv0": {"weights": w0.astype(np.int8)}}
    potentials = sequential(_cnn_layers(1, (False, False)), variables).forward(x)
    variables["conv0"].update(calibrate(potentials))
    variables["conv1"] = {"weights": rng.integers(-1, 2, size=(3, 3, 16, 32)).astype(np.int8)}
    potentials = sequential(_cnn_layers(2, (True, False)), variables).forward(x)
    variables["conv1"].update(calibrate(potentials))
    features = sequential(_cnn_layers(2, (True, True)), variables).forward(x)
    variables["classes"] = fit_readout(flat(features), y_train)
    return sequential(_cnn_layers(3, (True, True)), variables)


def _shift_without_saturation(model, depth, x, top):
    """Set the output shift of layer ``depth - 1`` to the one that keeps the most distinct
    output values while at most 1 % of them saturate at ``top``."""
    layer = model.layers[depth - 1]
    count = layer.get_variable("output_shift").shape
    best = None
    for shift in range(-20, 5):
        layer.set_variable("output_shift", np.full(count, shift, np.int8))
        out = akida.Model(layers=model.layers[:depth]).forward(x)
        if np.mean(np.abs(out.astype(np.int32)) >= top) <= 0.01:
            distinct = len(np.unique(out))
            if best is None or distinct > best[0]:
                best = (distinct, shift)
    layer.set_variable("output_shift", np.full(count, best[1], np.int8))


def large():
    """``akida_large``: a random IP v2 CNN on 32x32x3 4-bit images, about 2 ms per image."""
    rng = np.random.default_rng(SEED)
    relu4 = {"output_bits": 4, "weights_bits": 4}
    layers = [
        akida.InputData((32, 32, 3), input_bits=4, name="image"),
        akida.Conv2D(filters=16, kernel_size=3, name="conv0", **relu4),
        akida.Conv2D(
            filters=32,
            kernel_size=3,
            pool_type=akida.PoolType.Max,
            pool_size=2,
            pool_stride=2,
            name="conv1",
            **relu4,
        ),
        akida.Conv2D(filters=64, kernel_size=3, name="conv2", **relu4),
        akida.Conv2D(filters=64, kernel_size=3, kernel_stride=2, name="conv3", **relu4),
        akida.Dense1D(
            units=10,
            output_bits=8,
            activation=akida.ActivationType.NoActivation,
            weights_bits=4,
            name="logits",
        ),
        akida.Dequantizer(name="dequantize"),
    ]
    model = sequential(layers, {})
    for layer in model.layers:
        if "weights" in layer.get_variable_names():
            w = layer.get_variable("weights")
            limit = 2 ** (layer.parameters.weights_bits - 1) - 1
            layer.set_variable("weights", rng.integers(-limit, limit + 1, w.shape).astype(np.int8))
    x = rng.integers(0, 16, size=(8, 32, 32, 3)).astype(np.uint8)
    for depth in range(2, 7):
        top = 2 ** model.layers[depth - 1].parameters.output_bits
        # ReLU outputs are unsigned (top 2**bits - 1), the logits' int8 signed (127).
        _shift_without_saturation(model, depth, x, top - 1 if depth < 6 else top // 2 - 1)
    model.layers[-1].set_variable("scales", np.full(10, 1 / 16, np.float32))
    return model


def ms_per_inference(model, x, repeat):
    """Mean wall time of ``model.forward`` on one sample, in ms."""
    model.forward(x)
    t0 = time.perf_counter()
    for _ in range(repeat):
        model.forward(x)
    return (time.perf_counter() - t0) / repeat * 1e3


def main():
    data = load_data()
    _, x_test, _, y_test = data
    builds = [
        ("akida_digits_fc.fbz", lambda: digits_fc(data), digits_4bit),
        ("akida_digits_cnn.fbz", lambda: digits_cnn(data), digits_8bit),
        ("akida_large.fbz", large, None),
    ]
    for name, build, prepare in builds:
        model = build()
        path = os.path.join(HERE, name)
        model.save(path)
        line = "%-22s %7d bytes, IP %s" % (name, os.path.getsize(path), model.ip_version.name)
        if prepare is not None:
            x = prepare(x_test)
            scores = model.predict(x).reshape(len(x), -1)
            line += ", held-out accuracy %.4f (%d digits)" % (
                np.mean(np.argmax(scores, axis=1) == y_test),
                len(x),
            )
        else:
            x = np.random.default_rng(SEED).integers(0, 16, (1, *model.input_shape), np.uint8)
        line += ", %.3f ms per inference" % ms_per_inference(model, x[:1], 100)
        print(line)


if __name__ == "__main__":
    main()
