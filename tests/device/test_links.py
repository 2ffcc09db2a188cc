"""The agent on real links: ptys through pyserial, its own TtyLink, loopback TCP, reconnects."""

import os
import socket
import struct
import termios
import time
import tty

import cbor2
import numpy as np
import pytest
from support.agents import KEY, FdLink, assert_serving, free_port, replies
from support.paths import read_data
from support.reference import reference

from kpdev.device.links import is_loopback
from kpdev.host.client.client import Client
from kpdev.host.errors import LinkTimeout
from kpdev.host.link.transport import open_url
from kpdev.protocol import ops
from kpdev.protocol.framing import FrameWriter

DENSE = read_data("dense_int8.tflite")
RUNTIMES = ["sim-mcu", "sim-linux"]  # one board per agent runtime


def exercise(client, micropython):
    """One pass over the protocol on a link: big pings, an upload, inference, damage."""
    for n in (0, 100, client.max_payload - 64):
        data = os.urandom(n)
        assert client.request(ops.PING, {"data": data})["data"] == data
    done = client.upload("dense", DENSE, "tflite")
    assert done["size"] == len(DENSE) and done["active"] is True
    x = np.arange(-8, 8, dtype=np.int8).reshape(1, 16)
    # Every board runs it (tflite_int8 on MicroPython, tflite_micro on CPython): same bytes.
    assert np.array_equal(client.infer(x)[0][0], reference(DENSE, x))
    client.link.write(bytes(range(0x00, 0xA5)))  # garbage
    bad = bytearray(client.writer.pack(ops.PING, 0x6000, cbor2.dumps({"data": b"abc"})))
    bad[-2] ^= 0xFF
    assert replies(client, bytes(bad), [0x6000])[0x6000][1]["code"] == ops.E_BAD_CRC
    assert_serving(client)
    link = client.stats()["link"]
    assert link["crc_errors"] == 1 and link["garbage_bytes"] >= 0xA5


def raw_pty():
    """A pty pair with the slave in raw mode, so no byte is echoed or translated."""
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


def hello_when_ready(client, tries=50):
    """HELLO until answered: bytes sent before the agent opened and set up its port are lost."""
    timeout, client.timeout = client.timeout, 0.2
    try:
        for _ in range(tries):
            try:
                return client.hello()
            except LinkTimeout:
                continue
        raise AssertionError("the agent never answered HELLO")
    finally:
        client.timeout = timeout


# --- pty: the agent on the master as its stdio, the host through pyserial ------------------


@pytest.mark.parametrize("board", RUNTIMES)
def test_pty_through_pyserial(agents, board):
    master, slave, path = raw_pty()
    agent = agents.start(board, stdin=master, stdout=master)
    os.close(master)
    client = Client(open_url(path), timeout=10)
    try:
        info = client.hello()
        assert info["board"] == board
        exercise(client, agent.micropython)
    finally:
        client.close()
        os.close(slave)


@pytest.mark.parametrize(
    "board",
    [
        "sim-mcu",
        "sim-linux",
    ],
)
def test_pty_hangup_is_a_clean_end_of_stream(agents, board):
    master, slave, path = raw_pty()
    agent = agents.start(board, stdin=master, stdout=master)
    os.close(master)
    client = Client(open_url(path), timeout=10)
    client.hello()
    client.close()
    os.close(slave)
    assert agent.proc.wait(10) == 0, agent.log()
    assert "Errno" not in agent.log() and "Traceback" not in agent.log()


# --- the agent's own TtyLink on a pty slave ---------------------------------------------------


@pytest.mark.parametrize("board", RUNTIMES)
def test_agent_tty_link_on_a_pty(agents, board):
    master, slave, path = raw_pty()
    agent = agents.start(board, link=path)
    client = Client(FdLink(master), timeout=10)
    try:
        info = hello_when_ready(client)
        assert info["board"] == board
        exercise(client, agent.micropython)
    finally:
        os.close(master)
        os.close(slave)
    assert agent.proc.wait(10) in (0, 2)  # the pty went away under it


