"""Host links: byte pipes to a device.  Frames and CBOR live above, in the client.

``read(n)`` returns what has arrived (at least one byte, waiting up to the timeout; empty on
timeout), ``write(data)`` sends everything, ``close()`` releases the link.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess

import serial

from kpdev.host.errors import LinkError


class SerialLink:
    """Anything pyserial opens by URL: /dev/ttyACM0, /dev/pts/N, socket://, rfc2217://."""

    def __init__(self, url: str, baud: int = 115200, timeout: float = 1.0):
        self.url = url
        self._timeout = timeout
        # pyserial's in_waiting on socket:// says 0 or 1, not how many bytes wait; a zero
        # timeout read returns what has arrived instead (cheap there: no port reconfiguration).
        self._socket = url.startswith("socket://")
        # How fast bytes go out (10 bits a byte on a UART), for the client's reply timeouts; a
        # socket has no baud rate that limits it.
        self.bytes_per_second = None if self._socket else baud / 10
        self._sock = None
        try:
            self._port = serial.serial_for_url(url, do_not_open=True)
            self._port.baudrate = baud
            self._port.timeout = timeout
            self._port.write_timeout = None
            self._port.open()
            if self._socket:
                self._sock = _SocketReader(self._port.fileno(), timeout)
        except (serial.SerialException, ValueError, OSError) as e:
            raise LinkError(f"cannot open {url}: {e}") from None

    def read(self, n: int) -> bytes:
        """Bytes that have arrived, up to ``n``; empty after the timeout."""
        try:
            if self._sock:
                return self._sock.read(n)
            waiting = self._port.in_waiting
            data = self._port.read(max(1, min(n, waiting)))
            if data and len(data) < n:
                more = self._port.in_waiting
                if more:
                    data += self._port.read(min(n - len(data), more))
            return data
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"{self.url}: read failed: {e}") from None

    def write(self, data: bytes) -> None:
        """Send all of ``data``."""
        try:
            if self._sock:
                self._sock.sock.sendall(data)
            else:
                self._port.write(data)
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"{self.url}: write failed: {e}") from None

    def set_timeout(self, timeout: float) -> None:
        """Seconds ``read`` waits for the first byte."""
        self._timeout = timeout
        self._port.timeout = timeout
        if self._sock:
            self._sock.timeout = timeout

    def close(self) -> None:
        """Close the port."""
        if self._sock:
            self._sock.sock.close()
            self._sock = None
        self._port.close()


class _SocketReader:
    """The connection pyserial opened for a ``socket://`` URL, read and written directly.

    pyserial's socket reads cost three ``select`` calls and a list per read, and it leaves
    Nagle's algorithm on, which holds back a small request sent while another is unanswered.
    Here the socket (a duplicate of pyserial's descriptor, which pyserial keeps for closing)
    blocks with the kernel's receive timeout (SO_RCVTIMEO): one ``recv_into`` a buffer
    allocated once per read, and TCP_NODELAY.
    """

    def __init__(self, fd: int, timeout: float):
        self.sock = socket.socket(fileno=os.dup(fd))
        self.sock.setblocking(True)  # pyserial made the shared descriptor non-blocking
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self._set = None  # the SO_RCVTIMEO in place
        self._buf = bytearray(65536)
        self._view = memoryview(self._buf)

    def read(self, n: int) -> bytes:
        flags = 0
        if self.timeout <= 0:
            flags = socket.MSG_DONTWAIT  # SO_RCVTIMEO 0 would mean: wait for ever
        elif self.timeout != self._set:
            us = int(self.timeout * 1e6)
            tv = struct.pack("ll", us // 1000000, us % 1000000)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
            self._set = self.timeout
        try:
            got = self.sock.recv_into(self._view, min(n, len(self._buf)), flags)
        except BlockingIOError:  # the timeout passed with nothing received
            return b""
        if not got:
            raise OSError("the other end closed the connection")
        return bytes(self._view[:got])


class PipeLink:
    """The stdin/stdout pipes of a simulated board's agent process."""

    def __init__(self, proc: subprocess.Popen, timeout: float = 1.0):
        self.url = "pipe"
        self._proc = proc
        self._rfd = proc.stdout.fileno()
        self._wfd = proc.stdin.fileno()
        self._timeout = timeout

    def read(self, n: int) -> bytes:
        """Bytes that have arrived, up to ``n``; empty after the timeout."""
        ready, _, _ = select.select([self._rfd], [], [], self._timeout)
        if not ready:
            return b""
        data = os.read(self._rfd, n)
        if not data:
            raise LinkError(f"the simulated board exited (code {self._proc.poll()})")
        return data

    def write(self, data: bytes) -> None:
        """Send all of ``data``."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._wfd, view) :]
        except BrokenPipeError:
            raise LinkError(f"the simulated board exited (code {self._proc.poll()})") from None

    def set_timeout(self, timeout: float) -> None:
        """Seconds ``read`` waits for the first byte."""
        self._timeout = timeout

    def close(self) -> None:
        """Close our ends of the pipes (the agent sees end of stream and exits)."""
        for f in (self._proc.stdin, self._proc.stdout):
            try:
                f.close()
            except OSError:
                pass


def open_url(url: str, baud: int = 115200, timeout: float = 1.0) -> SerialLink:
    """Open a device link by URL or port path."""
    return SerialLink(url, baud, timeout)
