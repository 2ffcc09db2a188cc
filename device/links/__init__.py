"""Links: byte pipes the agent serves on.  Nothing here knows about frames or CBOR.

Every link offers ``read(n, timeout_ms) -> bytes`` (empty on timeout, ``LinkClosed`` at end of
stream), ``write(data)`` and ``close()``.  ``open_link(spec)`` picks one from a spec string:
``stdio``, ``tcp://HOST:PORT``, ``uart:ID[:BAUD]`` (``machine.UART``) or a tty path
(``/dev/ttyS0[:BAUD]``).
"""

from kpdev.device.links.base import LinkClosed, LinkError  # noqa: F401


def is_loopback(host):
    """True for addresses only this machine can reach: localhost, ::1 and 127.x.y.z literals.

    A name such as ``127.example.com`` is not loopback: DNS may resolve it anywhere.
    """
    if host in ("localhost", "::1", "[::1]"):
        return True
    parts = host.split(".")
    if len(parts) != 4 or parts[0] != "127":
        return False
    for p in parts:
        if not p.isdigit() or int(p) > 255:
            return False
    return True


def _split_baud(spec):
    i = spec.rfind(":")
    if i > 0 and spec[i + 1 :].isdigit():
        return spec[:i], int(spec[i + 1 :])
    return spec, 115200


def open_link(spec):
    """Open the link a spec names; ``LinkError`` says what was wrong with it."""
    if spec == "stdio":
        from kpdev.device.links.stdio import StdioLink

        return StdioLink()
    if spec.startswith("tcp://"):
        rest = spec[6:]
        i = rest.rfind(":")
        if i <= 0 or not rest[i + 1 :].isdigit():
            raise LinkError("bad link %r: expected tcp://HOST:PORT" % spec)
        host = rest[:i]
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        from kpdev.device.links.tcp import TcpServerLink

        return TcpServerLink(host, int(rest[i + 1 :]))
    if spec.startswith("uart:"):
        uid, baud = _split_baud(spec[5:])
        from kpdev.device.links.uart import UartLink

        return UartLink(int(uid) if uid.isdigit() else uid, baud)
    if spec.startswith("/"):
        path, baud = _split_baud(spec)
        from kpdev.device.links.tty import TtyLink

        return TtyLink(path, baud)
    raise LinkError(
        "unknown link %r: use stdio, tcp://HOST:PORT, uart:ID[:BAUD] or a tty path" % spec
    )
