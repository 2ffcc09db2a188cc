"""Links: byte pipes the agent serves on.  Nothing here knows about frames or CBOR.

Every link offers ``read(n, timeout_ms) -> bytes`` (empty on timeout, ``LinkClosed`` at end of
stream), ``write(data)`` and ``close()``.  ``open_link(spec)`` picks one from a spec string:
``stdio``, ``tcp://HOST:PORT``, ``uart:ID[:BAUD]`` (``machine.UART``) or a tty path
(``/dev/ttyS0[:BAUD]``).
"""

import sys

try:
    import select
except ImportError:
    import uselect as select

from kpdev.protocol.errors import KpdevError

CPYTHON = sys.implementation.name == "cpython"
if CPYTHON:
    import os


class LinkError(KpdevError):
    """A link could not be opened or failed while in use."""


class LinkClosed(LinkError):
    """The other end went away for good (end of stream on stdio or a tty)."""


class _PollReader:
    """Reads what is available from a blocking stream: poll, then byte by byte.

    MicroPython's ``readinto`` on a pipe or tty waits until the whole buffer is full, so reading
    more than one byte at a time could wait for bytes that never come.  One byte per call costs
    about a microsecond on the unix port, faster than any UART.
    """

    def __init__(self, stream):
        self._stream = stream
        self._poll = select.poll()
        self._poll.register(stream, select.POLLIN)
        self._one = bytearray(1)

    def read(self, n, timeout_ms):
        poll = self._poll.poll
        events = poll(timeout_ms)
        if not events:
            return b""
        out = bytearray()
        one = self._one
        readinto = self._stream.readinto
        while len(out) < n:
            if not readinto(one):
                if not out:
                    raise LinkClosed("end of stream")
                break
            out.append(one[0])
            if not poll(0):
                break
        return bytes(out)


class _FdReader:
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


class StdioLink:
    """The process's stdin/stdout, e.g. pipes from the host or a pty given as stdio."""

    name = "stdio"

    def __init__(self):
        if CPYTHON:
            # Keep the framed stream clean: fd 1 becomes private to the link and anything else
            # printed (by us or by a native library) goes to stderr.
            self._wfd = os.dup(1)
            os.dup2(2, 1)
            sys.stdout = sys.stderr
            self._reader = _FdReader(0)
        else:
            self._out = sys.stdout.buffer
            self._reader = _PollReader(sys.stdin.buffer)

    def read(self, n, timeout_ms=1000):
        """Up to ``n`` bytes; empty when nothing arrived within the timeout."""
        return self._reader.read(n, timeout_ms)

    def write(self, data):
        """Write all of ``data``."""
        if CPYTHON:
            mv = memoryview(data)
            while mv:
                mv = mv[os.write(self._wfd, mv) :]
        else:
            self._out.write(data)

    def close(self):
        """Nothing to release: stdio belongs to the process."""


class TtyLink:
    """A serial device or pty by path, put in raw mode with termios."""

    def __init__(self, path, baud=115200):
        self.name = path
        try:
            import termios
        except ImportError:
            raise LinkError("this runtime has no termios: use uart:ID for a board UART")
        if CPYTHON:
            import tty

            self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(self._fd)
            attrs = termios.tcgetattr(self._fd)
            speed = getattr(termios, "B%d" % baud, None)
            if speed is not None:
                attrs[4] = attrs[5] = speed
                termios.tcsetattr(self._fd, termios.TCSANOW, attrs)
            self._reader = _FdReader(self._fd)
        else:
            self._f = open(path, "r+b")
            termios.setraw(self._f.fileno())
            self._reader = _PollReader(self._f)

    def read(self, n, timeout_ms=1000):
        """Up to ``n`` bytes; empty when nothing arrived within the timeout."""
        return self._reader.read(n, timeout_ms)

    def write(self, data):
        """Write all of ``data``."""
        if CPYTHON:
            mv = memoryview(data)
            while mv:
                mv = mv[os.write(self._fd, mv) :]
        else:
            self._f.write(data)

    def close(self):
        """Close the device."""
        if CPYTHON:
            os.close(self._fd)
        else:
            self._f.close()


