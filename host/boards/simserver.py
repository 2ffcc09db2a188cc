"""Simulated boards that stay up: one background server process a board, as a USB board would.

A server owns its board's state directory (an exclusive lock: never two agents on one "flash"),
runs the board's real agent on pipes and hands the agent to one client at a time over a Unix
socket that only this user can open.  It starts on the first command that needs the board (or
``kpdev sim start``), so RAM state (statistics, uptime, what a learner learned, loaded models)
lives from one command to the next, and stops on ``kpdev sim stop`` or after a configurable
idle time.  A REBOOT makes the agent exit with status 75 and the server starts a new one: RAM is
lost, the storage kept, as on a board's reset.

Between a client and the server, before the agent's own bytes, one line each way:
``KPDEV-SIM 1 PID DESCRIPTION`` from the client, then ``WAIT HOLDER`` (when another client has the
board) and ``READY`` from the server; from then on the socket is a byte pipe to the agent.  A
client may instead send ``KPDEV-SIM 1 STATUS`` or ``KPDEV-SIM 1 STOP`` and read one JSON line.

Run as ``python -m kpdev.host.boards.simserver BOARD [--idle SECONDS]`` by :func:`ensure_running`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kpdev.host.boards.catalog import Board, get_board
from kpdev.host.boards.sim import SimBoard, StateLock, home, log_tail, state_dir
from kpdev.host.errors import BoardError, LinkError

MAGIC = b"KPDEV-SIM 1"
EXIT_REBOOT = 75  # the agent's exit status after a REBOOT (device/op_status.py)
DEFAULT_IDLE_S = 1800.0  # a background board stops after this long with no client
START_TIMEOUT_S = 120.0  # staging and compiling the MicroPython lib can take a while, once
_CHUNK = 65536


# -- where a board's server lives ----------------------------------------------------------------
def run_dir() -> Path:
    """Where servers keep their sockets and records: $KPDEV_HOME/run (mode 0700)."""
    path = home() / "run"
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.chmod(0o700)
    return path


def record_path(board: Board) -> Path:
    """The JSON record a running server keeps about itself."""
    return run_dir() / f"{board.id}.json"


def socket_path(board: Board) -> Path:
    """The Unix socket of ``board``'s server (a short path elsewhere when home's is too long)."""
    path = run_dir() / f"{board.id}.sock"
    if len(os.fsencode(path)) < 100:  # sockaddr_un holds about 108 bytes
        return path
    tag = hashlib.sha256(os.fsencode(home())).hexdigest()[:12]
    short = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / f"kpdev-{os.getuid()}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / f"{tag}-{board.id}.sock"


def log_path(board: Board) -> Path:
    """The server's log; the agent's own stderr goes to the board's agent.log."""
    return run_dir() / f"{board.id}.log"


def key_fingerprint(key: bytes | None) -> str | None:
    """A name for a key that does not reveal it: which key a running board holds."""
    if not key:
        return None
    return hashlib.sha256(b"kpdev-sim-key\0" + key).hexdigest()[:16]


# -- the server process ----------------------------------------------------------------------
class _Client:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.inbox = b""  # bytes before the first line is whole
        self.hello: str | None = None  # the first line, once read
        self.pid = "?"
        self.what = "a client"
        self.outbox = bytearray()  # agent bytes not yet taken by the client


