"""The arena block an agent sets aside at start (``--arena``): the model loaded later plans its
arena into it, a second model or a larger arena gets its own, and closing the model frees it."""

import numpy as np
import pytest
from support.paths import DATA
from support.reference import reference

from kpdev.accelerators import base
from kpdev.accelerators.tflite_int8 import TFLiteInt8Backend
from kpdev.protocol.tensors import Tensor

CONV = str(DATA / "conv_int8.tflite")


@pytest.fixture
def reserved():
    saved = list(base._arena)
    yield
    base._arena[:] = saved


def run(model, x):
    return model.run([Tensor("int8", x.shape, x.tobytes())])[0].data


def test_the_loaded_model_plans_its_arena_into_the_reserved_block(reserved):
    base.reserve_arena(8192)
    block = base._arena[0]
    block[:] = b"\xff" * len(block)  # what an earlier model left there
    first = TFLiteInt8Backend().load(CONV)
    interp = first._interp
    assert interp.reserved and base.reserved_arena() == (8192, True)
    assert interp.arena.obj is block  # a view of the reserved block, not a new allocation
    assert bytes(interp.arena) == bytes(interp.arena_size)  # handed over zeroed
    # A second model while the block is held: an arena of its own.
    second = TFLiteInt8Backend().load(CONV)
    assert not second._interp.reserved and isinstance(second._interp.arena, bytearray)
    rng = np.random.default_rng(3)
    data = (DATA / "conv_int8.tflite").read_bytes()
    for _ in range(3):
        x = rng.integers(-128, 128, (1, 16, 16, 1)).astype(np.int8)
        want = reference(data, x).tobytes()
        assert bytes(run(first, x)) == want and bytes(run(second, x)) == want
    first.close()
    assert base.reserved_arena() == (8192, False)
    third = TFLiteInt8Backend().load(CONV)  # the block is free again
    assert third._interp.reserved
    third.close()
    second.close()


def test_an_arena_larger_than_the_block_is_allocated_as_before(reserved):
    base.reserve_arena(64)
    model = TFLiteInt8Backend().load(CONV)
    assert model._interp.arena_size > 64
    assert not model._interp.reserved and base.reserved_arena() == (64, False)
    model.close()


def test_the_agent_reserves_at_start_and_says_so(module_agents):
    agent = module_agents.start("sim-mcu", args=["--arena", "4096"])
    c = agent.client()
    assert c.info()["arena_reserved"] == {"size": 4096, "in_use": False}
    c.upload("conv", (DATA / "conv_int8.tflite").read_bytes(), "tflite")
    x = np.zeros((1, 16, 16, 1), np.int8)
    y, _ = c.infer(x, "conv")
    assert y[0].tobytes() == reference((DATA / "conv_int8.tflite").read_bytes(), x).tobytes()
    assert c.info()["arena_reserved"] == {"size": 4096, "in_use": True}
    c.close()
    assert agent.stop() == 0, agent.log()
    bad = module_agents.start("sim-mcu", args=["--arena", "lots"])
    assert bad.proc.wait(30) != 0 and "--arena takes a number of bytes" in bad.log()
