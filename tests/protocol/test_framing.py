"""Frames: golden vectors and the sans-IO parser's recovery, under CPython and real MicroPython."""

import hashlib
import hmac
import struct
import zlib

import pytest

from kpdev.protocol import ops

DRIVER = "framing_driver.py"  # the ``impl`` fixture runs it under CPython and MicroPython


def h(s):
    return bytes.fromhex(s.replace(" ", ""))


KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
PING_BODY = h("a1 64 64617461 42 6869")  # {"data": b"hi"}
ERROR_BODY = h("a3 64636f6465 12 636d7367 69 626164207368617065 626f70 1820")

# PING request, id 1, no key.
GOLDEN_PING = h("a54b 10 03 0100 09000000 a083a16464617461426869dd2fba98")
# The same PING, id 7, signed with KEY as the writer's 42nd frame.
GOLDEN_AUTH = h(
    "a54b 18 03 0700 09000000 087b"
    "a16464617461426869"
    "dd2fba98"
    "2a00000000000000"
    "be224c89b1e39e493f5d4aa1ded6dd18"
)
# ERROR reply to request 5: {"code": 18, "msg": "bad shape", "op": 32}.
GOLDEN_ERROR = h("a54b 13 7f 0500 1a000000 7b84" + ERROR_BODY.hex() + "e51ec46c")


def reference_frame(flags, op, rid, payload, key=None, counter=0):
    """docs/protocol.md's layout built with zlib and hmac, independent of kpdev's code."""
    head = struct.pack("<BBBBHI", 0xA5, 0x4B, 0x10 | flags, op, rid, len(payload))
    head += struct.pack("<H", zlib.crc32(head) & 0xFFFF)
    out = head + payload + struct.pack("<I", zlib.crc32(payload))
    if key:
        c = struct.pack("<Q", counter)
        out += c + hmac.new(key, head + payload + c, hashlib.sha256).digest()[:16]
    return out


def desc(op, rid, flags, payload, counter=0, error=0):
    """What the driver prints for one frame."""
    text = "-" if payload is None else payload.hex()
    return "%d,%d,%d,%s,%d,%d" % (op, rid, flags, text, counter, error)


def frame(op, rid, payload, flags=0):
    return reference_frame(flags, op, rid, payload)


def counters(garbage=0, header=0, crc=0, oversize=0, auth=0, replay=0, pending=0, last=0):
    return "garbage=%d header=%d crc=%d oversize=%d auth=%d replay=%d pending=%d last=%d" % (
        garbage,
        header,
        crc,
        oversize,
        auth,
        replay,
        pending,
        last,
    )


PING1 = desc(ops.PING, 1, 0, PING_BODY)
ERROR5 = desc(ops.ERROR, 5, ops.FLAG_RESPONSE | ops.FLAG_ERROR, ERROR_BODY)


# --- golden vectors -------------------------------------------------------------------------


def test_golden_vectors_follow_the_documented_layout():
    assert GOLDEN_PING == reference_frame(0, ops.PING, 1, PING_BODY)
    assert GOLDEN_AUTH == reference_frame(ops.FLAG_AUTH, ops.PING, 7, PING_BODY, KEY, 42)
    assert GOLDEN_ERROR == reference_frame(
        ops.FLAG_RESPONSE | ops.FLAG_ERROR, ops.ERROR, 5, ERROR_BODY
    )


def test_golden_encode(impl):
    out = impl.run(
        [
            "pack - 0 %d 1 0 %s" % (ops.PING, PING_BODY.hex()),
            "pack %s 41 %d 7 0 %s" % (KEY.hex(), ops.PING, PING_BODY.hex()),
            "pack - 0 %d 5 3 %s" % (ops.ERROR, ERROR_BODY.hex()),
        ]
    )
    assert out == [
        GOLDEN_PING.hex() + " counter=0",
        GOLDEN_AUTH.hex() + " counter=42",
        GOLDEN_ERROR.hex() + " counter=0",
    ]