@pytest.mark.parametrize(
    "board",
    [
        "sim-mcu",
        "sim-linux",
    ],
)
def test_agent_tty_link_sets_the_baud_rate(agents, board):
    master, slave, path = raw_pty()
    agents.start(board, link=path + ":57600")
    client = Client(FdLink(master), timeout=10)
    try:
        hello_when_ready(client)
        attrs = termios.tcgetattr(slave)
        assert (attrs[4], attrs[5]) == (termios.B57600, termios.B57600)
    finally:
        os.close(master)
        os.close(slave)


# --- TCP on loopback --------------------------------------------------------------------------


def tcp_client(port, key=None):
    client = Client(open_url("socket://127.0.0.1:%d" % port), key=key, timeout=10)
    client.hello()
    return client


@pytest.mark.parametrize("board", RUNTIMES)
def test_tcp_loopback_serves_one_client_after_another(agents, board):
    port = free_port()
    agent = agents.start(board, link="tcp://127.0.0.1:%d" % port)
    agent.wait_log(r"listening on tcp://127\.0\.0\.1:%d port %d" % (port, port))

    first = tcp_client(port)
    assert first.device["board"] == board
    exercise(first, agent.micropython)
    first.link.write(first.writer.pack(ops.PING, 1, b"\xa0")[:7])  # half a frame, then gone
    first.close()

    second = tcp_client(port)
    assert_serving(second)
    assert [m["name"] for m in second.models()["models"]] == ["dense"]
    # A third client connects while the second is still served; it is answered once the
    # second leaves.
    third = Client(open_url("socket://127.0.0.1:%d" % port), timeout=10)
    rid = third.send(ops.PING, {"data": b"third"})
    assert_serving(second)
    second.close()
    assert third.wait(rid)["data"] == b"third"
    third.close()

    assert agent.alive(), agent.log()


@pytest.mark.parametrize("board", RUNTIMES)
def test_tcp_client_gone_mid_frame_or_mid_burst_then_the_next_is_served(agents, board):
    port = free_port()
    agent = agents.start(board, link="tcp://127.0.0.1:%d" % port)
    agent.wait_log(r"listening on tcp://127\.0\.0\.1:%d" % port)
    first = tcp_client(port)
    first.link.write(first.writer.pack(ops.PING, 1, cbor2.dumps({"data": bytes(100)}))[:40])
    first.close()
    time.sleep(1.3)  # quiet long enough (over 1 s) for the agent to give up on the half frame
    assert_serving(tcp_client(port))

    # Clients that send a burst and vanish without reading their replies.
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", port)) as s:
            writer = FrameWriter()
            ping = cbor2.dumps({"data": bytes(900)})
            s.sendall(b"".join(writer.pack(ops.PING, i + 1, ping) for i in range(40)))
            # Linger 0: the close is a reset, and the agent's replies hit a dead socket.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(1.3)
    last = tcp_client(port)
    assert_serving(last)
    # A new client starts a clean stream.
    assert last.stats()["link_connection"]["garbage_bytes"] == 0
    last.close()
    assert agent.alive(), agent.log()


@pytest.mark.parametrize("key", [None, KEY], ids=["no-key", "key"])
@pytest.mark.parametrize("board", RUNTIMES)
def test_two_ctrl_c_never_stop_an_agent_on_tcp(agents, board, key):
    # Two Ctrl-C once ended the serving loop over TCP, with or without a key: a remote stop.
    port = free_port()
    agent = agents.start(board, link="tcp://127.0.0.1:%d" % port, key=key)
    agent.wait_log(r"listening on tcp://127\.0\.0\.1:%d" % port)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"\x03\x03")  # alone, as the first bytes of a connection
        time.sleep(0.5)
    client = tcp_client(port, key)
    client.link.write(b"\x03\x03")  # alone, between the frames of a session
    time.sleep(0.5)
    assert_serving(client)
    client.close()
    assert agent.alive(), agent.log()


