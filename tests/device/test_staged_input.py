"""Inputs larger than one frame: INFER_INPUT puts them in place piece by piece, INFER runs on
them, and every refused piece changes nothing."""

import numpy as np
import pytest
from support.agents import SIM_BOARDS
from support.paths import DATA

from kpdev.protocol import ops
from kpdev.protocol.errors import DeviceError

tflite_micro = pytest.importorskip("tflite_micro")
from tflite_micro import runtime  # noqa: E402

CONV = (DATA / "conv_int8.tflite").read_bytes()  # int8 input [1, 16, 16, 1]: 256 bytes
FRAME = 96  # the agents' largest payload here: the input needs several pieces


def reference(x):
    interp = runtime.Interpreter.from_bytes(CONV, arena_size=64 * 1024)
    interp.set_input(x, 0)
    interp.invoke()
    return interp.get_output(0)


def image(seed):
    return np.random.default_rng(seed).integers(-128, 128, (1, 16, 16, 1)).astype(np.int8)


@pytest.fixture(scope="module", params=[b for b in SIM_BOARDS if b != "sim-mcu-64k"])
def client(request, module_agents):
    # The model goes up with the board's usual frames; then an agent with small ones serves it.
    agent = module_agents.start(request.param)
    c = agent.client()
    c.upload("dense", (DATA / "dense_int8.tflite").read_bytes(), "tflite")
    c.upload("conv", CONV, "tflite")
    c.close()
    assert agent.stop() == 0, agent.log()
    agent = module_agents.start(request.param, agent.state, args=["--max-payload", str(FRAME)])
    c = agent.client()
    assert c.max_payload == FRAME and c.device["staged_input"] is True
    yield c
    c.close()
    assert agent.stop() == 0, agent.log()


def test_an_input_larger_than_a_frame_runs_in_pieces_and_matches_tflite_micro(client):
    for seed in range(3):
        x = image(seed)
        sent = client.bytes_out
        y, _ = client.infer(x, "conv")
        assert y[0].tobytes() == reference(x).tobytes()
        assert client.bytes_out - sent > x.nbytes  # it went, in more than one frame
    outs = list(client.infer_many([image(5), image(6)], "conv"))
    assert [o[0][0].tobytes() for o in outs] == [reference(image(k)).tobytes() for k in (5, 6)]
    ys, _ = client.infer_batch([image(7)], "conv")  # `kpdev eval` of a bare model: a batch of 1
    assert ys[0][0].tobytes() == reference(image(7)).tobytes()


def put(client, **body):
    return client.request(ops.INFER_INPUT, {"m": "conv", "i": 0, **body})


def refused(client, code, **body):
    with pytest.raises(DeviceError) as e:
        put(client, **body)
    assert e.value.code == code, e.value
    return str(e.value)


def test_pieces_out_of_order_or_wrong_are_refused_and_change_nothing(client):
    x = image(9)
    raw = x.tobytes()
    r = put(client, o=0, d=raw[:40], dt="int8", s=[1, 16, 16, 1])
    assert r == {"i": 0, "have": 40, "need": 256}
    # A gap, a repeat, a wrong dtype or shape, an input the model lacks, too many bytes: refused.
    assert "expected 40" in refused(client, ops.E_BAD_VALUE, o=80, d=raw[80:120])
    refused(client, ops.E_BAD_VALUE, o=20, d=raw[20:40])
    refused(client, ops.E_BAD_DTYPE, o=0, d=b"\0" * 8, dt="uint8", s=[1, 16, 16, 1])
    refused(client, ops.E_BAD_SHAPE, o=0, d=b"\0" * 8, dt="int8", s=[1, 16, 8, 2])
    with pytest.raises(DeviceError) as e:
        client.request(ops.INFER_INPUT, {"m": "conv", "i": 1, "o": 0, "d": b"", "dt": "int8"})
    assert e.value.code == ops.E_BAD_VALUE
    # Not whole yet: INFER on the staged input is refused, and the pieces so far stay.
    with pytest.raises(DeviceError) as e:
        client.request(ops.INFER, {"m": "conv", "st": True})
    assert e.value.code == ops.E_BAD_REQUEST and "40 of 256" in str(e.value)
    for off in range(40, 256, 40):
        put(client, o=off, d=raw[off : off + 40])
    assert "more than its 256" in refused(client, ops.E_BAD_SHAPE, o=256, d=b"\0")
    y = client.request(ops.INFER, {"m": "conv", "st": True})
    assert bytes(y["y"][0].value[1].value) == reference(x).tobytes()
    # The run used the staged input up: a second one needs it again.
    with pytest.raises(DeviceError) as e:
        client.request(ops.INFER, {"m": "conv", "st": True})
    assert e.value.code == ops.E_BAD_REQUEST and "INFER_INPUT first" in str(e.value)


def test_any_other_run_drops_what_was_staged(client):
    raw = image(3).tobytes()
    for off in range(0, 256, 40):
        body = {"o": off, "d": raw[off : off + 40]}
        if off == 0:
            body.update(dt="int8", s=[1, 16, 16, 1])
        put(client, **body)
    client.infer(np.zeros((1, 16), np.int8), "dense")  # fits one frame: runs as it always did
    with pytest.raises(DeviceError) as e:
        client.request(ops.INFER, {"m": "conv", "st": True})
    assert e.value.code == ops.E_BAD_REQUEST