def test_golden_decode(impl):
    out = impl.run(
        [
            "parser 1024 -",
            "feed " + GOLDEN_PING.hex(),
            "feed " + GOLDEN_ERROR.hex(),
            "counters",
            "parser 1024 " + KEY.hex(),
            "feed " + GOLDEN_AUTH.hex(),
            "counters",
        ]
    )
    assert out == [
        "ok",
        PING1,
        ERROR5,
        counters(),
        "ok",
        desc(ops.PING, 7, ops.FLAG_AUTH, PING_BODY, counter=42),
        counters(last=42),
    ]


def test_writer_signs_with_increasing_counters_and_never_flags_auth_without_a_key(impl):
    out = impl.run(
        [
            "pack %s 0 %d 9 0 a0 a0 a0" % (KEY.hex(), ops.INFO),
            "pack - 0 %d 9 %d a0" % (ops.INFO, ops.FLAG_AUTH),
            "pack - 0 %d 9 0 ." % ops.INFO,
        ]
    )
    signed = out[0].split()
    assert signed[3] == "counter=3"
    for n, got in enumerate(signed[:3], 1):
        assert h(got) == reference_frame(ops.FLAG_AUTH, ops.INFO, 9, b"\xa0", KEY, n)
    assert out[1] == reference_frame(0, ops.INFO, 9, b"\xa0").hex() + " counter=0"
    assert out[2] == reference_frame(0, ops.INFO, 9, b"").hex() + " counter=0"


# --- incremental parsing and recovery -------------------------------------------------------


def test_frames_fed_one_byte_at_a_time(impl):
    stream = GOLDEN_PING + GOLDEN_ERROR + frame(ops.INFO, 2, b"")
    out = impl.run(["parser 1024 -", "bytewise " + stream.hex(), "counters"])
    assert out[1] == " ".join([PING1, ERROR5, desc(ops.INFO, 2, 0, b"")])
    assert out[2] == counters()


def test_split_anywhere(impl):
    lines = ["parser 1024 -"]
    for cut in range(1, len(GOLDEN_PING)):
        lines.append("feed %s %s" % (GOLDEN_PING[:cut].hex(), GOLDEN_PING[cut:].hex()))
    lines.append("counters")
    out = impl.run(lines)
    assert out[1:-1] == [PING1] * (len(GOLDEN_PING) - 1)
    assert out[-1] == counters()


def test_garbage_before_and_between_frames(impl):
    junk1 = b"hello\r\n\x00\xff\xa5"  # ends in half a sync word
    junk2 = b"\xa5\x4b" + bytes(10) + b"\x4b\x4b"  # a sync word with a bad header check
    junk3 = b"\xa5\xa5\x4b\x4b"  # a sync word after half of one, then a bad header check
    stream = junk1 + GOLDEN_PING + junk2 + GOLDEN_ERROR + junk3 + GOLDEN_PING
    out = impl.run(["parser 1024 -", "feed " + stream.hex(), "counters"])
    assert out[1] == " ".join([PING1, ERROR5, PING1])
    assert out[2] == counters(garbage=len(junk1 + junk2 + junk3), header=2)


def test_truncated_frame_then_good_ones_crc_error_then_resync(impl):
    long_ping = frame(ops.PING, 3, b"\x41" + bytes(40))  # 57 bytes; the host gave up half-way
    cut = long_ping[:20]
    good = GOLDEN_PING + GOLDEN_ERROR + GOLDEN_PING
    out = impl.run(["parser 1024 -", "feed %s %s" % (cut.hex(), good.hex()), "counters"])
    # The cut frame's declared length swallows the good frames; its CRC fails, then the parser
    # rescans what it swallowed and finds every one of them.
    assert out[1] == " ".join(
        [desc(ops.PING, 3, 0, None, error=ops.E_BAD_CRC), PING1, ERROR5, PING1]
    )
    assert out[2].startswith("garbage=") and " crc=1 " in out[2]
    assert out[2].endswith(" pending=0 last=0")


def test_truncated_frame_then_resync_finds_the_next_frame(impl):
    long_ping = frame(ops.PING, 3, b"\x41" + bytes(60))
    out = impl.run(
        [
            "parser 1024 -",
            "feed %s %s" % (long_ping[:30].hex(), GOLDEN_PING.hex()),
            "resync",
            "counters",
        ]
    )
    assert out[1] == "none"  # still waiting for the rest of the cut frame
    assert out[2] == PING1
    assert out[3] == counters(garbage=30)


