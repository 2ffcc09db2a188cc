"""What every link shares: its errors, and readers that return whatever bytes have arrived."""

try:
    import select
except ImportError:
    import uselect as select

from kpdev.protocol.compat import MICROPYTHON
from kpdev.protocol.errors import KpdevError

if not MICROPYTHON:
    import os


try:
    from errno import EAGAIN as _EAGAIN
except ImportError:
    _EAGAIN = 11

# Set by a launcher (host/boards/sim.py) that gave the agent a non-blocking stdin: the unix port
# can neither set O_NONBLOCK itself nor ask whether it is set.
NONBLOCKING_STDIN = "KPDEV_NONBLOCKING_STDIN"


class LinkError(KpdevError):
    """A link could not be opened or failed while in use."""


class LinkClosed(LinkError):
    """The other end went away for good (end of stream on stdio or a tty)."""


class PollReader:
    """Reads what is available from a stream: poll, then a block or byte by byte.

    ``blocks``: the stream is non-blocking (a pipe whose reader was given ``O_NONBLOCK``, a tty
    in raw mode with ``VMIN`` 0), so ``readinto`` of a whole block returns what has arrived
    (MicroPython's stream layer stops at ``EAGAIN`` or a zero-byte read).  The block lands in a
    buffer allocated at the first read and reused after, and costs one ``readinto`` and one poll
    per block instead of per byte.

    Otherwise the stream blocks: MicroPython's ``readinto`` on a pipe, a tty or a bare-metal
    board's stdin waits until the whole buffer is full, so reading more than one byte at a time
    could wait for bytes that never come (a sender that stops inside a frame).  Then it reads
    byte by byte, polling between bytes.  Nothing is allocated per byte: ``ipoll`` reuses its
    result where ``poll`` builds a list and a tuple, and the bytes land in the same buffer.
    """

    def __init__(self, stream, blocks=False):
        self._stream = stream
        self._poll = select.poll()
        self._poll.register(stream, select.POLLIN)
        self._blocks = blocks
        self._buf = bytearray(0)  # grown once to the largest read asked for, then reused
        self._mv = memoryview(self._buf)
        self._one = bytearray(1)

    def _ready(self, timeout_ms):
        for _ in self._poll.ipoll(timeout_ms):
            return True
        return False

    def _buffer(self, n):
        if len(self._buf) < n:
            self._buf = bytearray(n)
            self._mv = memoryview(self._buf)
        return self._mv

    def read(self, n, timeout_ms):
        if not self._ready(timeout_ms):
            return b""
        mv = self._buffer(n)
        if self._blocks:
            try:
                got = self._stream.readinto(mv[:n] if n < len(mv) else mv)
            except OSError as e:
                if e.args and e.args[0] == _EAGAIN:
                    return b""  # woken, but another reader took the bytes
                raise LinkClosed("read failed: %s" % e)  # EIO: a pty whose other side hung up
            if got is None:
                return b""  # EAGAIN: nothing there after all
            if not got:
                raise LinkClosed("end of stream")
            return bytes(mv[:got])
        buf = self._buf
        one = self._one
        readinto = self._stream.readinto
        i = 0
        while i < n:
            try:
                got = readinto(one)
            except OSError as e:  # EIO: a pty whose other side hung up
                raise LinkClosed("read failed: %s" % e)
            if not got:
                if not i:
                    raise LinkClosed("end of stream")
                break
            buf[i] = one[0]
            i += 1
            if not self._ready(0):
                break
        return bytes(mv[:i])


if not MICROPYTHON:

    class FdReader:
        """CPython: ``os.read`` returns whatever is there, up to ``n`` bytes."""

        def __init__(self, fd):
            self._fd = fd

        def read(self, n, timeout_ms):
            ready, _, _ = select.select([self._fd], [], [], timeout_ms / 1000.0)
            if not ready:
                return b""
            try:
                data = os.read(self._fd, n)
            except OSError as e:  # EIO: a pty whose other side closed
                raise LinkClosed("read failed: %s" % e)
            if not data:
                raise LinkClosed("end of stream")
            return data


class StreamLink:
    """A link over a reader and a writer: a file descriptor on CPython, a stream on MicroPython.

    Subclasses set ``_reader`` and either ``_wfd`` (CPython) or ``_out`` (MicroPython).
    """

    def read(self, n, timeout_ms=1000):
        """Up to ``n`` bytes; empty when nothing arrived within the timeout."""
        return self._reader.read(n, timeout_ms)

    def write(self, data):
        """Write all of ``data``."""
        if not MICROPYTHON:
            mv = memoryview(data)
            while mv:
                mv = mv[os.write(self._wfd, mv) :]
        else:
            self._out.write(data)
