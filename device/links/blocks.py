"""Reading a stream that does not block in blocks: one poll and one ``readinto`` per block.

Its own module so that a board whose console blocks (every bare-metal port) keeps no code of it.
"""

try:
    import select
except ImportError:
    import uselect as select

from kpdev.device.links.base import LinkClosed

_EAGAIN = 11  # errno.EAGAIN on Linux, the one OS whose streams come here


class BlockReader:
    """Reads what has arrived from a non-blocking stream into the caller's buffer.

    The stream is a pipe whose reader was given ``O_NONBLOCK`` (kpdev's sim launcher) or a tty
    in raw mode with ``VMIN`` 0: one ``readinto`` of the whole buffer returns what has arrived
    (MicroPython's stream layer stops at ``EAGAIN`` or a zero-byte read), where a blocking one
    would wait for the buffer to fill.
    """

    def __init__(self, stream):
        self._stream = stream
        self._poll = select.poll()
        self._poll.register(stream, select.POLLIN)

    def readinto(self, buf, timeout_ms):
        for _ in self._poll.ipoll(timeout_ms):
            break
        else:
            return 0
        try:
            got = self._stream.readinto(buf)
        except OSError as e:
            if e.args and e.args[0] == _EAGAIN:
                return 0  # woken, but another reader took the bytes
            raise LinkClosed("read failed: %s" % e)  # EIO: a pty whose other side hung up
        if got is None:
            return 0  # EAGAIN: nothing there after all
        if not got:
            raise LinkClosed("end of stream")
        return got
