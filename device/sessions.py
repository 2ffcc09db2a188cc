"""Several sessions at once on a listening link: one thread per connection (CPython only).

A microcontroller never imports this module: MicroPython's agent serves one connection at a
time (``Agent.serve``).  Here each connection gets a thread that reads and parses its own bytes;
answering a frame takes one lock, so frames of different sessions never interleave inside the
agent (a model, an upload, the learner): the agent sees a sequence of whole frames, as one
session could send them.  Replies collect in the session's outbox while the lock is held and are
written after it is released, so a client that reads nothing stalls only its own thread.

A connection that sends no whole valid frame (with a key: no authenticated one) within
``agent._IDLE_CLOSE_MS`` is closed.  At most ``MAX_SESSIONS`` are open; when a new client comes
to a full house, the oldest session without a valid frame yet makes room, else the new client is
turned away.
"""

import sys
import threading

from kpdev.device import agent as agent_module

MAX_SESSIONS = 32


def serve_many(agent, listener):
    """Serve each connection ``listener`` accepts in a thread of its own, until the agent stops."""
    lock = threading.Lock()
    exit_code = []
    threads = []
    while agent._running and not exit_code:
        conn = listener.accept(agent_module._READ_MS)
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
    def dispatch(s, frames, nbytes):
        # Under the lock, one frame at a time; then the replies go out, the lock released.
        for f in frames or [None]:
            try:
                with lock:
                    agent.dispatch(s, [f] if f else [], nbytes)
                nbytes = 0
            except SystemExit as e:  # REBOOT with --exit-on-reboot: the reply first, then go
                exit_code.append(e.code)
                agent._running = False
            finally:
                out, s.outbox = s.outbox, []
                for data in out:
                    s.link.write(data)

    try:
        agent._serve_session(s, _NOBODY_WAITS, dispatch)
    except Exception as e:  # a thread's failure must not end the others
        sys.stderr.write("kpdev-agent error: session ended: %s: %s\n" % (type(e).__name__, e))
    finally:
        with lock:
            agent.end_session(s)


class _NobodyWaits:
    # Sessions here wait for nobody: only a connection that never sent a valid frame idles out.

    def waiting(self):
        return False


_NOBODY_WAITS = _NobodyWaits()
