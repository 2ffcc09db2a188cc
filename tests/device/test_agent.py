"""Every operation end to end on the simulated boards: the real agent process over pipes."""

import collections
import hashlib
import os
import random
import struct
import time
import zlib

import cbor2
import numpy as np
import pytest
from cbor2 import CBORTag
from support.agents import (
    AGENT_BOARDS,
    KEY,
    assert_serving,
    error_of,
    next_rid,
    raw,
    replies,
)
from support.paths import read_data, sha256
from support.reference import reference

from kpdev.accelerators.options import OPTIONS
from kpdev.host.boards import qemu
from kpdev.host.boards.catalog import get_board
from kpdev.host.boards.sim import SimBoard
from kpdev.host.client.client import Client
from kpdev.host.errors import AuthError, LinkError
from kpdev.host.link.transport import PipeLink
from kpdev.host.runtime import modelgen
from kpdev.protocol import ops
from kpdev.protocol.errors import DeviceError, KpdevError, ProtocolError
from kpdev.protocol.framing import FrameParser, FrameWriter

DENSE = read_data("dense_int8.tflite")
FLOAT_IO = read_data("dense_float_io.tflite")
CONV = read_data("conv_int8.tflite")
NO_MEMORY = "not enough memory to load"
# The int8 interpreter does not fit beside the agent in a 64 KB heap (docs/benchmarks.md).
NO_TFLITE = "sim-mcu-64k"


class Dut:
    """The device under test: one agent process for a board and a Client on its pipes."""

    def __init__(self, agent, client):
        self.agent = agent
        self.client = client
        self.board = agent.board
        self.micropython = agent.micropython
        self.tflite = self.board.id != NO_TFLITE


@pytest.fixture(scope="module", params=AGENT_BOARDS)
def dut(request, module_agents):
    """One agent per board for the whole module, with dense_int8 stored as "dense"."""
    agent = module_agents.start(request.param)
    client = agent.client()
    client.upload("dense", DENSE, "tflite")
    yield Dut(agent, client)
    client.close()
    assert agent.stop() == 0, agent.log()
    assert "Traceback" not in agent.log()


def int8_inputs(n, shape=(1, 16), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(n)]


def tensor(shape, tag, data):
    return CBORTag(40, [list(shape), CBORTag(tag, data)])


GOOD_X = tensor((1, 16), 72, bytes(16))


def body(**fields):
    return cbor2.dumps(fields)


def no_memory(dut, op, payload):
    code, msg = error_of(dut.client, op, payload)
    assert code == ops.E_MODEL_LOAD == 23
    assert NO_MEMORY in msg, msg


# --- session and information ----------------------------------------------------------------


def test_hello_and_info_describe_the_board(dut):
    board = dut.board
    for info in (dut.client.hello(), dut.client.info()):
        assert info["proto"] == ops.PROTOCOL_VERSION
        assert info["board"] == board.id
        assert info["runtime"] == ("micropython" if dut.micropython else "cpython")
        assert info["max_payload"] == board.agent["max_payload"]
        assert info["window"] == board.agent["window"]
        assert info["auth"] is False
        assert info["storage"]["quota"] == board.quota
        assert info["storage"]["used"] == len(DENSE)
        assert info["storage"]["free"] == board.quota - len(DENSE)
        if dut.micropython:
            assert list(info["backends"]) == ["tflite_int8"]
            assert info["formats"] == {"tflite": ["tflite_int8"]}
            assert 0 < info["memory"]["heap_total"] <= board.ram_kb * 1024
        else:
            # The accelerator runtimes are optional extras: each is offered when installed.
            extra = [b for b in ("litert", "iree", "akida") if _installed(b)]
            assert sorted(info["backends"]) == sorted(["tflite_int8", "tflite_micro"] + extra)
            assert info["formats"]["tflite"] == ["tflite_micro", "tflite_int8"] + [
                b for b in extra if b == "litert"
            ]
    assert dut.client.max_payload == board.agent["max_payload"]
    assert dut.client.window == board.agent["window"]


def _installed(backend):
    module = {"litert": "ai_edge_litert", "iree": "iree.runtime", "akida": "akida"}[backend]
    try:
        __import__(module)
        __import__("kpdev.accelerators." + backend)
    except ImportError:
        return False
    return True


def test_ping_echoes_its_data(dut):
    client = dut.client
    for data in (b"", b"\x00", os.urandom(100), os.urandom(client.max_payload - 64)):
        assert client.request(ops.PING, {"data": data})["data"] == data
    t0 = time.perf_counter()
    rtt = client.ping(b"kpdev")
    assert 0 < rtt <= time.perf_counter() - t0  # the round trip, timed within the call


# --- models ---------------------------------------------------------------------------------


