"""Simulated boards: the real agent in a MicroPython unix-port or CPython process on this machine.

Each simulated board keeps its own state directory (its "flash") under ``$KPDEV_HOME/boards``,
so models deployed by one command are there for the next.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kpdev.host.boards.catalog import Board
from kpdev.host.errors import BoardError

if TYPE_CHECKING:
    from kpdev.host.link.transport import PipeLink

# What starts an agent (staging its files, a ROMFS image, pipes) is imported when one starts: a
# command that only talks to a running board's server imports this module for its paths and
# lock alone.


def home() -> Path:
    """kpdev's own data directory: $KPDEV_HOME or ~/.local/share/kpdev."""
    env = os.environ.get("KPDEV_HOME")
    return Path(env) if env else Path.home() / ".local" / "share" / "kpdev"


def state_dir(board: Board) -> Path:
    """Where a simulated board keeps its files."""
    path = home() / "boards" / board.id
    path.mkdir(parents=True, exist_ok=True)
    return path


# Set for an agent whose stdin pipe reads without blocking (device/links/base.py).
NONBLOCKING_STDIN = "KPDEV_NONBLOCKING_STDIN"


def reads_in_blocks(board: Board) -> bool:
    """True when ``board``'s agent is the MicroPython unix port on stdio, which reads its link in
    blocks when its stdin pipe does not block (QEMU boards own their stdin; CPython agents read
    whatever has arrived with ``os.read`` anyway)."""
    return board.simulated and board.runtime == "micropython" and "qemu" not in board.sim


def popen_agent(argv, env, stdin, stdout, stderr, blocks: bool, **popen_kw) -> subprocess.Popen:
    """``subprocess.Popen`` for an agent; with ``blocks`` and a new stdin pipe, the agent's end of
    that pipe is made non-blocking (and the agent told so), so the unix port's ``readinto``
    returns whatever has arrived instead of waiting for a full buffer."""
    if stdin is not subprocess.PIPE or not blocks:
        return subprocess.Popen(
            argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env, bufsize=0, **popen_kw
        )
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        env = {**env, NONBLOCKING_STDIN: "1"}
        proc = subprocess.Popen(
            argv, stdin=r, stdout=stdout, stderr=stderr, env=env, bufsize=0, **popen_kw
        )
    except BaseException:
        os.close(w)
        raise
    finally:
        os.close(r)
    proc.stdin = open(w, "wb", buffering=0)
    return proc


def agent_command(board: Board, link: str = "stdio") -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run ``board``'s agent on ``link``."""
    if not board.simulated:
        raise BoardError(f"{board.id} is a real board: connect it and pass --port")
    state = state_dir(board)
    args = [
        "-m",
        "kpdev.device",
        "--link",
        link,
        "--state",
        str(state),
        "--board",
        board.id,
        "--quota",
        str(board.quota),
    ]
    for opt in ("max_payload", "window", "arena"):
        if opt in board.agent:
            args += ["--" + opt.replace("_", "-"), str(board.agent[opt])]
    if board.power:
        args += ["--power", json.dumps(board.power, separators=(",", ":"))]
    env = dict(os.environ)
    if "qemu" in board.sim:
        # An emulated Cortex-M board: QEMU with the agent's code in its flash, on its UART.
        from kpdev.host.boards import qemu

        return qemu.command(board, args[2:]), env
    if board.runtime == "micropython":
        from kpdev.host.agent import romfs
        from kpdev.host.agent.micropython import micropython_binary, stage_lib

        heap = board.sim.get("heapsize", "256K")
        if board.sim.get("romfs") and romfs.available():
            # The agent's code in a ROMFS image outside the heap, as in a board's flash.
            lib = stage_lib(str(home() / "lib"))
            image = romfs.write_image(lib, str(home() / "agent-x64.romfs"))
            env["MICROPYPATH"] = ".frozen"
            return romfs.command(image, heap, args[2:]), env
        lib = stage_lib(str(home() / "lib"))
        env["MICROPYPATH"] = f"{lib}:.frozen"
        return [micropython_binary(), "-X", f"heapsize={heap}", *args], env
    return [sys.executable, *args], env


class StateLock:
    """An exclusive lock on a board's state directory, held while its agent may run."""

    def __init__(self, board: Board):
        self.path = state_dir(board) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; False when another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        """The pid written by whoever holds the lock, or '?'."""
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        """Let go of the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def log_tail(path: Path, lines: int = 3) -> str:
    """The last ``lines`` lines of a log file on one line; empty when there is none."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


class SimBoard:
    """A simulated board's agent process, serving on its stdio.

    It holds the board's state lock while it runs (``lock=False``: the caller holds it), so no
    second agent starts on the same state directory.
    """

    def __init__(
        self,
        board: Board,
        key: bytes | None = None,
        extra_args: list[str] | None = None,
        lock: bool = True,
    ):
        self.board = board
        self.key = key
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.log_path = state_dir(board) / "agent.log"
        self._lock = StateLock(board) if lock else None
        self._log = None

    def start(self, stdin=subprocess.PIPE, stdout=subprocess.PIPE) -> subprocess.Popen:
        """Start the agent process; its stderr goes to the board's agent.log."""
        if self._lock is not None and not self._lock.acquire():
            raise BoardError(
                f"{self.board.id} is already running (process {self._lock.holder()} holds "
                f"{state_dir(self.board)}): use it with --board {self.board.id}, or stop it with "
                f"`kpdev sim stop {self.board.id}`"
            )
        try:
            return self._start(stdin, stdout)
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise

    def _start(self, stdin, stdout) -> subprocess.Popen:
        argv, env = agent_command(self.board)
        argv += self.extra_args
        if self.key:
            env["KPDEV_KEY"] = self.key.hex()
        else:
            env.pop("KPDEV_KEY", None)
        self._log = open(self.log_path, "ab")
        try:
            self.proc = popen_agent(
                argv, env, stdin, stdout, self._log, reads_in_blocks(self.board)
            )
        except OSError as e:
            raise BoardError(f"cannot start {self.board.id}: {e}") from None
        return self.proc

    def link(self) -> PipeLink:
        """Start the agent on pipes and return the link to it."""
        from kpdev.host.link.transport import PipeLink

        return PipeLink(self.start())

    def check_alive(self) -> None:
        """Raise with the agent's last log lines if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise BoardError(f"simulated {self.board.id} exited: {self.log_tail()}")

    def log_tail(self, lines: int = 3) -> str:
        """The last lines the agent wrote to stderr."""
        return log_tail(self.log_path, lines) or "(no log)"

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the agent: close its stdin, then terminate if it lingers."""
        if self.proc is None:
            if self._lock is not None:
                self._lock.release()
            return
        for f in (self.proc.stdin, self.proc.stdout):
            if f:
                try:
                    f.close()
                except OSError:
                    pass
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        self.proc = None
        if self._lock is not None:
            self._lock.release()
