"""Wire protocol shared by host and device: CBOR codec, framing, operations and error codes.

Runs unchanged on MicroPython >= 1.20 and CPython >= 3.10; imports nothing else of kpdev.
"""