def noisy(client, crc_errors, garbage):
    """Send ``garbage`` bytes outside any frame and ``crc_errors`` frames with a damaged payload;
    returns the garbage bytes the agent's parser must count (§3: a bad CRC skips the sync word,
    and the rest of the frame is rescanned as garbage)."""
    client.link.write(bytes(range(1, garbage + 1)))  # no A5 among them: all skipped
    for i in range(crc_errors):
        bad = bytearray(client.writer.pack(ops.PING, 0x6200 + i, cbor2.dumps({"data": b"abc"})))
        bad[-2] ^= 0xFF
        assert replies(client, bytes(bad), [0x6200 + i])[0x6200 + i][1]["code"] == ops.E_BAD_CRC
        garbage += len(bad) - 2
    return garbage


@pytest.mark.parametrize("board", RUNTIMES)
def test_tcp_link_counters_since_start_outlive_a_connection(agents, board):
    port = free_port()
    agent = agents.start(board, link="tcp://127.0.0.1:%d" % port)
    agent.wait_log(r"listening on tcp://127\.0\.0\.1:%d" % port)
    first = tcp_client(port)
    garbage1 = noisy(first, crc_errors=2, garbage=10)
    st = first.stats()
    assert st["link"]["crc_errors"] == st["link_connection"]["crc_errors"] == 2
    assert st["link"]["garbage_bytes"] == st["link_connection"]["garbage_bytes"] == garbage1
    first.close()

    second = tcp_client(port)
    garbage2 = noisy(second, crc_errors=1, garbage=3)
    st = second.stats()
    assert st["link_connection"]["crc_errors"] == 1
    assert st["link_connection"]["garbage_bytes"] == garbage2
    assert st["link"]["crc_errors"] == 3  # the first session's errors are still there
    assert st["link"]["garbage_bytes"] == garbage1 + garbage2
    assert st["errors"] == {ops.E_BAD_CRC: 3}

    second.stats(reset=True)
    second.close()
    st = tcp_client(port).stats()
    assert set(st["link"].values()) == set(st["link_connection"].values()) == {0}


def test_tcp_port_zero_reports_the_port_chosen(agents):
    agent = agents.start("sim-linux", link="tcp://127.0.0.1:0")
    port = int(agent.wait_log(r"listening on \S+ port (\d+)").group(1))
    assert port != 0
    client = tcp_client(port)
    assert_serving(client)
    client.close()


def test_tcp_port_zero_is_refused_where_the_port_cannot_be_learnt(agents):
    # MicroPython sockets have no getsockname(): nobody could find the port it chose.
    agent = agents.start("sim-mcu", link="tcp://127.0.0.1:0")
    assert agent.proc.wait(30) == 2
    assert "port 0 is not supported" in agent.log() and "Traceback" not in agent.log()


# --- TCP off loopback: a key or an explicit --insecure ---------------------------------------


@pytest.mark.parametrize("board", RUNTIMES)
@pytest.mark.parametrize("host", ["0.0.0.0", "[::]", "192.0.2.1"])
def test_tcp_off_loopback_without_a_key_refuses_to_start(agents, board, host):
    port = free_port()
    agent = agents.start(board, link="tcp://%s:%d" % (host, port))
    assert agent.proc.wait(30) == 2
    log = agent.log()
    assert "refusing to listen" in log and "--key" in log and "--insecure" in log
    assert "Traceback" not in log
    with pytest.raises(OSError):  # it never listened
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.parametrize("board", RUNTIMES)
def test_tcp_off_loopback_with_insecure_starts(agents, board):
    port = free_port()
    agent = agents.start(board, link="tcp://0.0.0.0:%d" % port, args=["--insecure"])
    agent.wait_log(r"listening on tcp://0\.0\.0\.0:%d" % port)
    client = tcp_client(port)  # reached through loopback only
    assert client.device["auth"] is False
    assert_serving(client)
    client.close()