def test_model_list_info_activate_delete(dut):
    client = dut.client
    backend = {m["name"]: m for m in client.models()["models"]}["dense"]["backend"]
    meta = {"backend": backend}  # what a load does anyway; other keys are load options
    done = client.upload("conv", CONV, "tflite", meta=meta, activate=False)
    assert done["name"] == "conv" and done["size"] == len(CONV) and done["active"] is False
    assert done["sha256"] == hashlib.sha256(CONV).hexdigest()
    listed = client.models()
    assert listed["active"] == "dense"
    by_name = {m["name"]: m for m in listed["models"]}
    assert {"conv", "dense"} <= set(by_name)
    assert by_name["conv"]["meta"] == meta
    assert by_name["dense"]["sha256"] == hashlib.sha256(DENSE).hexdigest()

    info = client.model_info("dense")
    assert info["name"] == "dense" and info["size"] == len(DENSE) and info["format"] == "tflite"
    if not dut.tflite:
        assert info["backend"] is None
        assert info["load_error"]["code"] == ops.E_MODEL_LOAD
        assert info["load_error"]["msg"].startswith(NO_MEMORY)
    else:
        assert info["backend"] == ("tflite_int8" if dut.micropython else "tflite_micro")
        assert info["io"]["inputs"][0]["shape"] == [1, 16]
        assert info["io"]["inputs"][0]["dtype"] == "int8"
        assert info["io"]["outputs"][0]["shape"] == [1, 4]
    assert client.model_info()["name"] == "dense"  # no name: the active model

    if dut.tflite:
        assert client.activate("conv") == {"active": "conv"}
    else:  # no model loads in this heap: activating one is refused and changes nothing
        with pytest.raises(DeviceError) as e:
            client.activate("conv")
        assert e.value.code == ops.E_MODEL_LOAD and client.models()["active"] == "dense"
        client.upload("conv", CONV, "tflite")  # a commit still activates what it stores
    assert client.models()["active"] == "conv"
    assert client.model_info()["name"] == "conv"
    assert client.delete("conv") == {"deleted": "conv"}
    listed = client.models()
    assert "conv" not in [m["name"] for m in listed["models"]] and listed["active"] is None
    with pytest.raises(DeviceError) as e:
        client.delete("conv")
    assert e.value.code == ops.E_NO_MODEL
    if dut.tflite:
        assert client.activate("dense") == {"active": "dense"}
    else:
        client.upload("dense", DENSE, "tflite")
    assert client.models()["active"] == "dense"


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_commit_without_activate_activates_nothing_on_an_empty_device(agents, board):
    client = agents.start(board).client()
    done = client.upload("m", DENSE, "tflite", activate=False)
    assert done["active"] is False and client.models()["active"] is None
    with pytest.raises(DeviceError) as e:
        client.infer(int8_inputs(1)[0])  # no model named and none active
    assert e.value.code == ops.E_NO_MODEL
    assert client.upload("m", DENSE, "tflite")["active"] is True  # asked for: it is


def test_a_load_option_the_backend_does_not_read_is_refused_and_nothing_stored(dut):
    client = dut.client
    backend = {m["name"]: m for m in client.models()["models"]}["dense"]["backend"]
    takes = OPTIONS[backend]
    before = client.models(), client.info()["storage"]["used"]
    for meta in ({"arena_sise": 4096}, {"backend": backend, "treads": 2}):
        with pytest.raises(DeviceError) as e:
            client.upload("opt", DENSE, "tflite", meta=meta, activate=False)
        key = [k for k in meta if k != "backend"][0]
        assert e.value.code == ops.E_BAD_REQUEST
        want = "%s takes no load option %r; it takes: %s [" % (backend, key, ", ".join(takes))
        assert want in str(e.value)
        assert (client.models(), client.info()["storage"]["used"]) == before
    # A model format no backend reads here takes only what some backend of the format reads.
    with pytest.raises(DeviceError) as e:
        client.upload("opt", b"x", "kpl", meta={"arena_size": 1})
    assert e.value.code == ops.E_BAD_REQUEST and "it takes: none [" in str(e.value)
    done = client.upload("opt", DENSE, "tflite", meta={takes[0]: "auto"}, activate=False)
    assert done["meta"] == {takes[0]: "auto"}
    client.delete("opt")


