"""Frames for byte streams, and the sans-IO parser that finds them.

Layout (little-endian; docs/protocol.md has the full table)::

    0  2  sync      A5 4B
    2  1  flags     low nibble RESPONSE|ERROR|EVENT|AUTH, high nibble protocol version
    3  1  op        operation code
    4  2  id        request id (responses and errors echo it; events use 0)
    6  4  length    payload bytes
    10 2  hcheck    CRC-32 of bytes 0..9, low 16 bits
    12 n  payload   one CBOR item
    .. 4  crc       CRC-32 of the payload
    (AUTH only)
    .. 8  counter   u64, strictly increasing per sender
    .. 16 tag       HMAC-SHA256(key, nonce + header + payload + counter), first 16 bytes

``nonce`` is the session's, from the agent's HELLO reply (empty before it, and always for a HELLO
request): a frame of another session or an earlier boot never authenticates.

``FrameParser.feed`` takes any number of bytes and returns the whole frames found; it keeps the
rest.  Garbage, a truncated frame or a bad CRC never needs a reconnect: the parser moves one byte
past the bad sync word and looks for the next one.  When the sender goes quiet, the receiver
calls ``FrameParser.resync(give_up)``: a partial frame whose claimed bytes hold another header
is given up at once, any partial frame when the quiet lasted too long for the link.
"""

import struct

from kpdev.protocol.compat import const

try:
    from binascii import crc32
except ImportError:  # ports built without binascii.crc32
    crc32 = None

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_FRAME_VERSION = const(1)  # the header's version nibble (INFO's ``proto`` is ops.PROTOCOL_VERSION)
_FLAG_RESPONSE = const(0x01)
_FLAG_AUTH = const(0x08)
_HELLO = const(0x01)
_E_BAD_CRC = const(1)
_E_TOO_LARGE = const(2)
_E_BAD_REQUEST = const(5)
_E_AUTH = const(6)
_E_REPLAY = const(7)
_E_KEY_REQUIRED = const(10)

SYNC = b"\xa5\x4b"
_SYNC0 = const(0xA5)
_SYNC1 = const(0x4B)
HEADER_SIZE = const(12)
CRC_SIZE = const(4)
COUNTER_SIZE = const(8)
TAG_SIZE = const(16)
AUTH_SIZE = const(24)
VERSION_BITS = _FRAME_VERSION << 4
# Until HELLO negotiates more, both sides accept payloads of this size.
DEFAULT_MAX_PAYLOAD = const(1024)
# Frame overhead without and with authentication.
OVERHEAD = HEADER_SIZE + CRC_SIZE
AUTH_OVERHEAD = HEADER_SIZE + CRC_SIZE + AUTH_SIZE


if crc32 is None:
    _TABLE = []
    for _i in range(256):
        _c = _i
        for _ in range(8):
            _c = (_c >> 1) ^ 0xEDB88320 if _c & 1 else _c >> 1
        _TABLE.append(_c)

    def crc32(data, value=0):
        c = value ^ 0xFFFFFFFF
        for b in data:
            c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
        return c ^ 0xFFFFFFFF


def _authenticator(key):
    # The HMAC code loads only when frames are authenticated: on a board, code is heap.
    if not key:
        return None
    from kpdev.protocol.auth import Authenticator

    return Authenticator(key)


class Frame:
    """One received frame; ``error`` is an error code when the frame could not be accepted."""

    __slots__ = ("flags", "op", "rid", "payload", "counter", "error")

    def __init__(self, flags, op, rid, payload, counter=0, error=0):
        self.flags = flags
        self.op = op
        self.rid = rid
        self.payload = payload
        self.counter = counter
        self.error = error

    def __repr__(self):
        return "Frame(op=0x%02x, rid=%d, flags=0x%02x, %d bytes, error=%d)" % (
            self.op,
            self.rid,
            self.flags,
            len(self.payload or b""),
            self.error,
        )


class FrameWriter:
    """Builds frames; with a key it signs each one with the next counter value and ``nonce``."""

    def __init__(self, key=None, counter=0):
        self._auth = _authenticator(key)
        self.counter = counter
        self.nonce = b""  # the session's nonce, which every tag covers (set after HELLO)

    def pack(self, op, rid, payload, flags=0):
        """Whole frame bytes for one payload."""
        if self._auth:
            flags |= _FLAG_AUTH
        else:
            flags &= ~_FLAG_AUTH
        head = struct.pack("<BBBBHI", _SYNC0, _SYNC1, VERSION_BITS | flags, op, rid, len(payload))
        head += struct.pack("<H", crc32(head) & 0xFFFF)
        parts = [head, payload, struct.pack("<I", crc32(payload) & 0xFFFFFFFF)]
        if self._auth:
            self.counter += 1
            counter = struct.pack("<Q", self.counter)
            parts.append(counter)
            parts.append(self._auth.tag(self.nonce, head, payload, counter))
        return b"".join(parts)


