"""The backend registry as the MicroPython agent sees it: what it offers, and its refusal of a
format it has no backend for (tests/accelerators/test_backends.py)."""

import kpdev.accelerators as a

print(repr(a.available()))
print(a.for_format("tflite").name)
try:
    a.for_format("vmfb")
    print("no error")
except Exception as e:
    print(e.code)
    print(str(e))
