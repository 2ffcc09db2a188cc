"""Why the agent refuses a frame or an operation: the ERROR replies that no handler gives.

Imported by the first refusal: an agent on a sound link, asked only what it knows, never holds
this in RAM.
"""

from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_LEARN_FIRST = const(0x30)
_LEARN_LAST = const(0x3F)
_POWER_FIRST = const(0x40)
_POWER_LAST = const(0x4F)
_PROFILE_FIRST = const(0x50)
_PROFILE_LAST = const(0x5F)
_PACK_FIRST = const(0x60)
_PACK_LAST = const(0x6F)
_E_BAD_CRC = const(1)
_E_TOO_LARGE = const(2)
_E_UNKNOWN_OP = const(4)
_E_BAD_REQUEST = const(5)
_E_AUTH = const(6)
_E_REPLAY = const(7)
_E_NOT_IMPLEMENTED = const(9)
_E_KEY_REQUIRED = const(10)

# FrameParser's error code -> what the ERROR reply says.
_FRAME_ERRORS = {
    _E_BAD_CRC: "payload CRC mismatch: frame dropped, send it again",
    _E_TOO_LARGE: "frame payload larger than the negotiated maximum",
    _E_AUTH: "frame tag does not match: the sender uses a different key (or another session)",
    _E_KEY_REQUIRED: "frame not authenticated: this device requires a key",
    _E_REPLAY: "replay dropped: counter not above the last one, or before this session's HELLO",
    _E_BAD_REQUEST: "unsupported protocol version",
}


def frame_error(code):
    """The message of the ERROR reply to a frame the parser refused with ``code``."""
    return _FRAME_ERRORS.get(code, "bad frame")


def unknown_operation(op):
    """The DeviceError for an operation code that has no handler."""
    # Reserved ranges get their own code, so a host can tell "not yet" from "never".  The POWER
    # operations the agent has (POWER_ENABLE ... CLOCK_SET) are in its table and never get here:
    # only the range's unused codes do.
    if _LEARN_FIRST <= op <= _LEARN_LAST:
        group = "LEARN"
    elif _POWER_FIRST <= op <= _POWER_LAST:
        group = "POWER"
    elif _PROFILE_FIRST <= op <= _PROFILE_LAST:
        group = "PROFILE"
    elif _PACK_FIRST <= op <= _PACK_LAST:
        group = "PACK"
    else:
        return DeviceError("unknown operation 0x%02x" % op, _E_UNKNOWN_OP)
    return DeviceError(
        "%s operation 0x%02x is reserved for a later protocol revision" % (group, op),
        _E_NOT_IMPLEMENTED,
    )