def test_model_info_of_an_upload_loads_it_before_it_is_stored(dut):
    client = dut.client
    before = client.models()
    stored = client.model_info("dense")
    for data in (DENSE, b"\0\0\0\0TFL3 and no model"):
        client.send_model("dense", data, "tflite")  # under the name of the active model
        info = client.model_info("dense", upload=True)
        assert info["sha256"] == hashlib.sha256(data).hexdigest() and info["size"] == len(data)
        if data == DENSE and dut.tflite:
            assert info["backend"] == stored["backend"] and info["io"] == stored["io"]
        else:  # the load's error, as MODEL_INFO of a stored model would report it
            assert info["backend"] is None and info["load_error"]["code"] == ops.E_MODEL_LOAD
        assert client.models() == before  # nothing stored, nothing activated
        assert client.model_info("dense")["sha256"] == stored["sha256"]
        client.abort_upload("dense")
    assert_serving(client)

    half = {"name": "half", "format": "tflite", "size": len(DENSE), "sha256": sha256(DENSE)}
    client.request(ops.MODEL_BEGIN, half)
    client.request(ops.MODEL_CHUNK, {"name": "half", "offset": 0, "data": DENSE[:100]})
    for name, code in (("half", ops.E_UPLOAD_STATE), ("none", ops.E_UPLOAD_STATE),
                       ("../index", ops.E_UPLOAD_STATE)):  # fmt: skip
        with pytest.raises(DeviceError) as e:
            client.model_info(name, upload=True)
        assert e.value.code == code, name
    client.abort_upload("half")
    assert client.models() == before


def test_abort_upload_frees_its_room(dut):
    client = dut.client
    quota = dut.board.quota
    used = client.info()["storage"]["used"]
    begin = {"name": "half", "format": "tflite", "size": quota - used, "sha256": bytes(32)}
    assert client.request(ops.MODEL_BEGIN, begin) == {"offset": 0}
    assert client.info()["storage"]["free"] == 0
    with pytest.raises(DeviceError) as e:
        client.request(ops.MODEL_BEGIN, dict(begin, name="more", size=1))
    assert e.value.code == ops.E_STORAGE_FULL
    client.abort_upload("half")
    assert client.info()["storage"]["used"] == used
    with pytest.raises(DeviceError) as e:
        client.request(ops.MODEL_COMMIT, {"name": "half"})
    assert e.value.code == ops.E_UPLOAD_STATE


def test_upload_with_a_wrong_sha_keeps_the_stored_model(dut):
    client = dut.client
    payload = {"name": "dense", "format": "tflite", "size": len(CONV), "sha256": sha256(DENSE)}
    assert client.request(ops.MODEL_BEGIN, payload) == {"offset": 0}
    step = 512
    for at in range(0, len(CONV), step):
        chunk = {"name": "dense", "offset": at, "data": CONV[at : at + step]}
        assert client.request(ops.MODEL_CHUNK, chunk) == {"offset": min(len(CONV), at + step)}
    with pytest.raises(DeviceError) as e:
        client.request(ops.MODEL_COMMIT, {"name": "dense"})
    assert e.value.code == ops.E_CHECKSUM
    assert client.model_info("dense")["sha256"] == hashlib.sha256(DENSE).hexdigest()


def test_model_meta_json_cannot_hold_is_refused_or_kept_exactly(dut):
    client = dut.client

    def same(a, b):
        if isinstance(a, float) and isinstance(b, float) and a != a:
            return b != b
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return type(a) is type(b) and a == b

    for meta in ({"k": b"raw"}, {"k": CBORTag(99, 1)}, {"k": float("nan")}):
        try:
            done = client.upload("meta", DENSE, "tflite", meta=meta, activate=False)
        except DeviceError as e:
            assert e.code == ops.E_BAD_REQUEST, (meta, str(e))
            continue
        finally:
            client.abort_upload("meta")
        assert same(done["meta"], meta), (done["meta"], meta)
        assert same(client.model_info("meta")["meta"], meta)
        client.delete("meta")


def test_a_reply_the_host_cannot_decode_is_a_protocol_error(dut):
    with pytest.raises(KpdevError):
        dut.client.request(ops.PING, {"data": CBORTag(0, 5)})
    assert_serving(dut.client)


# --- inference ------------------------------------------------------------------------------


def test_infer_without_the_memory_for_the_model_says_so(dut):
    if dut.tflite:
        pytest.skip("this board loads the model")
    x = {"x": GOOD_X}
    no_memory(dut, ops.INFER, cbor2.dumps(x))
    no_memory(dut, ops.INFER, cbor2.dumps(dict(x, m="dense")))
    no_memory(dut, ops.INFER_BATCH, cbor2.dumps({"xs": [GOOD_X, GOOD_X]}))
    with pytest.raises(DeviceError) as e:
        dut.client.infer(np.zeros((1, 16), np.int8))
    assert e.value.code == ops.E_MODEL_LOAD
    assert_serving(dut.client)


