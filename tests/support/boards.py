"""A MicroPython board on a pty, as a board's USB serial appears: the unix port run from a board's
file tree (its cwd the board's flash root, MICROPYPATH the tree's lib only: a board's /lib).

Its REPL serves mpremote's raw REPL (the unix port has one), and ``FakeBoard`` imitates the two
things a board does that the unix port does not: running main.py at boot (``micropython -i
main.py`` falls back to the REPL when main.py returns) and coming back after a soft reset (the
unix port exits on Ctrl-D; the harness prints "soft reboot" and starts it again).
"""

import os
import subprocess
import threading
import time
import tty
from pathlib import Path


def board_env(root):
    """The environment of a board's MicroPython run in ``root`` (its cwd, the board's flash): its
    lib only, no key from the host's env.

    The lib is given relative to ``root``, as a board's ``/lib`` is short: MicroPython keeps
    every module's path in its heap (``__file__``), so an absolute path under pytest's temporary
    folders cost a 64 KB heap kilobytes that grew with the folder's name (``popen-gw1/`` under
    pytest-xdist was enough to tip the keyed 64 KB HELLO into MemoryError).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPDEV_", "MICROPY"))}
    env["MICROPYPATH"] = "lib"
    return env


class FakeBoard:
    """A MicroPython board's USB serial: the unix port on a pty, in ``root`` as its flash."""

    def __init__(self, micropython, root, heap="256K"):
        self.micropython = micropython
        self.root = Path(root)
        self.heap = heap
        self.boots = 0
        self.proc = None
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        # Held open: when the host closes the port, the board keeps its console.
        self.port = os.ttyname(self._slave)
        self._lock = threading.Lock()
        self._closed = False
        self._booted = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._booted.wait(10)

    def _run(self):
        while True:
            with self._lock:
                if self._closed:
                    return
                argv = [self.micropython, "-X", f"heapsize={self.heap}"]
                if (self.root / "main.py").exists():
                    argv += ["-i", "main.py"]  # main.py, then the REPL: a board's boot
                self.proc = subprocess.Popen(
                    argv,
                    cwd=self.root,
                    env=board_env(self.root),
                    stdin=self._master,
                    stdout=self._master,
                    stderr=self._master,  # a board's stderr is its console too
                )
                self.boots += 1
                self._booted.set()
            self.proc.wait()
            with self._lock:
                if self._closed:
                    return
                os.write(self._master, b"MPY: soft reboot\r\n")

    def wait_boots(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while self.boots < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.boots

    def close(self):
        with self._lock:
            self._closed = True
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
        self._thread.join(10)
        if self.proc:
            self.proc.wait()
        os.close(self._master)
        os.close(self._slave)
