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
        return TcpConnection(conn)

    def close(self):
        """Stop listening."""
        self._server.close()


class TcpConnection:
    """One client's connection: ``readinto`` raises ``LinkClosed`` once the client has gone.

    CPython: the socket blocks, with the kernel's receive and send timeouts (SO_RCVTIMEO,
    SO_SNDTIMEO) in place of a poll before each call: a read is one ``recv_into`` system call
    into the caller's buffer (a socket timeout in CPython polls before every recv).
    """

    name = "tcp"

    def __init__(self, conn):
        self._conn = conn
        self._gone = False
        if MICROPYTHON:
            self._poll = select.poll()
            self._poll.register(conn, select.POLLIN)
        else:
            import socket

            self._s = socket
            conn.settimeout(None)
            conn.setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(_SEND_TIMEOUT_S * 1000)
            )
            self._wait_ms = -1  # the SO_RCVTIMEO in place

    def readinto(self, buf, timeout_ms=1000):
        """What has arrived, up to ``len(buf)`` bytes, into ``buf``; 0 on timeout."""
        if self._gone:
            raise LinkClosed("the client left")
        if MICROPYTHON:
            if not self._poll.poll(timeout_ms):
                return 0
            try:
                # A blocking socket's readinto waits for the whole buffer: recv returns what
                # has arrived (one allocation per read; TCP boards have the heap for it).
                data = self._conn.recv(len(buf))
            except OSError:
                data = b""
            got = len(data)
            if got:
                buf[:got] = data
        else:
            flags = 0
            if timeout_ms <= 0:
                flags = self._s.MSG_DONTWAIT  # SO_RCVTIMEO 0 would mean: wait for ever
            elif timeout_ms != self._wait_ms:
                self._conn.setsockopt(
                    self._s.SOL_SOCKET, self._s.SO_RCVTIMEO, _timeval(timeout_ms)
                )
                self._wait_ms = timeout_ms
            try:
                got = self._conn.recv_into(buf, len(buf), flags)
            except BlockingIOError:  # EAGAIN: the timeout passed with nothing received
                return 0
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


def _timeval(ms):
    # struct timeval {time_t tv_sec; suseconds_t tv_usec} for SO_RCVTIMEO/SO_SNDTIMEO (CPython).
    import struct

    return struct.pack("ll", ms // 1000, ms % 1000 * 1000)