def claim(length, rid=9):
    """A valid header claiming ``length`` payload bytes, with nothing behind it."""
    head = struct.pack("<BBBBHI", 0xA5, 0x4B, 0x10, ops.PING, rid, length)
    return head + struct.pack("<H", zlib.crc32(head) & 0xFFFF)


def test_a_quiet_moment_gives_up_a_claim_that_hides_a_header(impl):
    # A header claiming the largest payload, then a whole frame, then silence: the claimed
    # bytes cannot be its payload, so the frame behind it is answered without waiting.
    out = impl.run(["parser 1024 -", "feed %s%s" % (claim(1024).hex(), GOLDEN_PING.hex())])
    assert out[1] == "none"  # the PING lies inside the claim
    out = impl.run(
        ["parser 1024 -", "bytewise %s%s" % (claim(1024).hex(), GOLDEN_PING.hex()), "quiet"]
        + ["counters"]
    )
    assert out[1:3] == ["none", PING1]
    assert out[3] == counters(garbage=12)


def test_a_quiet_moment_clears_a_burst_of_claims(impl):
    # Claims nested in claims, with noise between them (no sync word in it): one quiet moment
    # unwinds them all and finds the frame at the end.
    burst = b"".join(claim(1000 - i, rid=i) + bytes(range(1, 20 + i)) for i in range(8))
    out = impl.run(["parser 1024 -", "feed " + (burst + GOLDEN_PING).hex(), "quiet", "counters"])
    assert out[1:3] == ["none", PING1]
    assert out[3] == counters(garbage=len(burst))


def test_a_quiet_moment_keeps_a_partial_frame_that_hides_nothing(impl):
    # A cut frame with no header inside (a sync word whose header check fails is not one) is
    # kept until the link has been quiet for too long.
    cut = frame(ops.PING, 3, b"\x41" + b"\xa5\x4b" + bytes(60))[:40]
    out = impl.run(["parser 1024 -", "feed " + cut.hex(), "quiet", "counters", "resync"])
    assert out[1:3] == ["none", "none"]
    assert out[3] == counters(pending=40)
    out = impl.run(["parser 1024 -", "feed " + cut.hex(), "resync", "counters"])
    assert out[2] == "none" and out[3].endswith("pending=0 last=0")


def test_corrupted_payload_byte_is_a_crc_error_then_next_frame(impl):
    bad = bytearray(GOLDEN_PING)
    bad[14] ^= 0x01
    out = impl.run(["parser 1024 -", "feed " + (bytes(bad) + GOLDEN_ERROR).hex(), "counters"])
    assert out[1] == " ".join([desc(ops.PING, 1, 0, None, error=ops.E_BAD_CRC), ERROR5])
    assert " crc=1 " in out[2] and "header=0" in out[2] and out[2].endswith("pending=0 last=0")


@pytest.mark.parametrize("where", range(2, 12))
def test_corrupted_header_gives_no_frame_and_resyncs(impl, where):
    bad = bytearray(GOLDEN_ERROR)
    bad[where] ^= 0x40
    out = impl.run(["parser 1024 -", "feed " + (bytes(bad) + GOLDEN_PING).hex(), "counters"])
    assert out[1] == PING1
    assert out[2] == counters(garbage=len(bad), header=1)


def test_oversized_frame_then_resync(impl):
    big = frame(ops.PING, 4, bytes(65))
    exact = frame(ops.PING, 6, bytes(64))
    out = impl.run(["parser 64 -", "feed " + (big + GOLDEN_PING + exact).hex(), "counters"])
    assert out[1] == " ".join(
        [desc(ops.PING, 4, 0, None, error=ops.E_TOO_LARGE), PING1, desc(ops.PING, 6, 0, bytes(64))]
    )
    # The oversized payload was skipped as garbage, not parsed.
    assert out[2] == counters(garbage=65 + 4, oversize=1)