class BoardServer:
    """The server loop: an agent on pipes, one client at a time, a queue for the rest."""

    def __init__(self, board: Board, key: bytes | None, idle_s: float):
        self.board = board
        self.key = key
        self.idle_s = idle_s
        # The agent's stdio are pipes from this server, which relays TCP and pty clients too: a
        # supervised agent (--exit-on-reboot) has no console, so two Ctrl-C never stop it.
        self.sim = SimBoard(board, key, extra_args=["--exit-on-reboot"], lock=False)
        self.sel = selectors.DefaultSelector()
        self.listener: socket.socket | None = None
        self.current: _Client | None = None
        self.queue: list[_Client] = []
        self.started = time.time()
        self.last_activity = time.monotonic()
        self.agent_started: float | None = None
        self.agent_starts = 0
        self.reboots = 0
        self.agent_exits = 0
        self.clients_served = 0
        self.last_exit: int | None = None
        self.stopping = False
        self.to_agent = bytearray()  # client bytes the agent has not read yet

    # the agent
    def _start_agent(self) -> None:
        proc = self.sim.start()
        os.set_blocking(proc.stdout.fileno(), False)
        os.set_blocking(proc.stdin.fileno(), False)
        self.sel.register(proc.stdout.fileno(), selectors.EVENT_READ, "agent")
        self.to_agent.clear()
        self.agent_started = time.time()
        self.agent_starts += 1

    def _agent_gone(self) -> None:
        proc = self.sim.proc
        for f in (proc.stdout, proc.stdin):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(f.fileno())
        code = proc.wait()
        self.sim.stop()
        self.last_exit = code
        if code == EXIT_REBOOT:
            self.reboots += 1
            self._log("agent rebooted (RAM cleared, storage kept)")
            self._start_agent()  # the client keeps its connection, as a USB serial port stays
            return
        self.agent_exits += 1
        self._log(f"agent exited with status {code}: {self.sim.log_tail()}")
        self._drop_current()  # the client sees the end of the stream

    def _agent_running(self) -> bool:
        return self.sim.proc is not None and self.sim.proc.poll() is None

    # clients
    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.setblocking(False)
        client = _Client(conn)
        self.sel.register(conn, selectors.EVENT_READ, client)

    @staticmethod
    def _recv(client: _Client) -> bytes | None:
        # What the client sent; b"" when it has gone, None when nothing is there after all.
        try:
            return client.sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""

    def _read_hello(self, client: _Client) -> None:
        data = self._recv(client)
        if data is None:
            return
        if not data:
            self._close(client)
            return
        client.inbox += data
        if b"\n" not in client.inbox:
            if len(client.inbox) > 4096:
                self._close(client)
            return
        line, _, rest = client.inbox.partition(b"\n")
        client.inbox = rest
        words = line.split(b" ", 3)
        if line.startswith(MAGIC + b" STATUS"):
            self._send_line(client, json.dumps(self.status()))
            self._close(client)
            return
        if line.startswith(MAGIC + b" KEEP"):  # a bridge that still wants the board
            self.last_activity = time.monotonic()
            self._send_line(client, json.dumps({"kept": True}))
            self._close(client)
            return
        if line.startswith(MAGIC + b" STOP"):
            self._send_line(client, json.dumps({"stopping": True}))
            self._close(client)
            self.stopping = True
            return
        if not line.startswith(MAGIC) or len(words) < 3:
            self._close(client)  # not one of ours: nothing reaches the agent
            return
        client.hello = line.decode(errors="replace")
        client.pid = words[2].decode(errors="replace")
        client.what = words[3].decode(errors="replace") if len(words) > 3 else "a client"
        if self.current is None:
            self._make_current(client)
        else:
            self.queue.append(client)
            self._send_line(client, f"WAIT {self._holder()}")

    def _holder(self) -> str:
        c = self.current
        return f"{c.what} (pid {c.pid})" if c else "nobody"

    def _make_current(self, client: _Client) -> None:
        if not self._agent_running():
            self._start_agent()
        self.current = client
        self.clients_served += 1
        self._send_line(client, "READY")
        if client.inbox:
            self._to_agent(client.inbox)
            client.inbox = b""

    def _next_client(self) -> None:
        self.last_activity = time.monotonic()
        while self.current is None and self.queue:
            client = self.queue.pop(0)
            try:
                self._make_current(client)
            except OSError:
                self._close(client)

    def _from_client(self, client: _Client) -> None:
        if client.hello is None:
            self._read_hello(client)
            return
        data = self._recv(client)
        if data is None:
            return
        if client is not self.current:
            # A queued client may only wait; what it sends early is held for the agent.
            if not data:
                self._close(client)
            else:
                client.inbox += data
            return
        if not data:
            self._drop_current()
            return
        self._to_agent(data)

    def _to_agent(self, data: bytes) -> None:
        # Never block on the agent: it may be busy writing a reply that we must go on reading.
        self.to_agent += data
        self._flush_agent()

    def _flush_agent(self) -> None:
        proc = self.sim.proc
        if proc is None:
            return
        fd = proc.stdin.fileno()
        try:
            while self.to_agent:
                del self.to_agent[: os.write(fd, self.to_agent)]
        except BlockingIOError:
            pass
        except OSError:
            self.to_agent.clear()  # the agent is gone; its stdout's end of stream says so
        self._want_write(fd, "agent-in", bool(self.to_agent))

    def _want_write(self, fileobj, data, want: bool) -> None:
        try:
            key = self.sel.get_key(fileobj)
        except (KeyError, ValueError):
            key = None
        if want and key is None:
            self.sel.register(fileobj, selectors.EVENT_WRITE, data)
        elif want and not key.events & selectors.EVENT_WRITE:
            self.sel.modify(fileobj, key.events | selectors.EVENT_WRITE, key.data)
        elif not want and key is not None and key.events & selectors.EVENT_WRITE:
            events = key.events & ~selectors.EVENT_WRITE
            if events:
                self.sel.modify(fileobj, events, key.data)
            else:
                self.sel.unregister(fileobj)

    def _flush_client(self, client: _Client) -> None:
        try:
            while client.outbox:
                del client.outbox[: client.sock.send(client.outbox)]
        except BlockingIOError:
            pass
        except OSError:
            self._drop_current() if client is self.current else self._close(client)
            return
        self._want_write(client.sock, client, bool(client.outbox))

    def _from_agent(self) -> None:
        proc = self.sim.proc
        try:
            data = os.read(proc.stdout.fileno(), _CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._agent_gone()
            return
        if self.current is not None:
            self.current.outbox += data
            self._flush_client(self.current)
        # With no client, the bytes have nowhere to go: like a UART with nothing attached.

    def _drop_current(self) -> None:
        if self.current is not None:
            self._close(self.current)
        self.current = None
        self._next_client()

    def _close(self, client: _Client) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(client.sock)
        with contextlib.suppress(OSError):
            client.sock.close()
        if client in self.queue:
            self.queue.remove(client)
        if client is self.current:
            self.current = None

    @staticmethod
    def _send_line(client: _Client, text: str) -> None:
        sock = client.sock
        sock.setblocking(True)
        try:
            sock.sendall(text.encode() + b"\n")
        except OSError:
            pass
        finally:
            sock.setblocking(False)

    # the whole
    def status(self) -> dict[str, Any]:
        """What ``kpdev sim status`` shows."""
        proc = self.sim.proc
        return {
            "board": self.board.id,
            "pid": os.getpid(),
            "running": True,
            "started": self.started,
            "idle_s": self.idle_s,
            "socket": str(socket_path(self.board)),
            "state": str(state_dir(self.board)),
            "auth": bool(self.key),
            "key": key_fingerprint(self.key),
            "agent_pid": proc.pid if proc is not None and proc.poll() is None else None,
            "agent_started": self.agent_started,
            "agent_starts": self.agent_starts,
            "reboots": self.reboots,
            "agent_exits": self.agent_exits,
            "last_exit": self.last_exit,
            "clients_served": self.clients_served,
            "in_use_by": self._holder() if self.current else None,
            "waiting": len(self.queue),
        }

    def _log(self, text: str) -> None:
        sys.stderr.write(time.strftime("%Y-%m-%d %H:%M:%S ") + text + "\n")
        sys.stderr.flush()

    def _write_record(self) -> None:
        # Marks a running server for running_boards(); what it reports lives in status().
        path = record_path(self.board)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"board": self.board.id, "pid": os.getpid()}))
        os.replace(tmp, path)

    def serve(self, ready_fd: int | None = None) -> int:
        """Run until stopped or idle; returns the exit status."""
        lock = StateLock(self.board)
        if not lock.acquire():
            _tell(ready_fd, f"LOCKED {lock.holder()}")
            return 0
        path = socket_path(self.board)
        try:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # a stale socket: we hold the lock, so no server uses it
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o177)
            try:
                self.listener.bind(str(path))
            finally:
                os.umask(old)
            self.listener.listen(16)
            self.listener.setblocking(False)
            self.sel.register(self.listener, selectors.EVENT_READ, "listen")
            self._start_agent()
            self._write_record()
            self._log(f"{self.board.id} serving on {path} (agent pid {self.sim.proc.pid})")
            _tell(ready_fd, "READY")
            self._loop()
            return 0
        except Exception as e:  # the log says why; the starting command saw READY or not
            self._log(f"server failed: {type(e).__name__}: {e}")
            _tell(ready_fd, f"FAILED {e}")
            return 1
        finally:
            self._shutdown(path)
            lock.release()

    def _loop(self) -> None:
        def _stop(signum, frame):
            self.stopping = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        while not self.stopping:
            for key, events in self.sel.select(timeout=1.0):
                what = key.data
                if what == "listen":
                    self._accept()
                elif what == "agent":
                    self._from_agent()
                elif what == "agent-in":
                    self._flush_agent()
                elif events & selectors.EVENT_WRITE and what.outbox:
                    self._flush_client(what)
                    if events & selectors.EVENT_READ and what.sock.fileno() >= 0:
                        self._from_client(what)
                else:
                    self._from_client(what)
            if self.current is not None or self.queue:
                self.last_activity = time.monotonic()
            elif self.idle_s and time.monotonic() - self.last_activity > self.idle_s:
                self._log(f"idle for {self.idle_s:g} s: stopping")
                self.stopping = True
            if not socket_path(self.board).exists():
                self._log("socket removed: stopping")
                self.stopping = True

    def _shutdown(self, path: Path) -> None:
        for client in [self.current, *self.queue]:
            if client is not None:
                self._close(client)
        if self.listener is not None:
            self.listener.close()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            with contextlib.suppress(FileNotFoundError):
                record_path(self.board).unlink()
        if self.sim.proc is not None:
            self.sim.stop()


