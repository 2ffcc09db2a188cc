"""Sessions on a TCP agent with a key: frames of other sessions and boots change nothing, an idle
stranger locks nobody out, and several clients at once each get their own answers (R4, R6)."""

import socket
import threading
import time

import cbor2
import numpy as np
import pytest
from support.agents import KEY, assert_serving, free_port, replies
from support.packs import device_pack, upload_all
from support.paths import read_data

from kpdev.host.client.client import Client
from kpdev.host.errors import AuthError
from kpdev.host.link.transport import open_url
from kpdev.protocol import ops
from kpdev.protocol.framing import FrameWriter

DENSE = read_data("dense_int8.tflite")
BOARDS = ["sim-linux", "sim-mcu"]
OTHER_KEY = bytes(range(1, 33))
ZEROS = np.zeros((1, 16), np.int8)


def listen(agents, board, state=None):
    port = free_port()
    agent = agents.start(board, state=state, link="tcp://127.0.0.1:%d" % port, key=KEY)
    agent.wait_log(r"listening on tcp://127\.0\.0\.1:%d" % port)
    return agent, port


def connect(port, key=KEY, hello=True):
    client = Client(open_url("socket://127.0.0.1:%d" % port), key=key, timeout=10)
    if hello:
        client.hello()
    return client


class Recorder:
    """A link that keeps a copy of every frame written through it."""

    def __init__(self, link):
        self.link = link
        self.sent = []

    def read(self, n):
        return self.link.read(n)

    def write(self, data):
        self.sent.append(bytes(data))
        self.link.write(data)

    def close(self):
        self.link.close()


def state_of(client):
    """What a replayed MODEL_DELETE, PACK_CLEAR or STATS reset would change."""
    stats = client.stats()
    return {
        "models": sorted(m["name"] for m in client.models()["models"]),
        "pack": client.pack_get(),
        "inferences": {k: v["count"] for k, v in stats["models"].items()},
    }


def refused(client, frames, codes):
    """Send raw frames on the client's link; each must be refused with one of ``codes``."""
    for data in frames:
        rid = int.from_bytes(data[4:6], "little")
        frame, body = replies(client, data, [rid])[rid]
        assert frame.op == ops.ERROR and body["code"] in codes, (frame, body)


@pytest.mark.parametrize("board", BOARDS)
def test_frames_of_no_key_another_key_another_session_or_boot_change_nothing(agents, board):
    agent, port = listen(agents, board)
    first = connect(port)
    upload_all(first)
    first.pack_set(device_pack())
    first.upload("victim", DENSE, "tflite")
    first.infer(ZEROS, "victim")

    # Real frames of one session, recorded on their way: they delete, clear and reset.
    recorder = first.link = Recorder(first.link)
    first.delete("victim")
    first.pack_clear()
    first.stats(reset=True)
    captured = recorder.sent[-3:]
    assert [c[3] for c in captured] == [ops.MODEL_DELETE, ops.PACK_CLEAR, ops.STATS]
    first.link = recorder.link
    first.upload("victim", DENSE, "tflite")
    first.pack_set(device_pack())
    first.infer(ZEROS, "victim")
    before = state_of(first)
    assert "victim" in before["models"] and before["pack"] and before["inferences"]

    def strangers_frames(writer):
        return [
            writer.pack(ops.MODEL_DELETE, 0x7300, cbor2.dumps({"name": "victim"})),
            writer.pack(ops.PACK_CLEAR, 0x7301, b"\xa0"),
            writer.pack(ops.STATS, 0x7302, cbor2.dumps({"reset": True})),
        ]

    # The same session: the counters are spent.
    refused(first, captured, {ops.E_REPLAY})
    assert state_of(first) == before
    first.close()  # MicroPython serves one connection at a time
    # No key, another key, on a connection of their own.
    stranger = connect(port, key=None, hello=False)
    refused(stranger, strangers_frames(FrameWriter()), {ops.E_KEY_REQUIRED})
    stranger.close()
    stranger = connect(port, key=OTHER_KEY, hello=False)
    with pytest.raises(AuthError):
        stranger.hello()
    stranger.close()
    stranger = connect(port, key=None, hello=False)  # reads the replies without checking them
    hello = FrameWriter(OTHER_KEY).pack(ops.HELLO, 0x72FF, b"\xa0")
    refused(stranger, [hello], {ops.E_AUTH})
    refused(stranger, strangers_frames(FrameWriter(OTHER_KEY)), {ops.E_REPLAY})
    stranger.close()
    # Another session: raw on a new connection, before and after a HELLO of its own.
    second = connect(port, hello=False)
    refused(second, captured, {ops.E_REPLAY})
    second.hello()
    refused(second, captured, {ops.E_AUTH})
    assert state_of(second) == before
    second.close()

    # After a restart of the agent (RAM state gone; the store and the pack are in files).
    agent.stop()
    agent, port = listen(agents, board, state=agent.state)
    third = connect(port, hello=False)
    refused(third, captured, {ops.E_REPLAY})
    third.hello()
    refused(third, captured, {ops.E_AUTH})
    after = state_of(third)
    assert after["models"] == before["models"] and after["pack"] == before["pack"]
    stats = third.stats()
    assert set(stats["errors"]) <= {ops.E_REPLAY, ops.E_AUTH}
    assert stats["link"]["replays"] == 3 and stats["link"]["auth_failures"] == 3, stats["link"]
    assert_serving(third)
    third.close()
    assert agent.alive(), agent.log()


