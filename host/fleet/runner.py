"""Running one piece of work on every member of a fleet at once, and the shared queue a sharded
run draws its chunks from.

The work is I/O to separate agent processes (or boards), so one thread a member is enough:
each opens its own session and calls ``work(client, member, progress)``.  A member whose work
raises a kpdev error or loses its link is marked failed with the reason; the others go on.
No Rich here: progress goes to the ``Watch`` callbacks the CLI wires to its view.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kpdev.host.fleet.select import Member
from kpdev.protocol.errors import KpdevError


@dataclass
class Outcome:
    """What one member's work came to: its result, or why it failed."""

    member: Member
    ok: bool = False
    result: Any = None
    error: str | None = None
    seconds: float = 0.0

    def row(self) -> dict[str, Any]:
        """The member and how its work went (no result), for --json and measurement files."""
        m = self.member
        return {
            "member": m.name,
            "board": m.board,
            "port": m.port,
            "place": m.place,
            "status": "ok" if self.ok else "failed",
            "reason": self.error,
            "seconds": self.seconds,
        }


class Watch:
    """Callbacks of a fleet run (the CLI's progress view); each may be called from any thread."""

    def progress(self, member: Member, done: int, total: int | None) -> None:
        """``member`` has done ``done`` of ``total`` items."""

    def status(self, member: Member, text: str) -> None:
        """``member`` is doing ``text`` now (connecting, deploying, evaluating...)."""

    def failed(self, member: Member, reason: str) -> None:
        """``member`` failed: ``reason`` in one line."""

    def finished(self, member: Member) -> None:
        """``member`` finished its work."""


class Tell:
    """What a member's work reports through: ``tell(done, total)`` for progress and
    ``tell.status(text)`` for what it does now; both go to the run's ``Watch``."""

    def __init__(self, watch: Watch, member: Member):
        self.watch = watch
        self.member = member

    def __call__(self, done: int, total: int | None) -> None:
        self.watch.progress(self.member, done, total)

    def status(self, text: str) -> None:
        self.watch.status(self.member, text)


def reason_of(e: BaseException) -> str:
    """One line saying why a member failed."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if isinstance(e, KpdevError) else f"{type(e).__name__}: {text}"


def _open(member: Member, key: str | None, timeout: float):
    from kpdev.host.client.session import open_session

    return open_session(member.board, member.port, key, timeout=timeout)


def run_all(
    members: list[Member],
    work: Callable[[Any, Member, Tell], Any],
    *,
    key: str | None = None,
    timeout: float = 30.0,
    watch: Watch | None = None,
    opener: Callable | None = None,
) -> list[Outcome]:
    """Run ``work(client, member, tell)`` on every member concurrently, each in its own
    session (``tell``: see ``Tell``); the outcomes in
    member order.  ``opener(member, key, timeout)`` makes the session (default: open_session,
    which starts simulated boards in the background).  Returns when every member finished or
    failed; a KeyboardInterrupt in the caller stops waiting (the threads are daemons, their
    links close with the process)."""
    watch = watch or Watch()
    opener = opener or _open
    outcomes = [Outcome(m) for m in members]

    def one(o: Outcome) -> None:
        t0 = time.perf_counter()
        try:
            watch.status(o.member, "connecting")
            with opener(o.member, key, timeout) as c:
                o.result = work(c, o.member, Tell(watch, o.member))
            o.ok = True
            watch.finished(o.member)
        except (KpdevError, OSError, ValueError, RuntimeError) as e:
            o.error = reason_of(e)
            watch.failed(o.member, o.error)
        finally:
            o.seconds = time.perf_counter() - t0

    threads = [
        threading.Thread(target=one, args=(o,), name=f"fleet-{o.member.name}", daemon=True)
        for o in outcomes
    ]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)  # short joins: Ctrl-C reaches the main thread
    return outcomes


@dataclass
class ShardQueue:
    """Sample ranges handed out in small chunks from one queue, so a fast board takes more, and
    a chunk whose board failed goes back for another member.  Every sample is done exactly once:
    a chunk is recorded by ``finish`` only, all of it at once."""

    total: int
    chunk: int
    _todo: deque = field(default_factory=deque)
    _held: dict = field(default_factory=dict)  # (start, stop) -> member name
    _done: set = field(default_factory=set)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    requeued: int = 0

    def __post_init__(self) -> None:
        if self.chunk < 1:
            raise ValueError("chunk must be at least 1")
        starts = range(0, self.total, self.chunk)
        self._todo.extend((a, min(a + self.chunk, self.total)) for a in starts)

    def take(self, who: str) -> tuple[int, int] | None:
        """The next chunk for ``who``; waits while none is queued but others hold some (one
        may come back); None when nothing is left to do."""
        with self._cond:
            while not self._todo and self._held:
                self._cond.wait(0.5)
            if not self._todo:
                return None
            span = self._todo.popleft()
            self._held[span] = who
            return span

    def finish(self, span: tuple[int, int]) -> None:
        """``span`` is done and its results are recorded."""
        with self._cond:
            self._held.pop(span)
            self._done.add(span)
            self._cond.notify_all()

    def give_back(self, span: tuple[int, int]) -> None:
        """``span``'s board failed before finishing it: queue it (first) for another member."""
        with self._cond:
            self._held.pop(span)
            self._todo.appendleft(span)
            self.requeued += 1
            self._cond.notify_all()

    def missing(self) -> list[tuple[int, int]]:
        """The chunks not done (every member failed before they were)."""
        with self._cond:
            return sorted(set(self._todo) | set(self._held))

    def done_count(self) -> int:
        with self._cond:
            return sum(b - a for a, b in self._done)
