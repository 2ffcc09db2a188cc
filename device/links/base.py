"""What every link shares: its errors, and readers that return whatever bytes have arrived."""

try:
    import select
except ImportError:
    import uselect as select

from kpdev.protocol.compat import MICROPYTHON
from kpdev.protocol.errors import KpdevError

if not MICROPYTHON:
    import os


_EAGAIN = 11  # errno.EAGAIN on Linux, the one OS whose non-blocking streams come here

# Set by a launcher (host/boards/sim.py) that gave the agent a non-blocking stdin: the unix port
# can neither set O_NONBLOCK itself nor ask whether it is set.
NONBLOCKING_STDIN = "KPDEV_NONBLOCKING_STDIN"


class LinkError(KpdevError):
    """A link could not be opened or failed while in use."""


class LinkClosed(LinkError):
    """The other end went away for good (end of stream on stdio or a tty)."""


class PollReader:
    """Reads what is available from a stream into the caller's buffer: poll, then a block or
    byte by byte.  Nothing is allocated per read.

    ``blocks``: the stream does not block (a pipe whose reader was given ``O_NONBLOCK`` by
    kpdev's sim launcher, a tty in raw mode with ``VMIN`` 0), so one ``readinto`` of the whole
    buffer returns what has arrived (MicroPython's stream layer stops at ``EAGAIN`` or a
    zero-byte read): one poll and one ``readinto`` per block.

    Otherwise the stream blocks: MicroPython's ``readinto`` on a pipe, a tty or a bare-metal
    board's stdin waits until the whole buffer is full, so reading more than one byte at a time
    could wait for bytes that never come (a sender that stops inside a frame).  Then it reads
    byte by byte, polling between bytes (``ipoll`` reuses its result where ``poll`` builds a
    list and a tuple).
    """

    def __init__(self, stream, blocks=False):
        self._stream = stream
        self._poll = select.poll()
        self._poll.register(stream, select.POLLIN)
        self._blocks = blocks
        self._one = bytearray(1)

    def _ready(self, timeout_ms):
        for _ in self._poll.ipoll(timeout_ms):
            return True
        return False

    def readinto(self, buf, timeout_ms):
        if not self._ready(timeout_ms):
            return 0
        stream = self._stream  # called as stream.readinto: no bound method made per read
        if self._blocks:
            try:
                got = stream.readinto(buf)
            except OSError as e:
                if e.args and e.args[0] == _EAGAIN:
                    return 0  # woken, but another reader took the bytes
                raise LinkClosed("read failed: %s" % e)  # EIO: a pty whose other side hung up
            if got is None:
                return 0  # EAGAIN: nothing there after all
            if not got:
                raise LinkClosed("end of stream")
            return got
        one = self._one
        n = len(buf)
        i = 0
        while i < n:
            try:
                got = stream.readinto(one)
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
        return i


if not MICROPYTHON:

    class FdReader:
        """CPython: what is there, into the caller's buffer (``os.readv``: no allocation per
        read; ``os.read(fd, n)`` would allocate ``n`` bytes per call, and from about 256 KB glibc
        serves each such allocation with mmap).  ``poll`` registered once waits for the first
        byte.
        """

        def __init__(self, fd):
            self._fd = fd
            self._poll = select.poll()
            self._poll.register(fd, select.POLLIN)

        def readinto(self, buf, timeout_ms):
            if not self._poll.poll(timeout_ms):
                return 0
            try:
                got = os.readv(self._fd, [buf])
            except OSError as e:  # EIO: a pty whose other side closed
                raise LinkClosed("read failed: %s" % e)
            if not got:
                raise LinkClosed("end of stream")
            return got


class StreamLink:
    """A link over a reader and a writer: a file descriptor on CPython, a stream on MicroPython.

    Subclasses set ``_reader`` and either ``_wfd`` (CPython) or ``_out`` (MicroPython).
    """

    def readinto(self, buf, timeout_ms=1000):
        """What has arrived, up to ``len(buf)`` bytes, into ``buf``; 0 after the timeout."""
        return self._reader.readinto(buf, timeout_ms)

    def write(self, data):
        """Write all of ``data``."""
        if not MICROPYTHON:
            mv = memoryview(data)
            while mv:
                mv = mv[os.write(self._wfd, mv) :]
        else:
            self._out.write(data)
