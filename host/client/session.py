"""Open a client to a board by name or by URL, starting a simulated board when that is asked."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from kpdev.host.boards.catalog import Board, get_board
from kpdev.host.boards.simserver import SimLink, ensure_running
from kpdev.host.client.client import Client
from kpdev.host.config import NO_BOARD, default_board
from kpdev.host.errors import BoardError, UsageError


def parse_key(text: str | None) -> bytes | None:
    """A hex key from the option or $KPDEV_KEY; None when neither is set."""
    text = text or os.environ.get("KPDEV_KEY")
    if not text:
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise UsageError("the key must be hex digits, e.g. from: openssl rand -hex 32") from None
    if len(key) < 16:
        raise UsageError("the key must be at least 16 bytes (32 hex digits)")
    return key


def resolve_board(board: str | None, port: str | None) -> Board | None:
    """The board named; with neither a board nor a port, the user's default ($KPDEV_BOARD,
    else the config's board); None for a bare port. BoardError saying how to choose one when
    there is nothing to go on."""
    if board:
        return get_board(board)
    if port:
        return None
    choice = default_board()
    if choice is None:
        raise BoardError(NO_BOARD)
    return get_board(choice[0])


@contextmanager
def open_session(
    board: str | None = None,
    port: str | None = None,
    key: str | None = None,
    timeout: float = 10.0,
    on_event=None,
    on_wait=None,
) -> Iterator[Client]:
    """A connected client (after HELLO).

    A simulated board named without a port is reached through its background server, started
    on first use; ``on_wait(holder)`` is called when another program has the board for now.
    """
    b = resolve_board(board, port)
    keyb = parse_key(key)
    if port or not b.simulated:
        # pyserial and the link classes: not needed to reach a simulated board's server.
        from kpdev.host.link.transport import open_url
    if port:
        link = open_url(port, int((b.link.get("baud") if b else None) or 115200))
    elif b.simulated:
        link = open_sim(b, keyb, timeout, on_wait)
    else:
        link = open_url(b.default_url(), int(b.link.get("baud", 115200)))
    client = Client(link, keyb, timeout=timeout, on_event=on_event)
    try:
        client.hello()
        yield client
    finally:
        client.close()


def open_sim(board: Board, key: bytes | None, timeout: float = 10.0, on_wait=None) -> SimLink:
    """A link to a simulated board's background agent, started when it is not running."""
    ensure_running(board, key)
    return SimLink(board, wait=max(timeout, 10.0), on_wait=on_wait)
