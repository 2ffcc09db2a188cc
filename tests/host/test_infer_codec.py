"""The client's INFER codec (host/client/tensors.py) against its twin, cbor2 with to/from_wire.

Every request it writes must be the bytes ``cbor2.dumps(infer_body(...))`` writes, and every reply
it reads must give the arrays and time ``cbor2.loads`` + ``from_wire`` give; what it does not take
(None) goes the generic way, errors and all.
"""

import cbor2
import numpy as np
import pytest

from kpdev.host.client.client import infer_body
from kpdev.host.client.tensors import from_wire, infer_payload, read_infer_reply
from kpdev.protocol import cbor
from kpdev.protocol.tensors import Tensor, encode_tensor

DTYPES = ("int8", "uint8", "int16", ">i2", "uint16", "int32", ">f4", "float16", "float32")
DTYPES += ("float64", "int64", "uint64")
SHAPES = ((1, 16), (16,), (), (2, 3, 4), (1, 300), (70000,), (0, 5), (1, 24, 1), (2, 256, 1))


def _arrays():
    rng = np.random.default_rng(4)
    for dtype in DTYPES:
        for shape in SHAPES:
            yield rng.integers(0, 100, shape).astype(dtype)
    a = np.arange(60, dtype=np.int16).reshape(6, 10)
    yield a[:, ::2]  # not contiguous
    yield a.T  # Fortran order


@pytest.mark.parametrize("model", [None, "", "small", "é" * 30])
def test_requests_are_the_cbor2_bytes(model):
    arrays = list(_arrays())
    for a in arrays:
        assert infer_payload(a, model) == cbor2.dumps(infer_body(a, model)), (a.dtype, a.shape)
    for inputs in ([arrays[0], arrays[5]], (arrays[3],), [], [np.zeros(3, np.int8)] * 30):
        assert infer_payload(inputs, model) == cbor2.dumps(infer_body(inputs, model))
    assert infer_payload([[1, 2], [3, 4]], model) == cbor2.dumps(
        infer_body([[1, 2], [3, 4]], model)
    )


@pytest.mark.parametrize(
    "inputs, model",
    [
        (np.zeros(3, bool), None),  # no wire dtype: the generic path refuses it
        (np.zeros(3, np.complex64), None),
        ([np.zeros(3, np.int8), np.zeros(2, bool)], None),
        (np.zeros(3, np.int8), 5),  # a model that is no text
    ],
)
def test_other_requests_go_the_generic_way(inputs, model):
    assert infer_payload(inputs, model) is None


def _generic(payload):
    reply = cbor2.loads(payload)
    return [from_wire(t) for t in reply["y"]], int(reply["t"])


def _same(a, b):
    assert a[1] == b[1]
    assert len(a[0]) == len(b[0])
    for x, y in zip(a[0], b[0], strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f")


@pytest.mark.parametrize("us", [0, 23, 24, 300, 70000, 2**32 + 5, 2**63])
def test_replies_read_as_cbor2_and_from_wire_read_them(us):
    rng = np.random.default_rng(5)
    for dtype in ("int8", "uint8", "float32", "int32", "float16", "int64"):
        for shapes in ([(1, 4)], [(1, 4), (1, 1000)], [()], [(300, 2), (0,)], [(70000,)], []):
            outs = []
            for s in shapes:
                a = rng.integers(0, 50, s).astype(dtype)
                outs.append(Tensor(dtype, s, a.astype(a.dtype.newbyteorder("<")).tobytes()))
            payload = cbor.dumps({"y": [encode_tensor(t) for t in outs], "t": us})
            fast = read_infer_reply(payload)
            assert fast is not None
            _same(fast, _generic(payload))


@pytest.mark.parametrize(
    "body",
    [
        {"trimmed": 5000},
        {"t": 5, "y": []},  # another order
        {"y": [], "t": -1},
        {"y": [], "t": 1, "z": 0},
        {"y": [cbor.Tag(40, [[1, 4], cbor.Tag(99, b"abcd")])], "t": 1},  # unknown typed array
        {"y": [cbor.Tag(40, [[1, 5], cbor.Tag(72, b"abcd")])], "t": 1},  # bytes != shape
        {"y": [cbor.Tag(41, [[1, 4], cbor.Tag(72, b"abcd")])], "t": 1},
        [1, 2],
    ],
)
def test_other_replies_go_the_generic_way(body):
    assert read_infer_reply(cbor.dumps(body)) is None


def test_damaged_replies_never_raise():
    t = Tensor("int16", (2, 3), bytes(range(12)))
    payload = cbor.dumps({"y": [encode_tensor(t)], "t": 300})
    for cut in range(len(payload)):
        assert read_infer_reply(payload[:cut]) is None
    for i in range(len(payload)):
        for v in (0x00, 0x18, 0x1B, 0x5B, 0xFF):
            bad = bytearray(payload)
            bad[i] = v
            r = read_infer_reply(bytes(bad))
            if r is not None:  # whatever it takes, it reads as the generic way does
                _same(r, _generic(bytes(bad)))
