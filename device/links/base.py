"""What every link shares: its errors, and readers that return whatever bytes have arrived."""

try:
    import select
except ImportError:
    import uselect as select

from kpdev.protocol.compat import MICROPYTHON
from kpdev.protocol.errors import KpdevError

if not MICROPYTHON:
    import os


class LinkError(KpdevError):
    """A link could not be opened or failed while in use."""


class LinkClosed(LinkError):
    """The other end went away for good (end of stream on stdio or a tty)."""


class PollReader:
    """Reads what is available from a blocking stream: poll, then byte by byte.

    MicroPython's ``readinto`` on a pipe or tty waits until the whole buffer is full, so reading
    more than one byte at a time could wait for bytes that never come.  One byte per call costs
    about a microsecond on the unix port, faster than any UART.  Nothing is allocated per byte:
    ``ipoll`` reuses its result where ``poll`` builds a list and a tuple (96 bytes of garbage a
    byte on the unix port), and the bytes land in a buffer of the size asked for.
    """

    def __init__(self, stream):
        self._stream = stream
        self._poll = select.poll()
        self._poll.register(stream, select.POLLIN)
        self._one = bytearray(1)

    def _ready(self, timeout_ms):
        for _ in self._poll.ipoll(timeout_ms):
            return True
        return False

    def read(self, n, timeout_ms):
        if not self._ready(timeout_ms):
            return b""
        buf = bytearray(n)
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
        return bytes(memoryview(buf)[:i])


if not MICROPYTHON:

    class FdReader:
        """CPython: what is there, up to ``n`` bytes, read into one buffer allocated once.

        ``os.read(fd, n)`` would allocate ``n`` bytes per call, and from about 256 KB (the
        agent asks for a frame's worth) glibc serves each such allocation with mmap: 2-3x the
        cost of the read itself on a pty.  ``poll`` registered once waits for the first byte.
        """

        def __init__(self, fd):
            self._fd = fd
            self._poll = select.poll()
            self._poll.register(fd, select.POLLIN)
            self._buf = bytearray(65536)
            self._view = memoryview(self._buf)

        def read(self, n, timeout_ms):
            if not self._poll.poll(timeout_ms):
                return b""
            view = self._view if n >= len(self._buf) else self._view[:n]
            try:
                got = os.readv(self._fd, [view])
            except OSError as e:  # EIO: a pty whose other side closed
                raise LinkClosed("read failed: %s" % e)
            if not got:
                raise LinkClosed("end of stream")
            return bytes(self._view[:got])


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