class FrameParser:
    """Sans-IO incremental parser: ``feed(bytes) -> [Frame]``; counts what it rejects."""

    def __init__(self, max_payload=DEFAULT_MAX_PAYLOAD, key=None):
        self.max_payload = max_payload
        self._auth = _authenticator(key)
        self._buf = bytearray()
        self._pos = 0
        self.last_counter = 0
        # The session's nonce, which the tag of every frame but a HELLO request covers.  None:
        # no session yet (an agent before HELLO), so HELLO is the one frame that can authenticate.
        self.nonce = b""
        self.garbage = 0  # bytes skipped while looking for a sync word
        self.header_errors = 0
        self.crc_errors = 0
        self.oversize = 0
        self.auth_failures = 0
        self.replays = 0

    def pending(self):
        """Bytes held that do not yet make a whole frame."""
        return len(self._buf) - self._pos

    def resync(self, give_up=True):
        """The sender went quiet while a partial frame is held; returns the frames then found.

        The partial frame is given up at once when its claimed bytes hold another frame's header
        (a sync word and a valid header check): bytes that stop there are not its payload but
        frames of their own.  With ``give_up`` (quiet for longer than the link ever pauses
        inside a frame) it is given up in any case.  Either way the parser rescans from there,
        so whole frames held behind it are found, and so on until none is stuck.
        """
        out = []
        while self.pending():
            buf = self._buf
            pos = self._pos
            at = pos + 1
            while at <= len(buf) - HEADER_SIZE:
                if buf[at] == _SYNC0 and buf[at + 1] == _SYNC1:
                    head = crc32(memoryview(buf)[at : at + 10]) & 0xFFFF
                    if head == struct.unpack_from("<H", buf, at + 10)[0]:
                        break
                at += 1
            else:
                if not give_up:
                    break
                at = pos + 1
            self.garbage += at - pos
            self._pos = at
            out += self.feed(b"")
        return out

    def feed(self, data):
        """Add received bytes; return the list of whole frames now available, in order."""
        buf = self._buf
        if not buf:
            # Nothing held (the usual case): read the frames in ``data`` where it is, and keep
            # only what is left of it.
            buf = data or buf
        elif data:
            buf.extend(data)
        out = []
        end = len(buf)
        pos = self._pos
        mv = memoryview(buf)
        while end - pos >= 2:
            if buf[pos] != _SYNC0 or buf[pos + 1] != _SYNC1:
                i = pos + 1
                while i < end and buf[i] != _SYNC0:
                    i += 1
                self.garbage += i - pos
                pos = i
                continue
            if end - pos < HEADER_SIZE:
                break
            if crc32(mv[pos : pos + 10]) & 0xFFFF != struct.unpack_from("<H", buf, pos + 10)[0]:
                self.header_errors += 1
                self.garbage += 1
                pos += 1
                continue
            flags, op, rid, length = struct.unpack_from("<BBHI", buf, pos + 2)
            if flags & 0xF0 != VERSION_BITS:
                out.append(Frame(flags, op, rid, None, 0, _E_BAD_REQUEST))
                pos += HEADER_SIZE
                continue
            flags &= 0x0F
            if length > self.max_payload:
                self.oversize += 1
                out.append(Frame(flags, op, rid, None, 0, _E_TOO_LARGE))
                pos += HEADER_SIZE
                continue
            total = HEADER_SIZE + length + CRC_SIZE
            if flags & _FLAG_AUTH:
                total += AUTH_SIZE
            if end - pos < total:
                break
            p0 = pos + HEADER_SIZE
            p1 = p0 + length
            if crc32(mv[p0:p1]) & 0xFFFFFFFF != struct.unpack_from("<I", buf, p1)[0]:
                self.crc_errors += 1
                out.append(Frame(flags, op, rid, None, 0, _E_BAD_CRC))
                pos += 2  # the length may be the corrupted part: rescan from here
                continue
            payload = bytes(mv[p0:p1])
            counter = 0
            error = 0
            if self._auth:
                if not flags & _FLAG_AUTH:
                    error = _E_KEY_REQUIRED  # no trailer: the sender holds no key
                else:
                    c0 = p1 + CRC_SIZE
                    counter = struct.unpack_from("<Q", buf, c0)[0]
                    nonce = self.nonce
                    if op == _HELLO and not flags & _FLAG_RESPONSE:
                        nonce = b""  # HELLO starts a session: it cannot carry one
                    if nonce is None:
                        error = _E_REPLAY  # before HELLO: a frame of an earlier session or boot
                    elif not self._auth.check(
                        nonce,
                        mv[pos:p0],
                        mv[p0:p1],
                        mv[c0 : c0 + COUNTER_SIZE],
                        mv[c0 + COUNTER_SIZE : c0 + AUTH_SIZE],
                    ):
                        error = _E_AUTH
                    elif counter <= self.last_counter:
                        error = _E_REPLAY
                    else:
                        self.last_counter = counter
                if error == _E_REPLAY:
                    self.replays += 1
                elif error:
                    self.auth_failures += 1
            out.append(Frame(flags, op, rid, None if error else payload, counter, error))
            pos += total
        # Drop consumed bytes; MicroPython's bytearray has no slice deletion.
        if buf is not self._buf:
            if pos < end:
                self._buf = bytearray(mv[pos:end])  # a copy: ``data`` is the caller's
            pos = 0
        elif pos:
            if pos >= end:
                self._buf = bytearray()
            else:
                self._buf = bytearray(mv[pos:end])
            pos = 0
        self._pos = pos
        return out
