"""The load options (model meta keys) each backend's ``load`` reads, by backend name.

The one table of them: the host refuses any other option before an upload (host/packs/deploy.py
``check_load``), and the device refuses it at MODEL_BEGIN (device/upload.py, which imports this
module for that check alone and forgets it after: a board keeps no table resident).
tests/accelerators/test_options.py checks this table against each backend's code.
"""

OPTIONS = {
    "tflite_micro": ("arena_size",),
    "litert": ("threads", "op_resolver"),
    "iree": ("driver", "function"),
    "akida": ("output", "device", "virtual"),
    "tflite_int8": ("kernels", "weights"),
}