def _tell(fd: int | None, line: str) -> None:
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, line.encode() + b"\n")
        os.close(fd)


# -- the client side -----------------------------------------------------------------------------
def _connect(board: Board, timeout: float = 2.0) -> socket.socket | None:
    path = socket_path(board)
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def _control(board: Board, command: str, timeout: float = 5.0) -> dict[str, Any] | None:
    sock = _connect(board, timeout)
    if sock is None:
        return None
    try:
        sock.sendall(MAGIC + b" " + command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            more = sock.recv(_CHUNK)
            if not more:
                break
            data += more
        return json.loads(data) if data.strip() else None
    except (OSError, ValueError):
        return None
    finally:
        sock.close()


def status(board: Board) -> dict[str, Any]:
    """A board's server as it reports itself, or ``{"board": id, "running": False}``."""
    data = _control(board, "STATUS")
    if data is None:
        return {"board": board.id, "running": False, "state": str(state_dir(board))}
    return data


def keep_alive(board: Board) -> None:
    """Restart ``board``'s idle timer (a pty or TCP bridge that serves it, unopened for now)."""
    _control(board, "KEEP")


class _Running:
    # A running board known by its id alone: one from a catalog this command was not given
    # (kpdev --catalog FILE) is still found, listed and stopped by its socket.
    simulated = True

    def __init__(self, board_id: str):
        self.id = board_id


def running_boards() -> list[dict[str, Any]]:
    """The status of every simulated board with a server running under this $KPDEV_HOME."""
    found = []
    for record in sorted(run_dir().glob("*.json")):
        data = status(_Running(record.stem))
        if data.get("running"):
            found.append(data)
    return found


def stop_all() -> list[str]:
    """Stop every simulated board running under this $KPDEV_HOME; their ids."""
    return [d["board"] for d in running_boards() if stop(_Running(d["board"]))]


def stop(board: Board, timeout: float = 10.0) -> bool:
    """Stop ``board``'s server (its agent's RAM is lost); False when none was running."""
    data = _control(board, "STOP")
    if data is None:
        return False
    # Stopped once the state lock is free: the agent is gone, another may start.
    deadline = time.monotonic() + timeout
    lock = StateLock(board)
    while not lock.acquire():
        if time.monotonic() > deadline:
            raise BoardError(f"the server of {board.id} did not stop within {timeout:g} s")
        time.sleep(0.02)
    lock.release()
    return True


def ensure_running(
    board: Board, key: bytes | None, idle_s: float | None = None, start: bool = True
) -> dict[str, Any]:
    """The running server of ``board``, started in the background when there is none.

    A board running with another key (or none) is not silently restarted: BoardError says how
    to restart it.
    """
    if not board.simulated:
        raise BoardError(f"{board.id} is a real board: connect it and pass --port")
    current = status(board)
    if not current.get("running"):
        if not start:
            return current
        if "qemu" in board.sim:
            # Build an emulated board's firmware here, where the user sees a failure at once,
            # rather than in the server within its start-up timeout.
            from kpdev.host.boards import qemu

            qemu.ensure_firmware(board)
        current = _start(board, key, idle_s)
    if current.get("key") != key_fingerprint(key):
        have = "with another key" if current.get("key") else "without a key"
        if not key:
            have = "with a key"
        raise BoardError(
            f"{board.id} is running {have}: pass the key it was started with, or restart it "
            f"with `kpdev sim stop {board.id}` and `kpdev sim start {board.id} [--key HEX]`"
        )
    return current


def _start(board: Board, key: bytes | None, idle_s: float | None) -> dict[str, Any]:
    if idle_s is None:
        idle_s = float(os.environ.get("KPDEV_SIM_IDLE", DEFAULT_IDLE_S))
    env = dict(os.environ)
    if key:
        env["KPDEV_KEY"] = key.hex()
    else:
        env.pop("KPDEV_KEY", None)
    read_fd, write_fd = os.pipe()
    log = open(log_path(board), "ab")
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kpdev.host.boards.simserver",
                board.id,
                "--idle",
                repr(float(idle_s)),
                "--ready-fd",
                str(write_fd),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            pass_fds=(write_fd,),
            start_new_session=True,  # not ended by the terminal's Ctrl-C meant for a command
            cwd=str(run_dir()),
        )
    except OSError as e:
        raise BoardError(f"cannot start {board.id}: {e}") from None
    finally:
        os.close(write_fd)
        log.close()
    try:
        line = _read_line(read_fd, START_TIMEOUT_S)
    finally:
        os.close(read_fd)
    if line.startswith("READY") or line.startswith("LOCKED"):
        # LOCKED: another command started it a moment ago; use that one.
        # A server binds its socket before it starts the agent: a lock held with no socket
        # after a moment is not a server's.
        t0 = time.monotonic()
        while time.monotonic() < t0 + START_TIMEOUT_S:
            data = status(board)
            if data.get("running"):
                return data
            if time.monotonic() > t0 + 2 and not socket_path(board).exists():
                break
            time.sleep(0.05)
        holder = line.split(" ", 1)[1] if " " in line else "?"
        raise BoardError(
            f"{board.id}'s state directory {state_dir(board)} is in use by process {holder} "
            "(a `kpdev repl` or another kpdev?): stop it and try again"
        )
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(1)
    why = line.split(" ", 1)[1] if line.startswith("FAILED ") else log_tail(log_path(board))
    raise BoardError(f"simulated {board.id} did not start: {why or 'no output'}")


