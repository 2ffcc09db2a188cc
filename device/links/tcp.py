"""A TCP server link: a listener that hands out one byte pipe per client connection."""

try:
    import select
except ImportError:
    import uselect as select

from kpdev.device.links.base import LinkClosed, LinkError
from kpdev.protocol.compat import MICROPYTHON

# Connections the kernel holds until the agent accepts them (MicroPython serves one at a time).
_BACKLOG = 4 if MICROPYTHON else 16
_SEND_TIMEOUT_S = 10  # CPython: a client that takes no replies for this long is dropped


class TcpServerLink:
    """Listens on HOST:PORT; ``accept`` gives the next client's connection, or None."""

    def __init__(self, host, port):
        import socket

        self.name = "tcp://%s:%d" % (host, port)
        self._socket = socket
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        self._server = socket.socket(ai[0], socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(ai[-1])
        self._server.listen(_BACKLOG)
        if not MICROPYTHON:
            self.port = self._server.getsockname()[1]
        elif port == 0:
            # MicroPython sockets have no getsockname(): nobody could learn the port chosen.
            self._server.close()
            raise LinkError("tcp port 0 is not supported on this runtime: give a port number")
        else:
            self.port = port
        self._poll = select.poll()
        self._poll.register(self._server, select.POLLIN)

    def waiting(self):
        """True when a client waits to be accepted."""
        return bool(self._poll.poll(0))

    def accept(self, timeout_ms):
        """The next client's connection, or None when none came within the timeout."""
        if not self._poll.poll(timeout_ms):
            return None
        try:
            conn, _ = self._server.accept()
        except OSError:  # it gave up before we took it
            return None
        if not MICROPYTHON:
            conn.setsockopt(self._socket.IPPROTO_TCP, self._socket.TCP_NODELAY, 1)
            conn.settimeout(_SEND_TIMEOUT_S)
        return TcpConnection(conn)

    def close(self):
        """Stop listening."""
        self._server.close()


class TcpConnection:
    """One client's connection: ``readinto`` raises ``LinkClosed`` once the client has gone."""

    name = "tcp"

    def __init__(self, conn):
        self._conn = conn
        self._poll = select.poll()
        self._poll.register(conn, select.POLLIN)
        self._gone = False

    def readinto(self, buf, timeout_ms=1000):
        """What has arrived, up to ``len(buf)`` bytes, into ``buf``; 0 on timeout."""
        if self._gone:
            raise LinkClosed("the client left")
        if not self._poll.poll(timeout_ms):
            return 0
        try:
            if not MICROPYTHON:
                got = self._conn.recv_into(buf)
            else:
                # A blocking socket's readinto waits for the whole buffer: recv returns what
                # has arrived (one allocation per read; TCP boards have the heap for it).
                data = self._conn.recv(len(buf))
                got = len(data)
                buf[:got] = data
        except OSError:
            got = 0
        if not got:
            self._gone = True
            raise LinkClosed("the client left")
        return got

    def write(self, data):
        """Send all of ``data`` (dropped if the client has left or takes nothing for long)."""
        if self._gone:
            return
        try:
            if not MICROPYTHON:
                self._conn.sendall(data)
            else:
                mv = memoryview(data)
                while mv:
                    mv = mv[self._conn.send(mv) :]
        except OSError:
            self._gone = True

    def close(self):
        """Close the connection."""
        self._gone = True
        try:
            self._conn.close()
        except OSError:
            pass
