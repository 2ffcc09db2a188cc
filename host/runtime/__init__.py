"""The host's own runtimes: a model or a pack run in-process as a device would run it.

- ``reference``: the host reference runtime, the device's own Linux backends run in-process
  (pack building needs each model's tensors and outputs).
- ``emulate``: a whole pack (numpy pipeline, then the models) as the device's CLASSIFY answers.
- ``modelgen``: small int8 ``.tflite`` models from numpy weights (tflite-micro's model editor),
  for examples, benchmarks and tests.
"""