@pytest.mark.parametrize("model", ["dense", "float_io", "conv"])
def test_infer_single_batch_and_pipelined_equal_the_interpreter(dut, model):
    if not dut.tflite:
        pytest.skip("the int8 interpreter does not fit in this board's heap")
    if model == "conv" and qemu.is_qemu(dut.board):
        # Some 70 M instructions an inference as bytecode: 18 of them on an emulated CPU on a
        # busy host outlast the client's retries. tests/e2e/test_qemu_boards.py checks its
        # outputs against sim-mcu's.
        pytest.skip("conv_int8 is too slow for 18 inferences on the emulated board")
    client = dut.client
    data = {"dense": DENSE, "float_io": FLOAT_IO, "conv": CONV}[model]
    if model != "dense":
        client.upload(model, data, "tflite", activate=False)
    if model == "float_io":
        xs = [
            np.random.default_rng(i).uniform(-1, 1, (1, 16)).astype(np.float32) for i in range(6)
        ]
    elif model == "conv":
        xs = int8_inputs(6, (1, 16, 16, 1), seed=1)
    else:
        xs = int8_inputs(6)
    want = [reference(data, x) for x in xs]
    assert len({w.tobytes() for w in want}) > 1  # the outputs depend on the input

    singles = [client.infer(x, model)[0] for x in xs]
    batch, times = client.infer_batch(xs, model)
    piped = [ys for ys, _ in client.infer_many(xs, model)]
    assert len(times) == len(xs)
    for w, one, b, p in zip(want, singles, batch, piped, strict=True):
        for got in (one, b, p):
            assert len(got) == 1
            assert got[0].dtype == w.dtype and got[0].shape == w.shape
            assert np.array_equal(got[0], w)


def test_infer_uses_the_active_model_when_none_is_named(dut):
    if not dut.tflite:
        pytest.skip("the int8 interpreter does not fit in this board's heap")
    x = int8_inputs(1, seed=5)[0]
    t0 = time.perf_counter()
    ys, us = dut.client.infer(x)
    wall_us = (time.perf_counter() - t0) * 1e6
    assert 0 < us < wall_us  # the device's own time, within the request's round trip
    assert np.array_equal(ys[0], reference(DENSE, x))
    ys, _ = dut.client.infer([x])  # a list of inputs is the same one input
    assert np.array_equal(ys[0], reference(DENSE, x))


# --- bad input: each gets its own code and the agent goes on --------------------------------


def bad_requests(dut):
    """(label, op, payload bytes, expected code) for this board."""
    clamped = 68  # RFC 8746 uint8 clamped: a typed array with no dtype on the wire
    no_room = body(name="m", format="tflite", size=1 << 40, sha256=bytes(32))
    bad_name = body(name="../x", format="tflite", size=9, sha256=bytes(32))
    cases = [
        ("shape: bytes do not fill it", ops.INFER, body(x=tensor((1, 16), 72, bytes(15))), 18),
        ("dtype: typed-array tag", ops.INFER, body(x=tensor((16,), clamped, bytes(16))), 19),
        ("unknown model", ops.INFER, body(x=GOOD_X, m="nope"), 16),
        ("unknown model in batch", ops.INFER_BATCH, body(xs=[GOOD_X], m="nope"), 16),
        ("unknown model info", ops.MODEL_INFO, body(name="nope"), 16),
        ("unknown model activate", ops.MODEL_ACTIVATE, body(name="nope"), 16),
        ("malformed: break", ops.PING, b"\xff", 3),
        ("malformed: truncated map", ops.PING, b"\xa1\x64data", 3),
        ("malformed: trailing bytes", ops.PING, b"\xa0\x00", 3),
        ("malformed: reserved info", ops.PING, b"\x1c", 3),
        ("malformed: not a map", ops.PING, cbor2.dumps([1, 2]), 3),
        ("malformed: bad utf-8", ops.MODEL_INFO, b"\xa1\x64name\x62\xff\xfe", 3),
        ("unknown op 0x00", 0x00, b"", 4),
        ("unknown op 0x06", 0x06, b"", 4),
        ("unknown op 0x18", 0x18, b"", 4),
        ("unknown op 0x23", 0x23, b"", 4),  # 0x22 is INFER_INPUT now
        ("unknown op 0x7e", 0x7E, b"", 4),
        ("PACK_SET without a pack", ops.PACK_SET, b"", 5),
        ("unknown op LOG", ops.LOG, b"", 4),
        ("unknown op ERROR", ops.ERROR, b"", 4),
        ("unknown op 0xff", 0xFF, b"", 4),
        ("reserved LEARN", ops.LEARN_LOAD + 1, b"", 9),
        ("reserved LEARN last", ops.LEARN_LAST, b"\xa0", 9),
        ("reserved POWER", ops.POWER_FIRST + 3, b"", 9),
        ("reserved PROFILE", ops.PROFILE_LAST, b"", 9),
        ("missing name", ops.MODEL_ACTIVATE, b"", 5),
        ("missing size", ops.MODEL_BEGIN, body(name="m", format="tflite", sha256=bytes(32)), 5),
        ("missing xs", ops.INFER_BATCH, body(), 5),
        ("missing x", ops.INFER, body(m="dense"), 5),
        ("wrong type name", ops.MODEL_ACTIVATE, body(name=5), 5),
        ("bool offset", ops.MODEL_CHUNK, body(name="m", offset=True, data=b"x"), 5),
        ("bad hello", ops.HELLO, body(max_payload="big"), 5),
        ("bad model name", ops.MODEL_BEGIN, bad_name, 5),
        ("chunk without begin", ops.MODEL_CHUNK, body(name="zz", offset=0, data=b"x"), 22),
        ("too big for the store", ops.MODEL_BEGIN, no_room, 20),
    ]
    u8 = tensor((1, 16), 64, bytes(16))
    if not dut.tflite:
        cases.append(("no memory", ops.INFER, body(x=GOOD_X), 23))
    else:
        cases += [
            ("shape: the model's", ops.INFER, body(x=tensor((1, 17), 72, bytes(17))), 18),
            ("shape: two inputs", ops.INFER, body(x=[GOOD_X, GOOD_X]), 18),
            ("dtype: the model's", ops.INFER, body(x=tensor((1, 16), 85, bytes(64))), 19),
            ("dtype in batch", ops.INFER_BATCH, body(xs=[GOOD_X, u8]), 19),
        ]
    return cases


