"""Operation codes, frame flags and error codes: the tables docs/protocol.md documents."""

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


PROTOCOL_VERSION = 1

# Frame flags (header byte 2).  The high nibble carries the protocol version.
FLAG_RESPONSE = const(0x01)
FLAG_ERROR = const(0x02)
FLAG_EVENT = const(0x04)
FLAG_AUTH = const(0x08)

# Operations (header byte 3).
HELLO = const(0x01)
INFO = const(0x02)
PING = const(0x03)
STATS = const(0x04)
REBOOT = const(0x05)

MODEL_BEGIN = const(0x10)
MODEL_CHUNK = const(0x11)
MODEL_COMMIT = const(0x12)
MODEL_ABORT = const(0x13)
MODEL_LIST = const(0x14)
MODEL_INFO = const(0x15)
MODEL_ACTIVATE = const(0x16)
MODEL_DELETE = const(0x17)

INFER = const(0x20)
INFER_BATCH = const(0x21)

# Reserved ranges, filled in by later protocol revisions.
LEARN_FIRST = const(0x30)
LEARN_LAST = const(0x3F)
POWER_FIRST = const(0x40)
POWER_LAST = const(0x4F)
PROFILE_FIRST = const(0x50)
PROFILE_LAST = const(0x5F)

LOG = const(0x70)  # unsolicited event: {"lvl": str, "msg": str}
ERROR = const(0x7F)  # response op of every failure: {"code": int, "msg": str}

OP_NAMES = {
    HELLO: "HELLO",
    INFO: "INFO",
    PING: "PING",
    STATS: "STATS",
    REBOOT: "REBOOT",
    MODEL_BEGIN: "MODEL_BEGIN",
    MODEL_CHUNK: "MODEL_CHUNK",
    MODEL_COMMIT: "MODEL_COMMIT",
    MODEL_ABORT: "MODEL_ABORT",
    MODEL_LIST: "MODEL_LIST",
    MODEL_INFO: "MODEL_INFO",
    MODEL_ACTIVATE: "MODEL_ACTIVATE",
    MODEL_DELETE: "MODEL_DELETE",
    INFER: "INFER",
    INFER_BATCH: "INFER_BATCH",
    LOG: "LOG",
    ERROR: "ERROR",
}


def op_name(op):
    """Name of an operation code, naming the reserved ranges too."""
    name = OP_NAMES.get(op)
    if name:
        return name
    if LEARN_FIRST <= op <= LEARN_LAST:
        return "LEARN(reserved)"
    if POWER_FIRST <= op <= POWER_LAST:
        return "POWER(reserved)"
    if PROFILE_FIRST <= op <= PROFILE_LAST:
        return "PROFILE(reserved)"
    return "0x%02x" % op


# Error codes carried by ERROR frames.  Never renumber: hosts match on them.
E_BAD_CRC = const(1)
E_TOO_LARGE = const(2)
E_MALFORMED = const(3)
E_UNKNOWN_OP = const(4)
E_BAD_REQUEST = const(5)
E_AUTH = const(6)
E_REPLAY = const(7)
E_BUSY = const(8)
E_NOT_IMPLEMENTED = const(9)
E_NO_MODEL = const(16)
E_NO_BACKEND = const(17)
E_BAD_SHAPE = const(18)
E_BAD_DTYPE = const(19)
E_STORAGE_FULL = const(20)
E_CHECKSUM = const(21)
E_UPLOAD_STATE = const(22)
E_MODEL_LOAD = const(23)
E_INFER = const(24)
E_INTERNAL = const(32)

ERROR_NAMES = {
    E_BAD_CRC: "BAD_CRC",
    E_TOO_LARGE: "TOO_LARGE",
    E_MALFORMED: "MALFORMED",
    E_UNKNOWN_OP: "UNKNOWN_OP",
    E_BAD_REQUEST: "BAD_REQUEST",
    E_AUTH: "AUTH",
    E_REPLAY: "REPLAY",
    E_BUSY: "BUSY",
    E_NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    E_NO_MODEL: "NO_MODEL",
    E_NO_BACKEND: "NO_BACKEND",
    E_BAD_SHAPE: "BAD_SHAPE",
    E_BAD_DTYPE: "BAD_DTYPE",
    E_STORAGE_FULL: "STORAGE_FULL",
    E_CHECKSUM: "CHECKSUM",
    E_UPLOAD_STATE: "UPLOAD_STATE",
    E_MODEL_LOAD: "MODEL_LOAD",
    E_INFER: "INFER",
    E_INTERNAL: "INTERNAL",
}


def error_name(code):
    """Name of an error code, or its number when unknown."""
    return ERROR_NAMES.get(code) or str(code)
