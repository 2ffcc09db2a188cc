"""Names of operations and error codes, for host messages and docs.

Kept out of ops.py so a device does not hold these tables in RAM.
"""

from kpdev.protocol.ops import (
    CLASS_EVENT,
    CLASSIFY,
    CLOCK_GET,
    CLOCK_SET,
    E_AUTH,
    E_BAD_CRC,
    E_BAD_DTYPE,
    E_BAD_REQUEST,
    E_BAD_SHAPE,
    E_BAD_VALUE,
    E_BUSY,
    E_CHECKSUM,
    E_INFER,
    E_INTERNAL,
    E_LEARN,
    E_MALFORMED,
    E_MODEL_LOAD,
    E_NO_BACKEND,
    E_NO_MODEL,
    E_NOT_IMPLEMENTED,
    E_POWER,
    E_REPLAY,
    E_STORAGE_FULL,
    E_TOO_LARGE,
    E_UNKNOWN_OP,
    E_UPLOAD_STATE,
    ERROR,
    HELLO,
    INFER,
    INFER_BATCH,
    INFO,
    LEARN,
    LEARN_ADD_CLASSES,
    LEARN_ENABLE,
    LEARN_EXPORT,
    LEARN_FIRST,
    LEARN_INFO,
    LEARN_LAST,
    LEARN_LOAD,
    LEARN_RESET,
    LEARN_SAVE,
    LOG,
    MODEL_ABORT,
    MODEL_ACTIVATE,
    MODEL_BEGIN,
    MODEL_CHUNK,
    MODEL_COMMIT,
    MODEL_DELETE,
    MODEL_INFO,
    MODEL_LIST,
    PACK_CLEAR,
    PACK_FIRST,
    PACK_GET,
    PACK_LAST,
    PACK_SET,
    PING,
    POWER_ENABLE,
    POWER_FIRST,
    POWER_FLOOR,
    POWER_LAST,
    POWER_READ,
    PROFILE_FIRST,
    PROFILE_LAST,
    PROFILE_RUN,
    REBOOT,
    STATS,
    STREAM_PUSH,
    STREAM_START,
    STREAM_STOP,
)

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
    POWER_ENABLE: "POWER_ENABLE",
    POWER_READ: "POWER_READ",
    POWER_FLOOR: "POWER_FLOOR",
    CLOCK_GET: "CLOCK_GET",
    CLOCK_SET: "CLOCK_SET",
    PROFILE_RUN: "PROFILE_RUN",
    PACK_SET: "PACK_SET",
    PACK_GET: "PACK_GET",
    PACK_CLEAR: "PACK_CLEAR",
    CLASSIFY: "CLASSIFY",
    STREAM_START: "STREAM_START",
    STREAM_PUSH: "STREAM_PUSH",
    STREAM_STOP: "STREAM_STOP",
    CLASS_EVENT: "CLASS_EVENT",
    LEARN_INFO: "LEARN_INFO",
    LEARN: "LEARN",
    LEARN_ENABLE: "LEARN_ENABLE",
    LEARN_ADD_CLASSES: "LEARN_ADD_CLASSES",
    LEARN_RESET: "LEARN_RESET",
    LEARN_SAVE: "LEARN_SAVE",
    LEARN_EXPORT: "LEARN_EXPORT",
    LEARN_LOAD: "LEARN_LOAD",
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
    if PACK_FIRST <= op <= PACK_LAST:
        return "PACK(reserved)"
    return "0x%02x" % op


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
    E_BAD_VALUE: "BAD_VALUE",
    E_POWER: "POWER",
    E_LEARN: "LEARN",
    E_INTERNAL: "INTERNAL",
}


def error_name(code):
    """Name of an error code, or its number when unknown."""
    return ERROR_NAMES.get(code) or str(code)