def test_each_bad_request_gets_its_own_error_and_the_agent_goes_on(dut):
    client = dut.client
    client.stats(reset=True)
    want = collections.Counter()
    for label, op, payload, code in bad_requests(dut):
        frame, reply = raw(client, op, payload)
        assert frame.op == ops.ERROR and frame.flags & ops.FLAG_ERROR, label
        assert frame.flags & ops.FLAG_RESPONSE, label
        assert (reply["code"], reply["op"]) == (code, op), (label, reply)
        assert isinstance(reply["msg"], str) and reply["msg"], label
        want[code] += 1
        assert_serving(client)
    stats = client.stats()
    assert stats["errors"] == dict(want)
    assert stats["frames_in"] == 2 * sum(want.values()) + 1


def test_oversized_frame_is_refused_then_the_next_one_answered(dut):
    client = dut.client
    client.stats(reset=True)
    limit = dut.board.agent["max_payload"]
    rid = 0x7001
    big = FrameWriter().pack(ops.PING, rid, cbor2.dumps({"data": bytes(limit)}))
    assert len(big) > limit
    frame, reply = replies(client, big, [rid])[rid]
    assert frame.op == ops.ERROR and reply["code"] == ops.E_TOO_LARGE == 2
    # Served again once the agent has read past the refused bytes: a raw PING, never sent twice
    # (over an emulated board's UART, some 7 KB/s, skipping them outlasts the client's
    # retransmission timer, and a second reply would come in the middle of the next exchange).
    assert raw(client, ops.PING, body(data=b"on"))[1]["data"] == b"on"
    fill = 2 * limit - len(cbor2.dumps({"data": bytes(limit)}))
    payload = cbor2.dumps({"data": bytes(fill)})
    assert len(payload) == limit  # the largest frame the agent takes
    frame, reply = replies(client, FrameWriter().pack(ops.PING, rid + 1, payload), [rid + 1])[
        rid + 1
    ]
    assert frame.op == ops.PING and reply["data"] == bytes(fill)
    stats = client.stats()
    assert stats["link"]["oversize"] == 1
    assert stats["errors"] == {ops.E_TOO_LARGE: 1}


def test_an_error_reply_means_nothing_changed_even_when_the_reply_does_not_fit(dut):
    # A host that takes replies of 64 bytes at most: a request that changes state is still
    # answered as done (trimmed), never with an ERROR; one that changes nothing is refused.
    client = dut.client
    name = "n" * 48  # the longest name: MODEL_COMMIT's reply is well over 64 bytes
    _, reply = raw(client, ops.HELLO, cbor2.dumps({"max_payload": 64}))
    assert list(reply) == ["trimmed"] and reply["trimmed"] > 64  # HELLO set the limit
    try:
        with pytest.raises(ProtocolError, match="carried out MODEL_COMMIT"):
            client.upload(name, DENSE, "tflite", activate=False)
        code, _ = error_of(client, ops.MODEL_LIST, b"")
        assert code == ops.E_TOO_LARGE
        code, _ = error_of(client, ops.STATS, b"")
        assert code == ops.E_TOO_LARGE
    finally:
        client.hello()
    stored = {m["name"]: m for m in client.models()["models"]}
    assert stored[name]["sha256"] == sha256(DENSE).hex()
    client.delete(name)


def test_the_agents_read_only_operations_are_the_protocols():
    from kpdev.device import agent

    assert agent._READ_ONLY == bytes(sorted(ops.READ_ONLY))


