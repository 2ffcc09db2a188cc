"""Build Akida models that learn on the device, with the ``akida`` package alone (no TensorFlow).

``akida_learning_model`` makes the smallest model Akida's edge learning runs: a 1-bit input
vector (a pipeline's thermometer encoding of its scaled features) and one FullyConnected layer
of binary weights, compiled with ``AkidaUnsupervised``.  The device agent loads it like any
``.fbz`` model and teaches it classes from a few labelled samples (``AkidaModel.fit``).

The defaults come from 5-shot learning of UEA BasicMotions (the 48 standardised features of
``host/demo/basicmotions_pipeline.yml``; 5 training recordings per class, scored on the 40 test
recordings, 100 draws).  With a thermometer encoding of 8 levels over -1.5..1.5 (384 inputs)
they reach 0.988 mean accuracy (0.925 in the worst draw), the host-trained MLP's 0.975 or
better; learning the classes two at a time (``add_classes``) scores the same.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from kpdev.host.errors import UsageError

# num_weights per neuron as a fraction of the inputs.  A thermometer encoding of standardised
# features over a range symmetric about 0 sets about half its bits; connecting each neuron to
# 0.6 of that many (0.3 of all inputs) learned best: 0.25 and 0.35 of the inputs did as well
# within 0.005, 0.2 and 0.45 were about 0.02 worse in mean accuracy.
WEIGHTS_FRACTION = 0.3
# How strongly a class's neurons compete to learn a sample (akida's default is 0): 0.3, 0.5 and
# 0.7 were equally good, 0.1 and 0 about 0.02 worse with more bad draws.
LEARNING_COMPETITION = 0.3


def _akida():
    """The akida package, or a UsageError saying how to get it."""
    try:
        import akida
    except ImportError as e:
        raise UsageError("building Akida models needs akida (pip install 'kpdev[akida]'): %s" % e)
    return akida


def _count(name: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UsageError("%s is %r; it must be an integer >= %d" % (name, value, low))
    return value


def _fraction(name: str, value: object) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not 0.0 <= value <= 1.0:
        raise UsageError("%s is %r; it must be a number in 0..1" % (name, value))
    return float(value)


def default_num_weights(n_inputs: int) -> int:
    """The connections per neuron ``akida_learning_model`` gives ``n_inputs`` inputs by default."""
    return max(1, int(round(WEIGHTS_FRACTION * n_inputs)))


def akida_learning_model(
    n_inputs: int,
    n_classes: int,
    neurons_per_class: int = 1,
    num_weights: int | None = None,
    learning_competition: float = LEARNING_COMPETITION,
    initial_plasticity: float = 1.0,
    min_plasticity: float = 0.1,
    plasticity_decay: float = 0.25,
    seed: int | None = 0,
) -> bytes:
    """An Akida model (``.fbz`` bytes) that learns ``n_classes`` classes of 1-bit input vectors.

    InputData of shape (1, 1, n_inputs) and 1-bit values, then FullyConnected with
    ``n_classes * neurons_per_class`` units, binary weights and no activation (its outputs are
    the potentials a class is read from), compiled with ``akida.AkidaUnsupervised``.  Nothing is
    learned yet.

    ``num_weights`` is how many inputs each neuron connects to: by default 0.3 of the inputs
    (``default_num_weights``), i.e. 0.6 of the bits a thermometer encoding of standardised
    features over a symmetric range sets on average.  ``learning_competition`` and the plasticity
    settings are akida's (all in 0..1).  akida draws each neuron's initial connections at random
    when it compiles; with ``seed`` (an int) they are drawn from numpy's ``default_rng(seed)``
    instead, so that the same arguments give the same bytes and the same learning.  ``None``
    keeps akida's own draw.
    """
    n_inputs = _count("n_inputs", n_inputs)
    n_classes = _count("n_classes", n_classes)
    neurons_per_class = _count("neurons_per_class", neurons_per_class)
    if num_weights is None:
        num_weights = default_num_weights(n_inputs)
    num_weights = _count("num_weights", num_weights)
    if num_weights > n_inputs:
        raise UsageError(
            "num_weights is %d; a neuron connects to at most the %d inputs"
            % (num_weights, n_inputs)
        )
    settings = {
        "learning_competition": _fraction("learning_competition", learning_competition),
        "initial_plasticity": _fraction("initial_plasticity", initial_plasticity),
        "min_plasticity": _fraction("min_plasticity", min_plasticity),
        "plasticity_decay": _fraction("plasticity_decay", plasticity_decay),
    }
    if seed is not None:
        seed = _count("seed", seed, 0)
    akida = _akida()
    units = n_classes * neurons_per_class
    model = akida.Model()
    model.add(akida.InputData(input_shape=(1, 1, n_inputs), input_bits=1, name="features"))
    layer = akida.FullyConnected(units=units, weights_bits=1, activation=False, name="classes")
    model.add(layer)
    try:
        model.compile(
            akida.AkidaUnsupervised(num_weights=num_weights, num_classes=n_classes, **settings)
        )
    except (ValueError, IndexError) as e:  # the checks above should leave akida nothing to say
        raise UsageError("akida cannot compile the learning layer: %s" % e)
    if seed is not None:
        layer.set_variable("weights", _initial_weights(n_inputs, units, num_weights, seed))
    return _fbz_bytes(model)


def _fbz_bytes(model) -> bytes:
    # Model.to_buffer() gives the bare flatbuffer, which akida.Model(path) cannot read back:
    # only save() writes the .fbz file format.
    with tempfile.TemporaryDirectory(prefix="kpdev-akida-") as folder:
        path = os.path.join(folder, "model.fbz")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def _initial_weights(n_inputs: int, units: int, num_weights: int, seed: int) -> np.ndarray:
    """Binary weights as akida's compile draws them: ``num_weights`` ones per neuron, at random."""
    rng = np.random.default_rng(seed)
    w = np.zeros((n_inputs, units), np.int8)
    for unit in range(units):
        w[rng.choice(n_inputs, num_weights, replace=False), unit] = 1
    return w.reshape(1, 1, n_inputs, units)
