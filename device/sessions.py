"""Serving a listening link (TCP): each client connection is a session of its own.

Only a TCP agent imports this module.  MicroPython serves one connection at a time (a small heap
holds one session); the agent's session loop closes a connection that idles (``Agent.
_serve_session``), so a stranger cannot hold the board.  CPython serves several at once, a thread
per connection that reads and parses its own bytes; answering a frame takes one lock, so frames
of different sessions never interleave inside the agent (a model, an upload, the learner): the
agent sees a sequence of whole frames, as one session could send them.  Replies collect in the
session's outbox while the lock is held and are written after it is released, so a client that
reads nothing stalls only its own thread.  There a connection that sends no whole valid frame
(with a key: no authenticated one) within ``agent._IDLE_CLOSE_MS`` is closed, and at most
``MAX_SESSIONS`` are open: when a new client comes to a full house, the oldest session without a
valid frame yet makes room, else the new client is turned away.
"""

import sys

from kpdev.protocol.compat import MICROPYTHON, const

MAX_SESSIONS = 32
_ACCEPT_MS = const(200)  # how long one wait for a new client lasts
# CPython: replies to frames of one read gather for one write at most this long.
_GATHER_S = 0.0002


def serve_listener(agent, listener):
    """Serve the connections ``listener`` accepts until the agent stops."""
    if not MICROPYTHON:
        return _serve_threads(agent, listener)
    while agent._running:
        conn = listener.accept(_ACCEPT_MS)
        if conn is not None:
            s = agent.open_session(conn)
            try:
                agent._serve_session(s, listener)
            finally:
                end_session(agent, s)


def end_session(agent, s):
    """Close a session's link; its link counters join those of the sessions before it."""
    agent.sessions.remove(s)
    c = agent.stats.link or [0, 0, 0, 0, 0, 0]
    n = s.counters()
    agent.stats.link = [c[i] + n[i] for i in range(6)]
    try:
        s.link.close()
    except Exception:
        pass


def _serve_threads(agent, listener):
    # CPython: a thread per connection.
    import threading

    lock = threading.Lock()
    exit_code = []
    threads = []
    while agent._running and not exit_code:
        conn = listener.accept(_ACCEPT_MS)
        threads = [t for t in threads if t.is_alive()]
        if conn is None:
            continue
        with lock:
            if len(agent.sessions) >= MAX_SESSIONS and not _make_room(agent):
                conn.close()
                continue
            s = agent.open_session(conn)
            s.outbox = []
        t = threading.Thread(target=_run, args=(agent, s, lock, exit_code), daemon=True)
        t.start()
        threads.append(t)
    for s in list(agent.sessions):
        s.closing = True
    for t in threads:
        t.join(2)
    if exit_code:
        raise SystemExit(exit_code[0])


def _make_room(agent):
    for s in agent.sessions:
        if not s.trusted and not s.closing:
            s.closing = True
            return True
    return False


def _run(agent, s, lock, exit_code):
    import time  # CPython only, as this function

    def dispatch(s, frames, nbytes):
        # Under the lock, one frame at a time; the replies go out with the lock released, those
        # of the frames of one read (a pipelining host sent them together) in one write, unless
        # answering them takes long enough that the host would wait for the first ones.
        t0 = time.monotonic()
        try:
            for f in frames or [None]:
                try:
                    with lock:
                        agent.dispatch(s, [f] if f else [], nbytes)
                    nbytes = 0
                except SystemExit as e:  # REBOOT with --exit-on-reboot: the reply first, then go
                    exit_code.append(e.code)
                    agent._running = False
                if s.outbox and time.monotonic() - t0 >= _GATHER_S:
                    _flush(s)
                    t0 = time.monotonic()
        finally:
            _flush(s)

    try:
        agent._serve_session(s, _NOBODY_WAITS, dispatch)
    except Exception as e:  # a thread's failure must not end the others
        sys.stderr.write("kpdev-agent error: session ended: %s: %s\n" % (type(e).__name__, e))
    finally:
        with lock:
            end_session(agent, s)


def _flush(s):
    out, s.outbox = s.outbox, []
    if out:
        s.link.write(out[0] if len(out) == 1 else b"".join(out))


class _NobodyWaits:
    # Sessions here wait for nobody: only a connection that never sent a valid frame idles out.

    def waiting(self):
        return False


_NOBODY_WAITS = _NobodyWaits()