class UartLink:
    """``machine.UART`` on a microcontroller."""

    def __init__(self, uart_id, baud=115200):
        import machine

        self.name = "uart:%s" % uart_id
        self._uart = machine.UART(uart_id, baud, timeout=0, rxbuf=2048)
        self._poll = select.poll()
        self._poll.register(self._uart, select.POLLIN)

    def read(self, n, timeout_ms=1000):
        """Up to ``n`` bytes; empty when nothing arrived within the timeout."""
        if not self._poll.poll(timeout_ms):
            return b""
        return self._uart.read(n) or b""

    def write(self, data):
        """Write all of ``data``."""
        mv = memoryview(data)
        while mv:
            n = self._uart.write(mv)
            mv = mv[n or 0 :]

    def close(self):
        """Release the UART."""
        self._uart.deinit()


def is_loopback(host):
    """True for addresses only this machine can reach."""
    return host in ("localhost", "::1", "[::1]") or host.startswith("127.")


class TcpServerLink:
    """Listens on HOST:PORT and serves one client at a time; a new client replaces a gone one."""

    def __init__(self, host, port):
        import socket

        self.name = "tcp://%s:%d" % (host, port)
        self._socket = socket
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        self._server = socket.socket(ai[0], socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(ai[-1])
        self._server.listen(1)
        if CPYTHON:
            self.port = self._server.getsockname()[1]
        else:
            self.port = port
        self._conn = None
        self._poll = None
        self.on_connect = None

    def _accept(self, timeout_ms):
        p = select.poll()
        p.register(self._server, select.POLLIN)
        if not p.poll(timeout_ms):
            return False
        conn, _ = self._server.accept()
        if CPYTHON:
            conn.setsockopt(self._socket.IPPROTO_TCP, self._socket.TCP_NODELAY, 1)
        self._conn = conn
        self._poll = select.poll()
        self._poll.register(conn, select.POLLIN)
        if self.on_connect:
            self.on_connect()
        return True

    def _drop(self):
        try:
            self._conn.close()
        except OSError:
            pass
        self._conn = None

    def read(self, n, timeout_ms=1000):
        """Up to ``n`` bytes from the current client; empty on timeout or when it left."""
        if self._conn is None and not self._accept(timeout_ms):
            return b""
        if not self._poll.poll(timeout_ms):
            return b""
        try:
            data = self._conn.recv(n)
        except OSError:
            data = b""
        if not data:
            self._drop()
        return data

    def write(self, data):
        """Send all of ``data`` to the current client (dropped silently if it has left)."""
        if self._conn is None:
            return
        try:
            if CPYTHON:
                self._conn.sendall(data)
            else:
                mv = memoryview(data)
                while mv:
                    mv = mv[self._conn.send(mv) :]
        except OSError:
            self._drop()

    def close(self):
        """Stop listening."""
        if self._conn is not None:
            self._drop()
        self._server.close()


def _split_baud(spec):
    i = spec.rfind(":")
    if i > 0 and spec[i + 1 :].isdigit():
        return spec[:i], int(spec[i + 1 :])
    return spec, 115200


def open_link(spec):
    """Open the link a spec names; ``LinkError`` says what was wrong with it."""
    if spec == "stdio":
        return StdioLink()
    if spec.startswith("tcp://"):
        rest = spec[6:]
        i = rest.rfind(":")
        if i <= 0 or not rest[i + 1 :].isdigit():
            raise LinkError("bad link %r: expected tcp://HOST:PORT" % spec)
        host = rest[:i]
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return TcpServerLink(host, int(rest[i + 1 :]))
    if spec.startswith("uart:"):
        uid, baud = _split_baud(spec[5:])
        return UartLink(int(uid) if uid.isdigit() else uid, baud)
    if spec.startswith("/"):
        path, baud = _split_baud(spec)
        return TtyLink(path, baud)
    raise LinkError(
        "unknown link %r: use stdio, tcp://HOST:PORT, uart:ID[:BAUD] or a tty path" % spec
    )
