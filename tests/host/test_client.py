"""Host client behaviour on a damaged link: requests the device got damaged are sent again."""

import cbor2
import numpy as np

from kpdev.host.boards.catalog import get_board
from kpdev.host.boards.sim import SimBoard
from kpdev.host.client.client import Client
from kpdev.protocol import ops
from kpdev.protocol.framing import HEADER_SIZE, FrameParser, FrameWriter


class DamagingLink:
    """Flips one payload bit of chosen writes, as line noise on a UART would."""

    def __init__(self, link, damage_writes):
        self.link = link
        self.url = "damaging"
        self.damage = set(damage_writes)
        self.writes = 0

    def read(self, n):
        return self.link.read(n)

    def set_timeout(self, timeout):
        self.link.set_timeout(timeout)

    def write(self, data):
        self.writes += 1
        if self.writes in self.damage and len(data) > HEADER_SIZE:
            data = bytearray(data)
            data[HEADER_SIZE] ^= 0x10
        self.link.write(bytes(data))

    def close(self):
        self.link.close()


def test_damaged_requests_are_retransmitted_and_answered():
    sim = SimBoard(get_board("sim-linux"))
    link = DamagingLink(sim.link(), damage_writes={2, 3, 5})
    try:
        c = Client(link, timeout=10)
        c.hello()  # write 1
        data = b"ping-after-noise"
        assert c.request(0x03, {"data": data})["data"] == data  # writes 2, 3 damaged, 4 ok
        c.upload("m", bytes(range(256)) * 8, "tflite")  # write 5 (BEGIN) damaged once
        assert [m["name"] for m in c.models()["models"]] == ["m"]
        st = c.stats()
        assert st["link"]["crc_errors"] == 3
        assert st["errors"] == {1: 3}
    finally:
        sim.stop()


def test_a_request_damaged_every_time_fails_with_the_crc_error():
    sim = SimBoard(get_board("sim-linux"))
    link = DamagingLink(sim.link(), damage_writes=set(range(2, 100)))
    try:
        c = Client(link, timeout=10)
        c.hello()
        try:
            c.infer(np.zeros((1, 16), np.int8))
        except Exception as e:  # noqa: BLE001 - the type and code are what is checked
            assert getattr(e, "code", None) == 1 and "BAD_CRC" in str(e)
        else:
            raise AssertionError("a request damaged on every try succeeded")
        assert link.writes == 2 + 8  # HELLO, then the request and its eight resends
    finally:
        sim.stop()


class StaleReplyLink:
    """Echoes PINGs; before the first reply, a reply meant for another client arrives."""

    url = "stale"

    def __init__(self, stale_rid):
        self.stale_rid = stale_rid
        self.pending = b""
        self.writer = FrameWriter()

    def write(self, data):
        frame = FrameParser(1 << 16).feed(data)[0]
        if self.stale_rid is not None:
            stale = cbor2.dumps({"data": b"not yours"})
            self.pending += self.writer.pack(frame.op, self.stale_rid, stale, ops.FLAG_RESPONSE)
            self.stale_rid = None
        self.pending += self.writer.pack(frame.op, frame.rid, frame.payload, ops.FLAG_RESPONSE)

    def read(self, n):
        data, self.pending = self.pending[:n], self.pending[n:]
        return data

    def close(self):
        pass


def test_a_reply_to_a_request_not_ours_is_ignored():
    """A late reply on a shared agent (to a client that gave up) never answers our request."""
    rids = {Client(StaleReplyLink(None))._next_rid for _ in range(20)}
    assert all(0 <= r < 0x8000 for r in rids)
    assert len(rids) > 10  # each client starts its request ids somewhere else
    c = Client(StaleReplyLink(None))
    first = c._next_rid
    c.link = StaleReplyLink((first + 2) & 0xFFFF or 1)
    # Our request goes out as first + 1 while a stale reply with the id of our next one comes.
    assert c.request(ops.PING, {"data": b"one"})["data"] == b"one"
    # The next request (that id) gets its own answer, not the stale one seen earlier.
    assert c.request(ops.PING, {"data": b"two"})["data"] == b"two"
