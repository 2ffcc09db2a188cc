"""Regenerate the small test models in this folder: ``python tests/data/make_models.py``.

Every model is built by ``kpdev.host.runtime.modelgen`` from a fixed seed, so running this again
writes the same bytes (tests check that it does).
"""

import os

from kpdev.host.runtime import modelgen

HERE = os.path.dirname(os.path.abspath(__file__))

# File name -> builder.
MODELS = {
    "dense_int8.tflite": lambda: modelgen.dense_int8(inputs=16, hidden=32, outputs=4, seed=0),
    "dense_float_io.tflite": lambda: modelgen.dense_int8(
        inputs=16, hidden=32, outputs=4, seed=0, float_io=True
    ),
    "conv_int8.tflite": lambda: modelgen.conv_int8(
        height=16, width=16, channels=1, filters=8, outputs=4, seed=0
    ),
}


def main():
    for name, build in MODELS.items():
        data = build()
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        print("%-24s %6d bytes" % (name, len(data)))


if __name__ == "__main__":
    main()
