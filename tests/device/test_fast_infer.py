"""The CPython agent's INFER fast path (device/fastinfer.py) against its twin, the generic codec.

Whatever the fast path takes it must read as ``cbor.loads`` does, and every reply it writes must be
the bytes ``cbor.dumps`` writes; what it does not take falls to the generic path, errors and all.
"""

import hashlib

import cbor2
import numpy as np
import pytest
from support.paths import read_data

from kpdev.device import agent as agent_mod
from kpdev.device import fastinfer
from kpdev.device.agent import Agent
from kpdev.protocol import cbor, ops
from kpdev.protocol.framing import FrameParser, FrameWriter
from kpdev.protocol.tensors import DTYPES, Tensor, decode_tensor, encode_tensor

DENSE = read_data("dense_int8.tflite")


def _wire(a):
    a = np.asarray(a)
    data = a.astype(a.dtype.newbyteorder("<")).tobytes()
    return cbor2.CBORTag(40, [list(a.shape), cbor2.CBORTag(DTYPES[a.dtype.name][0], data)])


def _bodies():
    rng = np.random.default_rng(1)
    for dtype in ("int8", "uint8", "int16", "float32", "float64", "int64", "uint32"):
        for shape in ((1, 16), (16,), (), (2, 3, 4), (1, 300), (70000,), (0, 5), (1, 24, 1)):
            a = rng.integers(0, 100, shape).astype(dtype)
            yield {"x": _wire(a)}
            yield {"x": [_wire(a), _wire(a[..., :1] if a.ndim else a)], "m": "small"}
            yield {"m": "é-model", "x": _wire(a)}


def _generic(payload):
    body = cbor.loads(payload)
    x = body.get("x")
    items = x if isinstance(x, list) else [x]
    return body.get("m"), [decode_tensor(t) for t in items]


def _same(a, b):
    assert a[0] == b[0]
    assert [(t.dtype, t.shape, bytes(t.data)) for t in a[1]] == [
        (t.dtype, t.shape, bytes(t.data)) for t in b[1]
    ]


def test_requests_read_as_the_codec_reads_them():
    n = 0
    for body in _bodies():
        payload = cbor2.dumps(body)
        fast = fastinfer.read_request(payload)
        assert fast is not None, body  # the common shape is taken
        _same(fast, _generic(payload))
        n += 1
    assert n > 100


def test_the_same_shape_again_reads_its_own_data():
    rng = np.random.default_rng(3)
    for model in (None, "small", "another"):
        for _ in range(5):  # the second and later take the remembered shape
            a = rng.integers(-128, 128, (1, 16)).astype(np.int8)
            body = {"x": _wire(a)} if model is None else {"x": _wire(a), "m": model}
            payload = cbor2.dumps(body)
            fast = fastinfer.read_request(payload)
            _same(fast, _generic(payload))
            assert fast[1][0].data == a.tobytes()
    # the same length and bytes around it, but another shape: not taken for the remembered one
    a = np.arange(16, dtype=np.int8).reshape(4, 4)
    _same(
        fastinfer.read_request(cbor2.dumps({"x": _wire(a)})),
        _generic(cbor2.dumps({"x": _wire(a)})),
    )


@pytest.mark.parametrize(
    "body",
    [
        {"x": _wire(np.zeros((1, 16), np.int8)), "st": True},  # another key
        {"x": _wire(np.zeros((1, 16), np.int8)), "m": 3},  # a name that is no text
        {"st": True},
        {"m": "a"},
        {"x": cbor2.CBORTag(40, [[1, 16], cbor2.CBORTag(72, b"short")])},  # bytes != shape
        {"x": cbor2.CBORTag(40, [[1, 16], cbor2.CBORTag(99, bytes(16))])},  # unknown tag
        {"x": cbor2.CBORTag(40, [[1, 2**40], cbor2.CBORTag(72, b"")])},  # an 8-byte head
        {"x": cbor2.CBORTag(41, [[1, 16], cbor2.CBORTag(72, bytes(16))])},
        {"x": [1, 2]},
        [1, 2],
        "x",
    ],
)
def test_other_requests_fall_to_the_generic_path(body):
    assert fastinfer.read_request(cbor2.dumps(body)) is None