def test_other_protocol_version_is_refused(impl):
    v2 = bytearray(reference_frame(0, ops.PING, 8, b"\xa0"))
    v2[2] = 0x20
    v2[10:12] = struct.pack("<H", zlib.crc32(bytes(v2[:10])) & 0xFFFF)
    out = impl.run(["parser 1024 -", "feed " + (bytes(v2) + GOLDEN_PING).hex()])
    assert out[1] == " ".join([desc(ops.PING, 8, 0x20, None, error=ops.E_BAD_REQUEST), PING1])


# --- authentication -------------------------------------------------------------------------


def signed(counter, rid=7, key=KEY, payload=PING_BODY):
    return reference_frame(ops.FLAG_AUTH, ops.PING, rid, payload, key, counter)


def test_auth_good_frames_advance_the_counter(impl):
    out = impl.run(
        ["parser 1024 " + KEY.hex(), "feed %s %s" % (signed(5).hex(), signed(9).hex()), "counters"]
    )
    assert out[1] == " ".join(
        [
            desc(ops.PING, 7, ops.FLAG_AUTH, PING_BODY, counter=5),
            desc(ops.PING, 7, ops.FLAG_AUTH, PING_BODY, counter=9),
        ]
    )
    assert out[2] == counters(last=9)


def test_auth_bad_tag_wrong_key_and_tampered_counter(impl):
    bad_tag = bytearray(signed(1))
    bad_tag[-1] ^= 0x80
    tampered = bytearray(signed(2))
    tampered[-24] = 3  # counter 3, tag still for 2
    stream = bytes(bad_tag) + signed(2, key=OTHER_KEY) + bytes(tampered) + signed(4)
    out = impl.run(["parser 1024 " + KEY.hex(), "feed " + stream.hex(), "counters"])
    refused = [
        desc(ops.PING, 7, ops.FLAG_AUTH, None, counter=c, error=ops.E_AUTH) for c in (1, 2, 3)
    ]
    assert out[1] == " ".join(refused + [desc(ops.PING, 7, ops.FLAG_AUTH, PING_BODY, counter=4)])
    assert out[2] == counters(auth=3, last=4)


def test_auth_missing_when_a_key_is_set(impl):
    # A frame without the trailer is refused as KEY_REQUIRED, not AUTH: its sender holds no key
    # (AUTH, a tag that does not match, says the sender holds another one).
    out = impl.run(
        ["parser 1024 " + KEY.hex(), "feed " + (GOLDEN_PING + signed(1)).hex(), "counters"]
    )
    assert ops.E_KEY_REQUIRED == 10
    assert out[1] == " ".join(
        [
            desc(ops.PING, 1, 0, None, error=ops.E_KEY_REQUIRED),
            desc(ops.PING, 7, ops.FLAG_AUTH, PING_BODY, counter=1),
        ]
    )
    assert out[2] == counters(auth=1, last=1)


def test_auth_replayed_and_old_counters(impl):
    stream = signed(10) + signed(10) + signed(3) + signed(11)
    out = impl.run(["parser 1024 " + KEY.hex(), "feed " + stream.hex(), "counters"])
    assert out[1] == " ".join(
        [
            desc(ops.PING, 7, ops.FLAG_AUTH, PING_BODY, counter=10),
            desc(ops.PING, 7, ops.FLAG_AUTH, None, counter=10, error=ops.E_REPLAY),
            desc(ops.PING, 7, ops.FLAG_AUTH, None, counter=3, error=ops.E_REPLAY),
            desc(ops.PING, 7, ops.FLAG_AUTH, PING_BODY, counter=11),
        ]
    )
    assert out[2] == counters(replay=2, last=11)


def test_auth_frames_fed_one_byte_at_a_time(impl):
    stream = b"\x00\xa5" + signed(1) + b"junk" + signed(2, rid=8, payload=b"")
    out = impl.run(["parser 1024 " + KEY.hex(), "bytewise " + stream.hex(), "counters"])
    assert out[1] == " ".join(
        [
            desc(ops.PING, 7, ops.FLAG_AUTH, PING_BODY, counter=1),
            desc(ops.PING, 8, ops.FLAG_AUTH, b"", counter=2),
        ]
    )
    assert out[2] == counters(garbage=6, last=2)