@pytest.mark.parametrize("board", RUNTIMES)
def test_tcp_off_loopback_with_a_key_and_replay_across_connections(agents, board):
    port = free_port()
    agent = agents.start(board, link="tcp://0.0.0.0:%d" % port, args=["--key", KEY.hex()])
    agent.wait_log(r"listening on tcp://0\.0\.0\.0:%d" % port)

    first = tcp_client(port, key=KEY)
    assert first.device["auth"] is True
    captured = first.writer.pack(ops.PING, 0x6100, cbor2.dumps({"data": b"once"}))
    assert replies(first, captured, [0x6100])[0x6100][1]["data"] == b"once"
    first.close()

    # Someone who recorded the traffic replays it on a new connection.
    second = Client(open_url("socket://127.0.0.1:%d" % port), key=KEY, timeout=10)
    assert replies(second, captured, [0x6100])[0x6100][1]["code"] == ops.E_REPLAY
    second.hello()
    unsigned = FrameWriter().pack(ops.PING, 0x6101, b"\xa0")
    assert replies(second, unsigned, [0x6101])[0x6101][1]["code"] == ops.E_KEY_REQUIRED
    assert_serving(second)
    second.close()


# --- which hosts count as loopback ------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com"])
def test_non_loopback_hosts(host):
    assert not is_loopback(host)


def test_a_hostname_that_merely_starts_with_127_is_not_loopback():
    assert not is_loopback("127.attacker.example")


# --- reading in blocks on the MicroPython unix port -------------------------------------------

_READER = """
import sys
from kpdev.device.links.base import PollReader, LinkClosed
r = PollReader(sys.stdin.buffer, %s)
buf = bytearray(4096)
sizes = []
while True:
    try:
        sizes.append(r.readinto(buf, 100))
    except LinkClosed:
        break
print([s for s in sizes if s], 0 in sizes)
"""


@pytest.mark.parametrize("blocks", [True, False])
def test_micropython_poll_reader_returns_what_has_arrived(blocks):
    # kpdev gives the unix port a non-blocking stdin pipe (and says so): one readinto per block.
    # On a blocking stream it reads byte by byte but returns the same.  Either way a quiet
    # stream is a timeout (an empty read), not a wait for a full buffer, and EOF ends it.
    import subprocess

    from kpdev.host.boards.catalog import get_board
    from kpdev.host.boards.sim import agent_command, popen_agent

    argv, env = agent_command(get_board("sim-mcu"))
    proc = popen_agent(
        [argv[0], "-c", _READER % blocks], env, subprocess.PIPE, subprocess.PIPE, None, blocks
    )
    with open("/proc/%d/fdinfo/0" % proc.pid) as f:
        flags = int(next(line for line in f if line.startswith("flags:")).split()[1], 8)
    assert bool(flags & os.O_NONBLOCK) == blocks
    proc.stdin.write(bytes(range(256)) * 12)  # 3,072 B: under PIPE_BUF, all there at once
    time.sleep(0.3)
    proc.stdin.write(b"0123456789")
    time.sleep(0.3)
    proc.stdin.close()
    out = proc.stdout.read().decode()
    assert proc.wait(10) == 0
    # Quiet: [3072, 10].  On a loaded machine the reader may be off the CPU when the 10 bytes
    # come (they join the byte-by-byte read), never a wait for 4,096 B.
    assert out.split() in (["[3072,", "10]", "True"], ["[3082]", "True"]), out


def test_sim_mcu_agent_is_started_on_a_non_blocking_stdin(agents):
    # What tells the agent it may read in blocks: O_NONBLOCK on its stdin and the variable.
    from kpdev.host.boards.sim import NONBLOCKING_STDIN

    a = agents.start("sim-mcu")
    pid = a.proc.pid
    with open("/proc/%d/fdinfo/0" % pid) as f:
        flags = int(next(line for line in f if line.startswith("flags:")).split()[1], 8)
    assert flags & os.O_NONBLOCK
    with open("/proc/%d/environ" % pid, "rb") as f:
        assert (NONBLOCKING_STDIN + "=1").encode() in f.read().split(b"\0")
    c = a.client()
    data = os.urandom(c.max_payload - 64)
    assert c.request(ops.PING, {"data": data})["data"] == data


