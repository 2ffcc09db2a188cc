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

``FrameParser.feed`` (host) takes any number of bytes and returns the whole frames found; it
keeps the rest.  The agent reads straight into the parser's buffer instead (``space``,
``filled``).  Garbage, a truncated frame or a bad CRC never needs a reconnect: the parser moves
one byte past the bad sync word and looks for the next one.  When the sender goes quiet, the
receiver calls ``FrameParser.resync(give_up)``: a partial frame whose claimed bytes hold another
header is given up at once, any partial frame when the quiet lasted too long for the link.
"""

import struct

from kpdev.protocol.compat import MICROPYTHON, const

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
# The parser's buffer starts this small (most requests are a few dozen bytes), grows at the first
# larger frame to hold the largest one up to _BLOCK (a board's 2 KB frames: allocated once, kept),
# and beyond that only to the frame at hand (a host's 16 MB limit).
_FIRST_SIZE = const(128)
_BLOCK = const(65536)


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

    if not MICROPYTHON:  # for people reading logs and test failures, not on a board's heap

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
    """Sans-IO incremental parser: ``feed(bytes) -> [Frame]``; counts what it rejects.

    It keeps received bytes in one buffer: small at first, grown once to hold the largest
    frame at the first frame that needs more, then kept (a board's heap holds no more than the
    requests it gets need, and a stream of large frames costs no allocation per read).  A reader
    that owns the I/O reads straight into it (``space()``, then ``filled(n)``, as
    ``asyncio.BufferedProtocol`` does with ``get_buffer`` and ``buffer_updated``): while no
    partial frame is held that allocates nothing at all.
    """

    def __init__(self, max_payload=DEFAULT_MAX_PAYLOAD, key=None):
        self.max_payload = max_payload
        self._auth = _authenticator(key)
        self._buf = bytearray(min(max_payload + AUTH_OVERHEAD, _FIRST_SIZE))
        self._mv = memoryview(self._buf)
        self._pos = 0  # the first byte not yet consumed
        self._end = 0  # the end of the bytes received
        self._need = 0  # the size of the frame held in part, once its header has been checked
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
        return self._end - self._pos

    def space(self):
        """Where the next received bytes go: a ``memoryview`` to read into, then ``filled(n)``.

        The whole buffer while nothing is held (the same object every time), else the room
        after the partial frame, which always holds the rest of that frame."""
        if not self._end:
            return self._mv
        return self._mv[self._end :]

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
            while at <= self._end - HEADER_SIZE:
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
            self._need = 0
            out += self.filled(0)
        return out

    if not MICROPYTHON:  # the agent reads into space(); a board's heap keeps no unused code

        def feed(self, data):
            """Add received bytes; return the list of whole frames now available, in order."""
            n = len(data)
            src = memoryview(data)
            out = list(self.filled(0)) if not n else []
            i = 0
            while i < n:
                room = self.space()
                k = min(len(room), n - i)
                room[:k] = src[i : i + k]
                i += k
                out += self.filled(k)
            return out

    def filled(self, n):
        """``n`` bytes were written at the start of ``space()``; returns the whole frames now
        available, in order (an empty tuple when there are none: nothing allocated)."""
        self._end += n
        end = self._end
        pos = self._pos
        out = ()
        if end - pos < self._need:
            return out  # the rest of a frame whose header was checked: nothing to parse yet
        buf = self._buf
        mv = self._mv
        need = 0  # the size of a frame held in part
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
                out = _add(out, Frame(flags, op, rid, None, 0, _E_BAD_REQUEST))
                pos += HEADER_SIZE
                continue
            flags &= 0x0F
            if length > self.max_payload:
                self.oversize += 1
                out = _add(out, Frame(flags, op, rid, None, 0, _E_TOO_LARGE))
                pos += HEADER_SIZE
                continue
            total = HEADER_SIZE + length + CRC_SIZE
            if flags & _FLAG_AUTH:
                total += AUTH_SIZE
            if end - pos < total:
                need = total
                break
            p0 = pos + HEADER_SIZE
            p1 = p0 + length
            if crc32(mv[p0:p1]) & 0xFFFFFFFF != struct.unpack_from("<I", buf, p1)[0]:
                self.crc_errors += 1
                out = _add(out, Frame(flags, op, rid, None, 0, _E_BAD_CRC))
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
            out = _add(out, Frame(flags, op, rid, None if error else payload, counter, error))
            pos += total
        if pos >= end:
            pos = end = 0  # all consumed: the next read starts at the front, nothing moves
        elif pos:
            # Move the partial frame to the front, so the room after it holds the rest
            # (memmove: MicroPython's slice assignment allows overlap).
            end -= pos
            buf[0:end] = mv[pos : pos + end]
            pos = 0
        self._pos = pos
        self._end = end
        self._need = need
        if need > len(buf):
            # A frame larger than the buffer (the one way the buffer can fill: bytes held are
            # less than a header or less than the frame they start): one for the largest frame
            # up to _BLOCK, or for this one.
            new = bytearray(max(need, min(self.max_payload + AUTH_OVERHEAD, _BLOCK)))
            new[0:end] = mv[0:end]
            self._buf = new
            self._mv = memoryview(new)
        return out


def _add(out, frame):
    # The list of frames found, made at the first one (a read that completes none allocates none).
    if not out:
        return [frame]
    out.append(frame)
    return out