def test_damage_on_the_live_link_is_survived_and_counted(dut):
    client = dut.client
    client.stats(reset=True)
    junk = bytes(b for b in random.Random(7).randbytes(300) if b != 0xA5)  # no sync byte
    assert_serving(client)
    client.link.write(junk)
    assert_serving(client)

    # A corrupted payload byte: an E_BAD_CRC error naming the request, then business as usual.
    ping = bytearray(client.writer.pack(ops.PING, 0x7100, body(data=b"abcdef")))
    ping[15] ^= 0x20
    frame, reply = replies(client, bytes(ping), [0x7100])[0x7100]
    assert frame.op == ops.ERROR and reply["code"] == ops.E_BAD_CRC
    assert_serving(client)

    # A corrupted header: no answer at all, the frame's bytes are skipped.
    ping = bytearray(client.writer.pack(ops.PING, 0x7101, body(data=b"abcdef")))
    ping[5] ^= 0x01
    client.link.write(bytes(ping))
    assert_serving(client)

    # A truncated frame, then good ones: its declared length swallows them, its CRC fails,
    # and the parser finds the swallowed frames again.
    long_ping = client.writer.pack(ops.PING, 0x7102, body(data=bytes(40)))
    pings = [client.writer.pack(ops.PING, 0x7103 + i, body(data=b"p%d" % i)) for i in range(4)]
    got = replies(client, long_ping[:20] + b"".join(pings), range(0x7102, 0x7107))
    assert got[0x7102][1]["code"] == ops.E_BAD_CRC
    for i in range(4):
        assert got[0x7103 + i][1]["data"] == b"p%d" % i
    assert_serving(client)

    link = client.stats()["link"]
    assert link["crc_errors"] == 2
    assert link["header_errors"] >= 1
    assert link["garbage_bytes"] >= len(junk) + len(ping)
    assert link["oversize"] == link["auth_failures"] == link["replays"] == 0


# --- statistics and reboot ------------------------------------------------------------------


def test_stats_count_inferences_and_reset(dut):
    client = dut.client
    client.stats(reset=True)
    xs = int8_inputs(3, seed=9)
    if not dut.tflite:
        for x in xs:
            with pytest.raises(DeviceError):
                client.infer(x, "dense")
    else:
        for x in xs:
            client.infer(x, "dense")
        client.infer_batch(xs, "dense")
    before = client.stats(reset=True)
    if not dut.tflite:
        assert before["models"] == {}
        assert before["errors"] == {ops.E_MODEL_LOAD: 3}
    else:
        lat = before["models"]["dense"]
        assert lat["count"] == 6
        assert 0 <= lat["min_us"] <= lat["p50_us"] <= lat["p99_us"] <= lat["max_us"]
        assert lat["min_us"] <= lat["mean_us"] <= lat["max_us"]
        assert before["errors"] == {}
    assert before["frames_in"] == (5 if dut.tflite else 4)
    assert before["bytes_in"] > 0 and before["bytes_out"] > 0
    after = client.stats()
    assert after["models"] == {} and after["errors"] == {}
    assert after["frames_in"] == 1 and after["frames_out"] == 1  # the reply to the reset
    assert set(after["link"].values()) == {0}


def test_reboot_then_still_serving_with_the_models_kept(dut):
    client = dut.client
    client.ping()
    assert client.reboot() == {"rebooting": True}
    assert_serving(client)
    listed = client.models()
    assert "dense" in [m["name"] for m in listed["models"]] and listed["active"] == "dense"
    stats = client.stats()
    assert stats["frames_in"] == 3 and stats["errors"] == {}  # counted from the reboot
    if dut.tflite:
        x = int8_inputs(1, seed=4)[0]
        assert np.array_equal(client.infer(x)[0][0], reference(DENSE, x))


# --- authentication -------------------------------------------------------------------------


@pytest.fixture(scope="module", params=AGENT_BOARDS)
def keyed(request):
    """A board started by SimBoard with a pre-shared key, and a Client holding the key."""
    sim = SimBoard(get_board(request.param), key=KEY)
    client = Client(sim.link(), key=KEY, timeout=10)
    try:
        client.hello()
    except LinkError:
        sim.check_alive()
        raise
    yield sim, client
    client.close()
    sim.stop()


def test_keyed_agent_refuses_bad_missing_and_replayed_auth(keyed):
    sim, client = keyed
    assert client.device["auth"] is True
    client.stats(reset=True)
    assert_serving(client)

    # No trailer: the sender holds no key (KEY_REQUIRED); a trailer whose tag does not match:
    # the sender holds another key, or tampered with the frame (AUTH).
    unsigned = FrameWriter().pack(ops.PING, 0x7200, body(data=b"x"))
    refusal = replies(client, unsigned, [0x7200])[0x7200][1]
    assert refusal["code"] == ops.E_KEY_REQUIRED == 10
    assert "requires a key" in refusal["msg"]
    assert_serving(client)

    bad_tag = bytearray(client.writer.pack(ops.PING, 0x7201, body(data=b"x")))
    bad_tag[-3] ^= 0x10
    assert replies(client, bytes(bad_tag), [0x7201])[0x7201][1]["code"] == ops.E_AUTH
    assert_serving(client)

    other_key = FrameWriter(bytes(32), client.writer.counter + 10)
    foreign = other_key.pack(ops.PING, 0x7202, body(data=b"x"))
    refusal = replies(client, foreign, [0x7202])[0x7202][1]
    assert refusal["code"] == ops.E_AUTH == 6
    assert "different key" in refusal["msg"]
    assert_serving(client)

    good = client.writer.pack(ops.PING, 0x7203, body(data=b"once"))
    assert replies(client, good, [0x7203])[0x7203][1]["data"] == b"once"
    assert replies(client, good, [0x7203])[0x7203][1]["code"] == ops.E_REPLAY == 7
    assert_serving(client)

    stats = client.stats()
    assert stats["link"]["auth_failures"] == 3
    assert stats["link"]["replays"] == 1
    assert stats["errors"] == {ops.E_KEY_REQUIRED: 1, ops.E_AUTH: 2, ops.E_REPLAY: 1}


