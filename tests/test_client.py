"""Host client behaviour on a damaged link: requests the device got damaged are sent again."""

import numpy as np

from kpdev.host.boards import get_board
from kpdev.host.client import Client
from kpdev.host.sim import SimBoard
from kpdev.protocol.framing import HEADER_SIZE


class DamagingLink:
    """Flips one payload bit of chosen writes, as line noise on a UART would."""

    def __init__(self, link, damage_writes):
        self.link = link
        self.url = "damaging"
        self.damage = set(damage_writes)
        self.writes = 0

    def read(self, n):
        return self.link.read(n)

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
        assert link.writes == 2 + 3  # HELLO, then the request and its three retries
    finally:
        sim.stop()
