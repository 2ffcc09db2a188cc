"""The load options (model meta keys) each backend's ``load`` reads, by backend name.

The host refuses any other option before an upload (host/packs/deploy.py ``check_load``), and
tests/accelerators/test_options.py checks this table against each backend's code.  Only the host
imports this module: on a board the table would cost RAM for nothing (the device never checks
options; a backend ignores a key it does not read).
"""

OPTIONS = {
    "tflite_micro": ("arena_size",),
    "litert": ("threads", "op_resolver"),
    "iree": ("driver", "function"),
    "akida": ("output", "device", "virtual"),
    "tflite_int8": ("kernels", "weights"),
}
