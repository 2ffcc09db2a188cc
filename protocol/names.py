"""Names of operations and error codes, for host messages and docs.

Kept out of ops.py so a device does not hold these tables in RAM.
"""

from kpdev.protocol import ops
from kpdev.protocol.ops import (
    CLASS_EVENT,
    ERROR,
    LEARN_FIRST,
    LEARN_LAST,
    LOG,
    PACK_FIRST,
    PACK_LAST,
    POWER_FIRST,
    POWER_LAST,
    PROFILE_FIRST,
    PROFILE_LAST,
)


def _is_op(name):
    # ops.py's rule: every upper-case name is an operation code, but for the frame flags, the
    # error codes, the bounds of the reserved ranges, the protocol version and READ_ONLY.
    if not name.isupper() or name in ("PROTOCOL_VERSION", "READ_ONLY"):
        return False
    if name.startswith("FLAG_") or name.startswith("E_"):
        return False
    return not (name.endswith("_FIRST") or name.endswith("_LAST"))


# Code -> name of every operation and error code of ops.py, derived from it.
OP_NAMES = {getattr(ops, n): n for n in dir(ops) if _is_op(n)}
ERROR_NAMES = {getattr(ops, n): n[2:] for n in dir(ops) if n.startswith("E_")}
# Operations only the agent sends; every other one is a request the agent answers.
EVENTS = (CLASS_EVENT, LOG, ERROR)
REQUESTS = tuple(sorted(op for op in OP_NAMES if op not in EVENTS))


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


def error_name(code):
    """Name of an error code, or its number when unknown."""
    return ERROR_NAMES.get(code) or str(code)
