"""Agent processes for the simulated boards, on the command line kpdev itself uses, and raw
frames on a client's link (requests any bytes can make, and the device's answers to them)."""

import itertools
import os
import re
import select
import signal
import socket
import subprocess
import time
from pathlib import Path

import cbor2
import pytest

from kpdev.host.boards import qemu
from kpdev.host.boards.catalog import get_board
from kpdev.host.boards.sim import agent_command, popen_agent, reads_in_blocks
from kpdev.host.client.client import Client
from kpdev.host.errors import LinkError
from kpdev.host.link.transport import PipeLink
from kpdev.protocol import ops
from kpdev.protocol.errors import KpdevError

SIM_BOARDS = ["sim-mcu", "sim-mcu-64k", "sim-linux"]
# The emulated Cortex-M board the agent's conformance tests also run on (docs/qemu-boards.md):
# 192 KB, as conv_int8 runs out of memory in INFER at 128 KB beside the agent (issue 17 §2).
QEMU_BOARD = "qemu-m3-192k"


def qemu_unavailable():
    """Why the emulated boards cannot run here (a tool or the MicroPython source is missing),
    or None when they can."""
    missing = qemu.missing_tools()
    if missing:
        return "emulated Cortex-M boards need %s (%s)" % (", ".join(missing), qemu.INSTALL_HINT)
    try:
        qemu.find_source()
    except KpdevError as e:
        return str(e)
    return None


def _qemu_param(board_id):
    reason = qemu_unavailable()
    if reason:
        return pytest.param(board_id, marks=pytest.mark.skip(reason="%s: %s" % (board_id, reason)))
    return board_id


# The boards the agent's conformance tests run on: the simulated ones and an emulated MCU.
AGENT_BOARDS = SIM_BOARDS + [_qemu_param(QEMU_BOARD)]
# A 32-byte pre-shared key for the authenticated agents.
KEY = bytes(range(32))


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AgentProcess:
    """One agent process for a simulated board, on the command line kpdev itself uses."""

    def __init__(
        self,
        board_id,
        state,
        link="stdio",
        key=None,
        args=(),
        stdin=None,
        stdout=None,
        preexec_fn=None,
    ):
        self.board = get_board(board_id)
        self.state = Path(state)
        self.link_spec = link
        argv, env = agent_command(self.board, link)
        argv[argv.index("--state") + 1] = str(self.state)
        argv += list(args)
        env.pop("KPDEV_KEY", None)
        if key:
            env["KPDEV_KEY"] = key.hex()
        self.log_path = self.state.parent / (self.state.name + ".log")
        if stdin is None:
            stdin = subprocess.PIPE if link == "stdio" else subprocess.DEVNULL
        with open(self.log_path, "ab") as log:
            if stdout is None:
                stdout = subprocess.PIPE if link == "stdio" else log
            # As kpdev starts it: the unix port's stdin pipe does not block (reads in blocks).
            self.proc = popen_agent(
                argv,
                env,
                stdin,
                stdout,
                log,
                reads_in_blocks(self.board),
                preexec_fn=preexec_fn,  # limits of the agent's process (tests of failing writes)
            )

    @property
    def micropython(self):
        return self.board.runtime == "micropython"

    def client(self, key=None, timeout=None):
        """A Client on the process's pipes, after HELLO.

        The default timeout is 10 s, 60 s on an emulated board: its int8 loops run as bytecode
        on an emulated CPU (conv_int8 is some 70 M instructions an inference).
        """
        if timeout is None:
            timeout = 60.0 if qemu.is_qemu(self.board) else 10.0
        c = Client(PipeLink(self.proc), key=key, timeout=timeout)
        try:
            c.hello()
        except LinkError as e:
            raise AssertionError("%s: %s; agent log: %s" % (self.board.id, e, self.log()))
        return c

    def log(self):
        """What the agent wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern, timeout=15.0):
        """The first match of ``pattern`` in the agent's stderr, waiting for it to appear."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError("agent never logged %r: %s" % (pattern, self.log()))

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """SIGKILL: no chance to flush or clean up, as a power cut."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close_pipes()

    def _close_pipes(self):
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass

    def stop(self, timeout=5.0):
        """End of stream on stdin, then terminate and kill if it lingers; returns the exit code."""
        if self.proc.returncode is not None:
            return self.proc.returncode
        self._close_pipes()
        if self.link_spec != "stdio":  # nothing tells it to stop but a signal
            self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Agents:
    """Starts agent processes, each with a fresh state directory unless one is given."""

    def __init__(self, base):
        self.base = Path(base)
        self.started = []
        self._n = itertools.count()

    def state(self, board_id):
        """A fresh state directory for one board."""
        return self.base / ("%s-%d" % (board_id, next(self._n)))

    def start(self, board_id, state=None, **kw):
        agent = AgentProcess(board_id, state or self.state(board_id), **kw)
        self.started.append(agent)
        return agent

    def stop_all(self):
        for agent in self.started:
            if agent.proc.returncode is None:
                agent.stop()


# -- raw frames on a client's link ------------------------------------------------------------

_raw_rids = itertools.count(0x8000)


def next_rid():
    """A request id far from the ones the Client hands out."""
    return next(_raw_rids) & 0xFFFF or 0x8000


def replies(client, data, rids, timeout=10.0):
    """Write raw bytes on the client's link; return {rid: (Frame, body)} for the ``rids`` named.

    Uses the client's own parser (and so its key) to read; events are skipped, and a reply to a
    request id not asked for fails the test.
    """
    if data:
        client.link.write(data)
    want = set(rids)
    got = {}
    deadline = time.monotonic() + timeout
    while want - set(got):
        assert time.monotonic() < deadline, "no reply to %s (have %s)" % (want, sorted(got))
        chunk = client.link.read(65536)
        for frame in client.parser.feed(chunk):
            if frame.flags & ops.FLAG_EVENT:
                continue
            assert frame.rid in want, "unexpected reply %r" % frame
            body = cbor2.loads(frame.payload) if frame.payload else None
            got[frame.rid] = (frame, body)
    return got


def raw(client, op, payload, flags=0, rid=None):
    """One raw request (any payload bytes, any flags) -> (Frame, decoded body) of its reply."""
    rid = rid or next_rid()
    return replies(client, client.writer.pack(op, rid, payload, flags), [rid])[rid]


def error_of(client, op, payload, flags=0):
    """(code, msg) of the ERROR the device answers a raw request with."""
    frame, body = raw(client, op, payload, flags)
    assert frame.op == ops.ERROR and frame.flags & ops.FLAG_ERROR, (frame, body)
    return body["code"], body["msg"]


def assert_serving(client):
    """The agent still answers: a PING echoes its data."""
    data = os.urandom(8)
    assert client.request(ops.PING, {"data": data})["data"] == data


class FdLink:
    """A host link on a raw file descriptor (the master side of a pty the agent opened)."""

    url = "pty-master"

    def __init__(self, fd, timeout=0.1):
        self.fd = fd
        self.timeout = timeout

    def read(self, n):
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        if not ready:
            return b""
        return os.read(self.fd, n)

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self):
        pass
