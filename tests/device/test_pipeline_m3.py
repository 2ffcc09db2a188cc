"""The device pipeline's viper loops on a 32-bit machine word: an emulated Cortex-M3.

MicroPython's stock ``ports/qemu`` firmware for the AN385 (tests/support/qemu_m3.py), the device
code compiled for ARMv7-M in ROMFS: ``Pipeline`` must pick the viper loops there, and on 8- and
16-bit windows give the same bytes with them as with the plain loops for what single-precision
floats hold exactly (samples, minimum, maximum, crossing counts of fixed levels), and the host's
values rounded to float32.  Skipped without qemu-system-arm, the ARM toolchain or the MicroPython
source (see qemu_m3.missing()).
"""

import struct

import cbor2
import numpy as np
import pytest
from support import qemu_m3
from support.paths import DRIVERS

from kpdev.host import features as hf
from kpdev.host.agent.micropython import stage_lib

HEAP = 1 << 20  # the heap test_int8_viper32 builds its firmware with: one firmware for both
FEATURES = [
    {"gen": "raw", "axes": [1]},
    {"gen": "min"},
    {"gen": "max"},
    {"gen": "zero_crossing_rate"},
    {"gen": "threshold_crossing_rate", "threshold": 0.5},
    {"gen": "mean_difference"},
]
CASES = [("int16", 64), ("uint16", 48), ("int8", 40), ("uint8", 33)]


def _windows(dtype, size):
    rng = np.random.default_rng(size)
    info = np.iinfo(dtype)
    w = rng.integers(info.min, info.max, (3, size, 3), endpoint=True)
    w[1] = rng.integers(-2, 3, (size, 3)).clip(info.min, info.max)  # levels 0 and 1 met exactly
    w[2, :, 0] = info.min  # the ends of the range
    w[2, ::2, 1] = info.max
    return w.astype(dtype)


def _spec(dtype, size):
    return {
        "axes": ["a", "b", "c"],
        "input_dtype": dtype,
        "window": {"size": size, "stride": size},
        "features": FEATURES,
        "output": {"dtype": "float32"},
    }


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    return qemu_m3.firmware_for_tests(tmp_path_factory, HEAP)


@pytest.fixture(scope="module")
def board(firmware, tmp_path_factory):
    root = tmp_path_factory.mktemp("rom")
    stage_lib(str(root / "lib"), march="armv7m", standalone=True)
    (root / "lib" / "pipeline_driver.py").write_bytes(
        (DRIVERS / "pipeline_driver.py").read_bytes()
    )
    lines = []
    for dtype, size in CASES:
        windows = _windows(dtype, size)
        for loops in ("auto", "plain"):
            req = {
                "op": "transform",
                "spec": _spec(dtype, size),
                "dtype": dtype,
                "shape": [size, 3],
                "windows": [w.tobytes() for w in windows],
                "loops": loops,
            }
            lines.append(cbor2.dumps(req).hex())
    (root / "req.txt").write_text("\n".join(lines) + "\n")
    image = qemu_m3.romfs_image(str(root), str(root.parent / (root.name + ".romfs")))
    with qemu_m3.Board(firmware, image) as b:
        b.exec("import sys\nsys.path.insert(0, '/rom/lib')\nimport pipeline_driver as d")
        yield b


def test_viper_loops_match_plain_and_host_on_cortex_m3(board):
    code = "for line in open('/rom/req.txt'):\n    print(d.handle(line.strip()))"
    answers = [cbor2.loads(bytes.fromhex(a)) for a in board.exec(code, timeout=120).split()]
    assert len(answers) == 2 * len(CASES)
    for k, (dtype, size) in enumerate(CASES):
        fast, plain = answers[2 * k], answers[2 * k + 1]
        assert "bug" not in fast and "bug" not in plain, (fast, plain)
        assert (fast["loops"], plain["loops"]) == ("viper", "plain"), dtype
        want = hf.features_batch(_spec(dtype, size), _windows(dtype, size)).astype(np.float32)
        for i, (f_row, p_row) in enumerate(zip(fast["out"], plain["out"], strict=True)):
            assert f_row[0] == p_row[0], "%s window %d: viper and plain differ" % (dtype, i)
            got = struct.unpack("<%dd" % (len(f_row[0]) // 8), f_row[0])
            assert np.array_equal(np.float32(got), want[i]), "%s window %d" % (dtype, i)
