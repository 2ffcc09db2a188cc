"""The one error hierarchy of kpdev; every project error derives from ``KpdevError``.

Single inheritance only (MicroPython rejects a class with two built-in bases).
"""


class KpdevError(Exception):
    """Root of every error kpdev raises on purpose."""

    code = 32  # E_INTERNAL unless a subclass or the raiser says otherwise

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self):
        return self.message


class ProtocolError(KpdevError):
    """Bytes that do not follow the kpdev wire protocol (framing, CBOR, fields)."""


class DecodeError(ProtocolError):
    """Malformed or unsupported CBOR."""

    code = 3


class EncodeError(ProtocolError):
    """A value the CBOR codec cannot encode."""

    code = 5


class DeviceError(KpdevError):
    """An operation the device refused or failed; ``code`` is from the error table."""
