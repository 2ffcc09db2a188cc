"""The process's stdin/stdout as a link."""

import sys

from kpdev.device.links import base
from kpdev.protocol.compat import MICROPYTHON

if not MICROPYTHON:
    import os


class StdioLink(base.StreamLink):
    """The process's stdin/stdout, e.g. pipes from the host or a pty given as stdio."""

    name = "stdio"

    def __init__(self):
        if not MICROPYTHON:
            # Keep the framed stream clean: fd 1 becomes private to the link and anything else
            # printed (by us or by a native library) goes to stderr.
            self._wfd = os.dup(1)
            os.dup2(2, 1)
            sys.stdout = sys.stderr
            self._reader = base.FdReader(0)
        else:
            self._out = sys.stdout.buffer
            # A launcher that gave the unix port a non-blocking stdin says so in the environment
            # (the port can neither set O_NONBLOCK nor ask); bare-metal ports have no getenv.
            try:
                import os as _os

                blocks = _os.getenv(base.NONBLOCKING_STDIN) == "1"
            except (ImportError, AttributeError):
                blocks = False
            self._reader = base.PollReader(sys.stdin.buffer, blocks)
            # A 0x03 byte inside a frame must not raise KeyboardInterrupt on a board's USB
            # console; the agent gives the console back on two Ctrl-C outside any frame.
            try:
                import micropython

                micropython.kbd_intr(-1)
            except (ImportError, AttributeError):
                pass

    def close(self):
        """Give Ctrl-C back to the console (stdio itself belongs to the process)."""
        if MICROPYTHON:
            try:
                import micropython

                micropython.kbd_intr(3)
            except (ImportError, AttributeError):
                pass
