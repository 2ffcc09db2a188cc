"""Giving up a partial frame of a ``FrameParser`` when the sender goes quiet.

Sans-IO like the parser: the receiver says when its link went quiet, and whether for longer
than the link ever pauses inside a frame (``give_up``).  A module of its own, apart from the
parser, so that a board holds its code in the heap only while it runs: the agent imports it when
the link goes quiet with a partial frame held, and forgets it again.
"""

import struct

from kpdev.protocol.framing import HEADER_SIZE, SYNC, crc32


def _next_header(buf, i):
    # Where the first sync word from ``i`` on starts a whole header that checks, or -1.
    last = len(buf) - HEADER_SIZE
    mv = memoryview(buf)
    while i <= last:
        if buf[i] == SYNC[0] and buf[i + 1] == SYNC[1]:
            if crc32(mv[i : i + 10]) & 0xFFFF == struct.unpack_from("<H", buf, i + 10)[0]:
                return i
        i += 1
    return -1


def resync(parser, give_up):
    """Give up ``parser``'s partial frame if it hides a header, or anyway with ``give_up``.

    Bytes that stop behind another frame's header (a sync word and a valid header check) are
    not the claimed frame's payload but frames of their own.  The parser moves to that header
    (or one byte on, with ``give_up``) and parses afresh, until no stuck frame is left.
    Returns the whole frames found.
    """
    out = []
    while parser.pending():
        pos = parser._pos
        at = _next_header(parser._buf, pos + 1)
        if at < 0:
            if not give_up:
                break
            at = pos + 1
        parser.garbage += at - pos
        parser._pos = at
        out += parser.feed(b"")
    return out