def _read_line(fd: int, timeout: float) -> str:
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        more = os.read(fd, 256)
        if not more:
            break
        data += more
    return data.decode(errors="replace").strip()


class SimLink:
    """A host link to a background simulated board: its server's socket, once it is our turn.

    ``read``/``write``/``close`` as every host link; ``LinkError`` when the board stops.
    """

    def __init__(self, board: Board, timeout: float = 1.0, wait: float = 30.0, on_wait=None):
        self.board = board
        self.url = f"sim:{board.id}"
        self._timeout = timeout
        sock = _connect(board, timeout=5.0)
        if sock is None:
            raise LinkError(f"simulated {board.id} is not running (kpdev sim start {board.id})")
        self._sock = sock
        what = " ".join(["kpdev", *sys.argv[1:4]])[:120]  # who has the board, for the others
        try:
            sock.sendall(MAGIC + f" {os.getpid()} {what}\n".encode())
            self._wait_ready(wait, on_wait)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        sock.setblocking(True)

    def _wait_ready(self, wait: float, on_wait) -> None:
        buf = b""
        deadline = time.monotonic() + wait
        holder = None
        while True:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LinkError(
                        f"simulated {self.board.id} is in use by {holder or 'another client'}; "
                        f"waited {wait:g} s (stop that program, or use a longer --timeout)"
                    )
                self._sock.settimeout(left)
                try:
                    more = self._sock.recv(256)
                except TimeoutError:
                    continue
                except OSError as e:
                    raise LinkError(f"simulated {self.board.id}: {e}") from None
                if not more:
                    raise LinkError(
                        f"simulated {self.board.id} stopped: {log_tail(log_path(self.board))}"
                    )
                buf += more
            line, _, buf = buf.partition(b"\n")
            text = line.decode(errors="replace")
            if text == "READY":
                if buf:
                    raise LinkError(f"simulated {self.board.id}: unexpected bytes after READY")
                return
            if text.startswith("WAIT "):
                holder = text[5:]
                if on_wait:
                    on_wait(holder)

    def read(self, n: int) -> bytes:
        """Bytes that have arrived, up to ``n``; empty after the timeout."""
        import select

        ready, _, _ = select.select([self._sock], [], [], self._timeout)
        if not ready:
            return b""
        try:
            data = self._sock.recv(n)
        except OSError as e:
            raise LinkError(f"simulated {self.board.id}: read failed: {e}") from None
        if not data:
            raise LinkError(self._gone())
        return data

    def _gone(self) -> str:
        tail = log_tail(state_dir(self.board) / "agent.log") or "(no log)"
        return f"simulated {self.board.id} stopped (its agent exited: {tail})"

    def write(self, data: bytes) -> None:
        """Send all of ``data``."""
        try:
            self._sock.sendall(data)
        except OSError:
            raise LinkError(self._gone()) from None

    def set_timeout(self, timeout: float) -> None:
        """Seconds ``read`` waits for the first byte."""
        self._timeout = timeout

    def fileno(self) -> int:
        """The socket's descriptor, for select()."""
        return self._sock.fileno()

    def close(self) -> None:
        """Hand the board to the next client."""
        with contextlib.suppress(OSError):
            self._sock.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m kpdev.host.boards.simserver BOARD [--idle S] [--ready-fd FD]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kpdev.host.boards.simserver")
    parser.add_argument("board")
    parser.add_argument("--idle", type=float, default=DEFAULT_IDLE_S)
    parser.add_argument("--ready-fd", type=int, default=None)
    args = parser.parse_args(argv)
    from kpdev.host.client.session import parse_key

    board = get_board(args.board)
    server = BoardServer(board, parse_key(None), args.idle)
    return server.serve(args.ready_fd)


if __name__ == "__main__":
    sys.exit(main())
