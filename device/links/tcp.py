"""A TCP server link: one client at a time."""

try:
    import select
except ImportError:
    import uselect as select

from kpdev.device.links.base import LinkError
from kpdev.protocol.compat import MICROPYTHON


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
        if not MICROPYTHON:
            self.port = self._server.getsockname()[1]
        elif port == 0:
            # MicroPython sockets have no getsockname(): nobody could learn the port chosen.
            self._server.close()
            raise LinkError("tcp port 0 is not supported on this runtime: give a port number")
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
        if not MICROPYTHON:
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
            if not MICROPYTHON:
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