def test_keyed_agent_and_a_client_without_the_key(keyed):
    # The host says which mistake it is: no key given, or another key than the device's.
    sim, client = keyed
    for key, why in (
        (None, "the device requires a key and none was given"),
        (bytes(32), "the device uses a different key"),
    ):
        stranger = Client(client.link, key=key, timeout=10)
        with pytest.raises(AuthError) as e:
            stranger.hello()
        assert str(e.value).startswith(why), e.value
        assert_serving(client)


def test_a_keyed_hello_sent_twice_keeps_the_session_it_started(agents):
    # A host whose HELLO reply is late (a board still booting) sends the same HELLO again: the
    # agent answers both with the same session nonce, and the session goes on.
    agent = agents.start("sim-mcu", key=KEY)
    link = PipeLink(agent.proc)
    host_nonce = os.urandom(16)
    writer = FrameWriter(KEY)
    hello = body(nonce=host_nonce)
    parser = FrameParser(key=KEY)
    parser.nonce = host_nonce
    # Sent again as a client does: the same id and body, the next counter.
    link.write(writer.pack(ops.HELLO, 0x7300, hello) + writer.pack(ops.HELLO, 0x7300, hello))
    nonces = []
    deadline = time.monotonic() + 10
    while len(nonces) < 2 and time.monotonic() < deadline:
        for frame in parser.feed(link.read(4096)):
            assert frame.rid == 0x7300 and not frame.error, frame
            nonces.append(cbor2.loads(frame.payload)["nonce"])
    assert len(nonces) == 2 and nonces[0] == nonces[1]
    writer.nonce = parser.nonce = nonces[0]
    link.write(writer.pack(ops.PING, 0x7301, body(data=b"on")))
    while True:
        frames = parser.feed(link.read(4096))
        if frames:
            assert not frames[0].error and cbor2.loads(frames[0].payload)["data"] == b"on"
            break
        assert time.monotonic() < deadline


def test_keyless_agent_and_a_client_with_a_key(dut):
    stranger = Client(dut.client.link, key=KEY, timeout=10)
    with pytest.raises(AuthError) as e:
        stranger.hello()
    assert str(e.value).startswith("a key was given but the device does not use a key"), e.value
    assert_serving(dut.client)


# --- an upload cut off by the agent's death resumes ---------------------------------------


V1 = modelgen.dense_int8(seed=1)
V2 = modelgen.dense_int8(seed=2, hidden=48)