# --- what a read costs a board's heap ----------------------------------------------------------

_ALLOCS = """
import gc, sys
from kpdev.device.links.base import PollReader, LinkClosed
from kpdev.protocol.framing import FrameParser
r = PollReader(sys.stdin.buffer, %s)
p = FrameParser(2048)
rows = []
bufs = []
sums = []
p.filled(r.readinto(p.space(), 0))  # nothing has come yet: first calls, once
gc.collect()
gc.disable()  # gc.mem_alloc() then counts every byte allocated
while True:
    held = p.pending()
    a0 = gc.mem_alloc()
    room = p.space()
    try:
        n = r.readinto(room, 200)
    except LinkClosed:
        break
    a1 = gc.mem_alloc()
    room = None
    frames = p.filled(n)
    a2 = gc.mem_alloc()
    rows.append((held, n, a1 - a0, len(frames), a2 - a1))
    if id(p._buf) not in bufs:
        bufs.append(id(p._buf))
    for f in frames:
        sums.append(sum(f.payload) if f.payload else -1)
    frames = None
    gc.collect()
print(repr(rows))
print(len(bufs), repr(sums))
"""


@pytest.mark.parametrize("blocks", [True, False])
def test_micropython_reads_allocate_nothing_until_a_frame_is_whole(blocks):
    # The agent's read path on the unix port: the link reads into the parser's buffer.  A read
    # that starts with nothing held allocates nothing, and one that continues a partial frame
    # one memoryview (its room); the parser allocates only for frames it hands out, and its
    # buffer is made once and grown once (to the largest frame), whatever the pieces.
    import subprocess

    from kpdev.host.boards.catalog import get_board
    from kpdev.host.boards.sim import agent_command, popen_agent

    argv, env = agent_command(get_board("sim-mcu"))
    script = [argv[0], "-X", "heapsize=2M", "-c", _ALLOCS % blocks]
    proc = popen_agent(script, env, subprocess.PIPE, subprocess.PIPE, None, blocks)
    writer = FrameWriter()
    payloads = [bytes([i]) * (1900 - 97 * i) for i in range(12)]
    try:
        time.sleep(0.5)  # the reader is waiting before the first byte comes
        for i, payload in enumerate(payloads):
            frame = writer.pack(ops.PING, i + 1, payload)
            for piece in (frame[:5], frame[5:700], frame[700:]):  # a frame in three pieces
                proc.stdin.write(piece)
                time.sleep(0.05)
        proc.stdin.close()
        out = proc.stdout.read().decode().splitlines()
        assert proc.wait(20) == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = eval(out[0])  # noqa: S307  (a list of tuples of ints, printed by our own script)
    buffers, sums = out[1].split(" ", 1)
    assert eval(sums) == [sum(p) for p in payloads]  # noqa: S307
    assert int(buffers) == 2  # the first small buffer, then the one grown to the largest frame
    assert sum(n for _, n, _, _, _ in rows) == sum(len(p) + 16 for p in payloads)
    assert len(rows) > len(payloads)  # the frames did arrive in pieces
    # The loop's first pass allocates once (its own first run, whatever was read): not a read's.
    for held, _, read_alloc, _, _ in rows[1:]:
        if held == 0:
            assert read_alloc == 0, rows
        else:
            assert read_alloc <= 48, rows  # one memoryview of the room after the held bytes
    # Reads that complete no frame: the parser allocates nothing, but for a header it checks
    # (struct's tuples and a memoryview: once per frame, not again while its rest arrives), and
    # once, when the first frame larger than its first buffer grows it (2,088 B and a view).
    costs = [row[4] for row in rows[1:] if not row[3] and row[4]]
    grown = [c for c in costs if c > 256]
    assert len(grown) == 1 and 2088 <= grown[0] <= 2088 + 512, rows
    assert len(costs) - 1 <= len(payloads) and max(costs[1:] or [0]) <= 256, rows
