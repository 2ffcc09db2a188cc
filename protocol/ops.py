"""Operation codes, frame flags and error codes: the tables docs/protocol.md documents.

The one list of them: protocol/names.py names them from here, the fuzz test sends every
operation and tests/test_dispatch.py checks that the agent answers each one.  Every upper-case
name is an operation code, except the frame flags ``FLAG_*``, the error codes ``E_*``, the
bounds of the reserved ranges ``*_FIRST`` / ``*_LAST`` and ``PROTOCOL_VERSION``.  Each group of
operations keeps its codes in one range: the agent routes a code to its handler group by range.
"""

from kpdev.protocol.compat import const

# What INFO's ``proto`` says; 2: authenticated frames are bound to a session nonce (HELLO).
# The frames' own version nibble stays 1 (protocol/framing.py).
PROTOCOL_VERSION = 2

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
INFER_INPUT = const(0x22)

# Power measurement (0x40-0x47) and clock (0x48-0x4F); the codes not named here stay reserved.
POWER_ENABLE = const(0x40)
POWER_READ = const(0x41)
POWER_FLOOR = const(0x42)
CLOCK_GET = const(0x48)
CLOCK_SET = const(0x49)

# Knowledge Packs on the device (0x60-0x6F): the pack (pipeline + model graph), classification
# of raw windows, streaming of raw samples with a CLASS_EVENT per window.
PACK_SET = const(0x60)
PACK_GET = const(0x61)
PACK_CLEAR = const(0x62)
CLASSIFY = const(0x63)
STREAM_START = const(0x64)
STREAM_PUSH = const(0x65)
STREAM_STOP = const(0x66)
CLASS_EVENT = const(0x67)  # unsolicited event: one classified window of a stream

# Edge learning on the device (0x30-0x3F): the active pack's learner learns labelled samples,
# keeps them across restarts and hands its learned state back.
LEARN_INFO = const(0x30)
LEARN = const(0x31)
LEARN_ENABLE = const(0x32)
LEARN_ADD_CLASSES = const(0x33)
LEARN_RESET = const(0x34)
LEARN_SAVE = const(0x35)
LEARN_EXPORT = const(0x36)
LEARN_LOAD = const(0x37)

# Per-stage timing of the active pack (0x50-0x5F; the codes not named here stay reserved).
PROFILE_RUN = const(0x50)

# Operations that change nothing on the agent (STATS neither, unless asked to "reset"): a reply
# of theirs too large for the host's limit is refused with ERROR 2 TOO_LARGE.  Any other
# operation's is replaced by {"trimmed": N}: it was carried out, and an ERROR reply always means
# nothing changed (docs/protocol.md §6).  device/agent.py keeps these as bytes (_READ_ONLY).
READ_ONLY = (
    INFO,
    PING,
    MODEL_LIST,
    MODEL_INFO,
    INFER,
    INFER_BATCH,
    LEARN_INFO,
    LEARN_EXPORT,
    POWER_READ,
    POWER_FLOOR,
    CLOCK_GET,
    PROFILE_RUN,
    PACK_GET,
    CLASSIFY,
)

# Reserved ranges, filled in by later protocol revisions (LEARN, POWER, PROFILE, PACK: their
# codes not named above).
LEARN_FIRST = const(0x30)
LEARN_LAST = const(0x3F)
POWER_FIRST = const(0x40)
POWER_LAST = const(0x4F)
PROFILE_FIRST = const(0x50)
PROFILE_LAST = const(0x5F)
PACK_FIRST = const(0x60)
PACK_LAST = const(0x6F)

LOG = const(0x70)  # unsolicited event: {"lvl": str, "msg": str}
ERROR = const(0x7F)  # response op of every failure: {"code": int, "msg": str}

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
E_KEY_REQUIRED = const(10)
E_NO_MODEL = const(16)
E_NO_BACKEND = const(17)
E_BAD_SHAPE = const(18)
E_BAD_DTYPE = const(19)
E_STORAGE_FULL = const(20)
E_CHECKSUM = const(21)
E_UPLOAD_STATE = const(22)
E_MODEL_LOAD = const(23)
E_INFER = const(24)
E_BAD_VALUE = const(25)
E_POWER = const(26)
E_LEARN = const(27)
E_INTERNAL = const(32)