@pytest.mark.parametrize("board", AGENT_BOARDS)
def test_interrupted_upload_resumes_and_the_old_model_stays_valid(agents, board):
    first = agents.start(board)
    client = first.client()
    client.upload("m", V1, "tflite")
    begin = {"name": "m", "format": "tflite", "size": len(V2), "sha256": sha256(V2)}
    assert client.request(ops.MODEL_BEGIN, begin) == {"offset": 0}
    held = 0
    for at in range(0, len(V2) // 2, 500):
        reply = client.request(
            ops.MODEL_CHUNK, {"name": "m", "offset": at, "data": V2[at : at + 500]}
        )
        held = reply["offset"]
    assert 0 < held < len(V2)
    x = int8_inputs(1, seed=3)[0]
    fits = board != NO_TFLITE
    if fits:
        assert np.array_equal(client.infer(x, "m")[0][0], reference(V1, x))
    first.kill()

    second = agents.start(board, state=first.state)
    client = second.client()
    assert client.model_info("m")["sha256"] == hashlib.sha256(V1).hexdigest()
    if fits:
        assert client.activate("m") == {"active": "m"}
    else:  # it cannot load in this heap: activating it is refused; it stays active
        with pytest.raises(DeviceError) as e:
            client.activate("m")
        assert e.value.code == ops.E_MODEL_LOAD and client.models()["active"] == "m"
    if fits:
        assert np.array_equal(client.infer(x)[0][0], reference(V1, x))
    done = client.upload("m", V2, "tflite")
    assert done["resumed_from"] == held
    assert done["sha256"] == hashlib.sha256(V2).hexdigest()
    if fits:
        assert np.array_equal(client.infer(x)[0][0], reference(V2, x))
    else:
        with pytest.raises(DeviceError) as e:
            client.infer(x)
        assert e.value.code == ops.E_MODEL_LOAD


# --- a half frame and then silence ------------------------------------------------------


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_truncated_frame_then_silence_then_the_request_is_answered(agents, board):
    # The agent once died here: resync() returned None and serve() iterated it.
    client = agents.start(board).client()
    cut = client.writer.pack(ops.PING, 0x7300, body(data=bytes(60)))[:30]
    client.link.write(cut)
    # The good PING is swallowed by the cut frame's declared length; giving up on the partial
    # frame once the link has been quiet lets the agent find it.
    assert_serving(client)
    assert client.stats()["link"]["garbage_bytes"] >= 1


def claim(length, rid):
    """A valid request header claiming ``length`` payload bytes, with nothing behind it."""
    head = struct.pack("<BBBBHI", 0xA5, 0x4B, 0x10, ops.PING, rid, length)
    return head + struct.pack("<H", zlib.crc32(head) & 0xFFFF)


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_a_burst_of_headers_claiming_the_most_is_given_up_at_once(agents, board):
    # Each header claimed the largest payload and swallowed what followed until a quiet second
    # gave it up: after such bursts a PING once took 5-6 s to be answered.
    client = agents.start(board).client()
    most = client.device["max_payload"]
    rng = random.Random(16)
    for burst in range(3):
        noise = [bytes(rng.randrange(256) for _ in range(rng.randrange(40))) for _ in range(20)]
        data = b"".join(claim(most, 0x7400 + i) + n for i, n in enumerate(noise))
        t0 = time.monotonic()
        rid = next_rid()
        got = replies(client, data + client.writer.pack(ops.PING, rid, b""), [rid])
        took = time.monotonic() - t0
        assert got[rid][0].op == ops.PING
        # Answered at the first quiet moment (tens of ms); 2 s leaves a slow machine room.
        assert took < 2.0, "PING after burst %d took %.2f s" % (burst, took)
    assert_serving(client)


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_two_ctrl_c_outside_a_frame_give_the_port_back(agents, board):
    # What `kpdev repl --port` sends before handing a board's console to mpremote.
    agent = agents.start(board)
    client = agent.client()
    assert_serving(client)
    client.link.write(b"\x03\x03")
    assert agent.proc.wait(10) == 0
    assert "Traceback" not in agent.log()


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_two_ctrl_c_never_stop_an_agent_that_holds_a_key(agents, board):
    # Handing the console back is for a keyless board on its own console: with a key, two
    # bytes anyone can send must not end the agent.
    agent = agents.start(board, key=KEY)
    client = agent.client(key=KEY)
    client.link.write(b"\x03\x03")
    time.sleep(0.5)  # long enough for the agent to have read them and, once, to have stopped
    assert_serving(client)
    assert agent.alive()


def test_ctrl_c_bytes_inside_frames_are_data(agents):
    agent = agents.start("sim-mcu")
    client = agent.client()
    data = b"\x03\x03\x03\x03" * 8
    assert client.request(ops.PING, {"data": data})["data"] == data
    assert agent.alive()


def test_activate_refuses_a_model_that_cannot_load_and_changes_nothing(dut):
    client = dut.client
    before = client.models()["active"]
    assert before is not None  # else the upload below would become active by itself
    client.upload("junk", b"text, not a model", "tflite", activate=False)
    try:
        refusal = client.model_info("junk")["load_error"]
        assert refusal is not None
        with pytest.raises(DeviceError) as e:
            client.activate("junk")
        assert e.value.code == refusal["code"]
        assert client.models()["active"] == before
        assert_serving(client)
    finally:
        client.delete("junk")


def test_models_list_the_backend_a_load_uses_not_the_one_meta_asks_for(dut):
    client = dut.client
    # Meta asking for a backend that does not read the format (the host refuses this; a raw
    # client need not): the device loads it with its own choice, and the listing says which.
    client.upload("asked", DENSE, "tflite", meta={"backend": "iree"}, activate=False)
    try:
        listed = {m["name"]: m for m in client.models()["models"]}
        assert listed["asked"]["meta"] == {"backend": "iree"}
        for name in ("asked", "dense"):
            info = client.model_info(name)  # loads it: the backend that actually ran the load
            if info.get("load_error") is None:
                assert listed[name]["backend"] == info["backend"] != "iree"
            else:  # sim-mcu-64k: no room for the int8 interpreter, but it is the one a load uses
                assert info["load_error"]["code"] == ops.E_MODEL_LOAD
                assert listed[name]["backend"] == "tflite_int8"
    finally:
        client.delete("asked")
