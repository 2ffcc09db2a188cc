"""Serve a background simulated board on a pty or a TCP port, for a program that is not kpdev.

The board's agent stays the one its server runs (never a second agent on its storage); these
bridges only carry bytes.  A pty behaves as a USB serial port does: the board is in use while a
program has the port open, and free for other commands once it closes it.  Each TCP connection
is one client of the board's server.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable

from kpdev.host.boards.catalog import Board
from kpdev.host.boards.simserver import SimLink, ensure_running, keep_alive
from kpdev.host.errors import BoardError, LinkError

_CHUNK = 65536
_KEEP_S = 60.0  # how often a bridge tells the server it is still wanted


def _relay(a_read, a_write, b: SimLink, stop: Callable[[], bool], a_fd: int) -> None:
    """Carry bytes between a file descriptor (a pty master or a socket) and a SimLink."""
    b_sock = b.fileno()
    while not stop():
        ready, _, _ = select.select([a_fd, b_sock], [], [], 0.2)
        if a_fd in ready:
            data = a_read()
            if not data:
                return
            b.write(data)
        if b_sock in ready:
            data = b.read(_CHUNK)
            if data:
                a_write(data)


def serve_pty(
    board: Board,
    key: bytes | None,
    announce: Callable[[str], None],
    log: Callable[[str], None],
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Serve ``board`` on a new pty until ``stop()``; ``announce(path)`` once it is there."""
    import tty

    ensure_running(board, key)
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    os.close(slave)  # a program opening the path is what makes the board "in use"
    announce(path)
    poll = select.poll()
    poll.register(master, select.POLLIN)
    last_keep = time.monotonic()
    link: SimLink | None = None
    try:
        while not stop():
            if time.monotonic() - last_keep > _KEEP_S:
                keep_alive(board)
                last_keep = time.monotonic()
            events = dict(poll.poll(200 if link else 50))
            if events.get(master, 0) & select.POLLHUP:
                if link is not None:  # the program closed the port: the board is free again
                    link.close()
                    link = None
                    log(f"{path} closed: {board.id} is free for other commands")
                time.sleep(0.05)
                continue
            if link is None:
                if not events:
                    continue  # opened, nothing sent yet: take the board when bytes come
                ensure_running(board, key)
                link = SimLink(board, wait=24 * 3600.0, on_wait=lambda who: log(f"waiting: {who}"))
                log(f"{path} opened: {board.id} is in use through it")
            try:
                _relay_pty(master, link)
            except LinkError as e:
                raise BoardError(str(e)) from None
    finally:
        if link is not None:
            link.close()
        os.close(master)


def _relay_pty(master: int, link: SimLink) -> None:
    # One round: what the program wrote goes to the board, what the board answered comes back.
    ready, _, _ = select.select([master, link.fileno()], [], [], 0.2)
    if master in ready:
        try:
            data = os.read(master, _CHUNK)
        except OSError:  # EIO: the program closed the port; the next poll says POLLHUP
            data = b""
        if data:
            link.write(data)
    if link.fileno() in ready:
        data = link.read(_CHUNK)
        view = memoryview(data)
        while view:
            view = view[os.write(master, view) :]


def serve_tcp(
    board: Board,
    key: bytes | None,
    host: str,
    port: int,
    announce: Callable[[str, int], None],
    log: Callable[[str], None],
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Serve ``board`` on TCP ``host:port`` (0: a free port) until ``stop()``.

    Each connection is a client of the board's server: one has the board at a time, the others
    wait their turn, as with commands run on this machine.
    """
    ensure_running(board, key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(8)
    announce(host, server.getsockname()[1])
    last_keep = time.monotonic()
    try:
        while not stop():
            if time.monotonic() - last_keep > _KEEP_S:
                keep_alive(board)
                last_keep = time.monotonic()
            ready, _, _ = select.select([server], [], [], 0.2)
            if not ready:
                continue
            conn, peer = server.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(
                target=_serve_connection, args=(board, key, conn, peer, log, stop), daemon=True
            ).start()
    finally:
        server.close()


def _serve_connection(board, key, conn: socket.socket, peer, log, stop) -> None:
    who = f"{peer[0]}:{peer[1]}"
    try:
        ensure_running(board, key)
        link = SimLink(board, wait=24 * 3600.0, on_wait=lambda h: log(f"{who} waits for {h}"))
    except (BoardError, LinkError) as e:
        log(f"{who}: {e}")
        conn.close()
        return
    try:
        _relay(lambda: _recv(conn), conn.sendall, link, stop, conn.fileno())
    except (LinkError, OSError) as e:
        log(f"{who}: {e}")
    finally:
        link.close()
        with contextlib.suppress(OSError):
            conn.close()


def _recv(conn: socket.socket) -> bytes:
    try:
        return conn.recv(_CHUNK)
    except OSError:
        return b""