@pytest.mark.parametrize("board", BOARDS)
def test_a_keyed_client_is_served_while_a_stranger_holds_a_connection(agents, board):
    agent, port = listen(agents, board)
    for stranger_sends in (b"", FrameWriter().pack(ops.PING, 1, b"\xa0")):
        idle = socket.create_connection(("127.0.0.1", port))
        idle.sendall(stranger_sends)
        time.sleep(0.3)  # the agent has taken it
        t0 = time.monotonic()
        client = connect(port)
        assert_serving(client)
        waited = time.monotonic() - t0
        assert waited < 1.0, "%s: the keyed client waited %.2f s" % (board, waited)
        client.close()
        idle.close()
    assert agent.alive(), agent.log()


@pytest.mark.parametrize("board", BOARDS)
def test_an_idle_unauthenticated_connection_is_closed(agents, board):
    agent, port = listen(agents, board)
    idle = socket.create_connection(("127.0.0.1", port))
    idle.settimeout(10)
    t0 = time.monotonic()
    assert idle.recv(100) == b""  # closed by the agent, with nobody else waiting
    assert 2.5 < time.monotonic() - t0 < 8
    client = connect(port)
    assert_serving(client)
    client.close()


def test_eight_sessions_at_once_each_get_their_own_answers(agents):
    # R6 bounded (bench/sessions.py runs 8 x 10,000): 8 keyed clients, each with inputs and PING
    # data of its own, all connected and in mid-run together.
    agent, port = listen(agents, "sim-linux")
    setup = connect(port)
    setup.upload("dense", DENSE, "tflite")
    rng = np.random.default_rng(5)
    xs = [[rng.integers(-128, 128, (1, 16)).astype(np.int8) for _ in range(8)] for _ in range(8)]
    expected = [[setup.infer(x, "dense")[0][0] for x in row] for row in xs]
    setup.close()
    n = 200
    clients = [connect(port) for _ in range(8)]  # all open at once before any request
    wrong = [0] * 8
    done = [0] * 8
    progress_when_first_done = []

    def session(s):
        c = clients[s]
        for i in range(n):
            if i % 2:
                data = b"s%d-%d" % (s, i)
                wrong[s] += c.request(ops.PING, {"data": data})["data"] != data
            else:
                y = c.infer(xs[s][i // 2 % 8], "dense")[0][0]
                wrong[s] += not np.array_equal(y, expected[s][i // 2 % 8])
            done[s] += 1
        if not progress_when_first_done:
            progress_when_first_done.append(list(done))

    threads = [threading.Thread(target=session, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert done == [n] * 8 and wrong == [0] * 8
    # No session waited for another to finish: all were under way when the first was done.
    assert min(progress_when_first_done[0]) > 0, progress_when_first_done
    st = clients[0].stats()
    assert st["errors"] == {} and st["link"] == st["link_connection"]
    for c in clients:
        c.close()
    assert agent.alive(), agent.log()
