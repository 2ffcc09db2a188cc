"""A serial device or pty by path, in raw mode."""

from kpdev.device.links import base
from kpdev.device.links.base import LinkError
from kpdev.protocol.compat import MICROPYTHON

if not MICROPYTHON:
    import os


def _no_wait(cc):
    """Set VMIN and VTIME to 0 in a termios ``cc`` list, so a read returns what has arrived (and
    MicroPython's ``readinto`` of a block with it); False where their places are not known.

    MicroPython's termios names neither; these are Linux's places."""
    import sys

    if sys.platform != "linux" or len(cc) < 7:
        return False
    cc[6] = 0  # VMIN
    cc[5] = 0  # VTIME
    return True


class TtyLink(base.StreamLink):
    """A serial device or pty by path, put in raw mode with termios."""

    def __init__(self, path, baud=115200):
        self.name = path
        # The longest pause inside a frame: four character times, plus USB and OS latency.
        self.gap_ms = 50 + 40000 // baud
        try:
            import termios
        except ImportError:
            raise LinkError("this runtime has no termios: use uart:ID for a board UART")
        if not MICROPYTHON:
            import tty

            self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(self._fd)
            attrs = termios.tcgetattr(self._fd)
            speed = getattr(termios, "B%d" % baud, None)
            if speed is not None:
                attrs[4] = attrs[5] = speed
                termios.tcsetattr(self._fd, termios.TCSANOW, attrs)
            self._reader = base.FdReader(self._fd)
            self._wfd = self._fd
        else:
            self._f = open(path, "r+b")
            fd = self._f.fileno()
            termios.setraw(fd)
            attrs = termios.tcgetattr(fd)
            speed = getattr(termios, "B%d" % baud, None)
            if speed is not None:
                attrs[4] = attrs[5] = speed
            blocks = _no_wait(attrs[6])
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
            self._reader = base.PollReader(self._f, blocks)
            self._out = self._f

    def close(self):
        """Close the device."""
        if not MICROPYTHON:
            os.close(self._fd)
        else:
            self._f.close()