def test_damaged_requests_never_raise():
    payload = cbor2.dumps({"x": _wire(np.arange(16, dtype=np.int8).reshape(1, 16)), "m": "ab"})
    for cut in range(len(payload)):
        r = fastinfer.read_request(payload[:cut])
        assert r is None
    for i in range(len(payload)):
        for v in (0x00, 0x18, 0x1F, 0x5B, 0xFF):
            bad = bytearray(payload)
            bad[i] = v
            r = fastinfer.read_request(bytes(bad))
            if r is not None:  # whatever it takes, it reads as the codec does
                _same(r, _generic(bytes(bad)))


@pytest.mark.parametrize("us", [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**40])
def test_replies_are_the_codec_bytes(us):
    rng = np.random.default_rng(2)
    for dtype in ("int8", "uint8", "float32", "int32", "float16"):
        for shapes in ([(1, 4)], [(1, 4), (1, 1000)], [()], [(300, 2), (0,)], [(70000,)]):
            outs = []
            for s in shapes:
                a = rng.integers(0, 50, s).astype(dtype)
                outs.append(Tensor(dtype, s, a.tobytes()))
            want = cbor.dumps({"y": [encode_tensor(t) for t in outs], "t": us})
            assert fastinfer.write_reply(outs, us) == want


def _agent(tmp_path):
    a = Agent(str(tmp_path / "state"), "sim-linux")
    sha = hashlib.sha256(DENSE).digest()
    begin = {"name": "small", "format": "tflite", "size": len(DENSE), "sha256": sha, "meta": {}}
    a.request(ops.MODEL_BEGIN, begin)
    a.request(ops.MODEL_CHUNK, {"name": "small", "offset": 0, "data": DENSE})
    a.request(ops.MODEL_COMMIT, {"name": "small", "activate": True})
    return a


class _Wire:
    def __init__(self):
        self.out = bytearray()

    def write(self, data):
        self.out += data


def _answer(a, payload, rid=7):
    link = _Wire()
    s = a.open_session(link)
    a.dispatch(s, s.parser.feed(FrameWriter().pack(ops.INFER, rid, payload)))
    frames = FrameParser(1 << 20).feed(bytes(link.out))
    assert len(frames) == 1
    f = frames[0]
    body = cbor.loads(f.payload)
    if isinstance(body, dict):
        body.pop("t", None)  # the time taken differs from run to run
    return f.op, f.flags, body


@pytest.mark.parametrize(
    "body",
    [
        {"x": _wire(np.arange(-8, 8, dtype=np.int8).reshape(1, 16))},
        {"x": [_wire(np.arange(16, dtype=np.int8).reshape(1, 16))], "m": "small"},
        {"x": _wire(np.zeros((1, 15), np.int8))},  # wrong shape: BAD_SHAPE
        {"x": _wire(np.zeros((1, 16), np.float32))},  # wrong dtype: BAD_DTYPE
        {"x": _wire(np.zeros((1, 16), np.int8)), "m": "nope"},  # no such model
        {"x": [_wire(np.zeros((1, 16), np.int8))] * 2},  # one input too many
    ],
)
def test_agent_answers_as_the_generic_path(tmp_path, monkeypatch, body):
    a = _agent(tmp_path)
    payload = cbor2.dumps(body)
    taken = []
    real = fastinfer.infer_payload

    def spy(agent, data):
        taken.append(data)
        return real(agent, data)

    monkeypatch.setattr(fastinfer, "infer_payload", spy)
    fast = _answer(a, payload)
    assert taken == [payload]  # the fast path was asked
    monkeypatch.setattr(agent_mod, "_FAST_INFER", False)
    slow = _answer(a, payload)
    assert len(taken) == 1  # and now it was not
    assert fast == slow
    a.close()
