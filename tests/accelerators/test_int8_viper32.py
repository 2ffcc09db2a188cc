"""The int8 viper loops on a 32-bit machine word: an emulated Cortex-M3 against the plain loops,
CPython and tflite-micro, bit for bit.

MicroPython's stock ``ports/qemu`` firmware for the AN385 board (Cortex-M3, built once from the
MicroPython source and cached under $KPDEV_HOME) runs the device code from a ROMFS image.  On it
``select_loops`` must pick loops_viper32 without loading the 64-bit module; random calls of
every inner loop (FC, conv, depthwise conv, pool, ADD, MUL, MEAN) with the requantization's
extremes (multipliers near 2**31 and 2**30, shifts -31..30, accumulators near the int32 limits)
must give the same bytes with the viper and the plain loops there as the plain loops give on
CPython; and whole models (one-operator models of every kernel the viper loops serve, the
models of tests/data) must give tflite-micro's bytes.  The same kernel calls run on the 64-bit
unix port too.  Skips with the reason when QEMU, the ARM compiler or the source is missing.
"""

import os
import subprocess

import pytest
from support import kernelcases, qemu_m3
from support.interpreters import load_module
from support.paths import DRIVERS, TESTS

from kpdev.host.agent.micropython import stage_lib

SEED = 20261207
PER_KERNEL = 40
# A heap that holds the device code as imported from ROMFS and the models below.
HEAP = 1 << 20
MODEL_CASES = [
    "fc_pc_relu6_7x33",
    "fc_pt_nobias_7x5",
    "conv_pc_same_3x3",
    "conv_pc_stride2_valid",
    "conv_pc_dilation2_same",
    "dw_pc_mult2",
    "dw_pc_stride2_same",
    "maxpool_3x3_s1_same",
    "avgpool_2x2_s2_valid",
    "add_bcast_both",
    "mul_bcast_1113",
    "mean_12_nokeep",
    "mean_last_keep",
    "chain_small_cnn",
    "chain_residual_float",
    "dense_int8.tflite",
    "conv_int8.tflite",
]
MODEL_RUNS = 2


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    return qemu_m3.firmware_for_tests(tmp_path_factory, HEAP)


@pytest.fixture(scope="module")
def cases():
    return kernelcases.cases(SEED, PER_KERNEL)


@pytest.fixture(scope="module")
def rom(firmware, cases, tmp_path_factory):
    """The ROMFS image: the device code compiled for ARMv7-M, the driver, the kernel calls and
    the models with their inputs.  Returns (image path, model expectations)."""
    ops = load_module(TESTS / "accelerators" / "test_int8_ops.py")
    case, expected = ops.case, ops.expected
    root = tmp_path_factory.mktemp("rom")
    stage_lib(str(root / "lib"), march="armv7m", standalone=True)
    (root / "lib" / "int8_kernels_driver.py").write_bytes(
        (DRIVERS / "int8_kernels_driver.py").read_bytes()
    )
    (root / "k.bin").write_bytes(kernelcases.encode(cases))
    mdir = root / "m"
    mdir.mkdir()
    want = {}
    lines = []
    for key in MODEL_CASES:
        model, runs = case(key)
        runs = runs[:MODEL_RUNS]
        (mdir / (key + ".tflite")).write_bytes(model)
        for k, run in enumerate(runs):
            for i, x in enumerate(run):
                (mdir / ("%s.%d.%d.in" % (key, k, i))).write_bytes(
                    x.astype(x.dtype.newbyteorder("<")).tobytes()
                )
        want[key] = [[a.tobytes().hex() for a in outs] for outs in expected(key)[:MODEL_RUNS]]
        lines.append("%s %d" % (key, len(runs)))
    (mdir / "cases.txt").write_text("\n".join(lines) + "\n")
    image = qemu_m3.romfs_image(str(root), str(root.parent / (root.name + ".romfs")))
    return image, want


@pytest.fixture(scope="module")
def board(firmware, rom):
    with qemu_m3.Board(firmware, rom[0]) as b:
        b.exec("import sys\nsys.path.insert(0, '/rom/lib')\nimport int8_kernels_driver as d")
        yield b


def test_board_has_a_32_bit_word_and_loads_only_the_32_bit_loops(board):
    out = board.exec("d.which()").split()
    assert out[:4] == ["bits", "32", "loops", "kpdev.accelerators.int8.loops_viper32"], out
    loaded = out[5].split(",") if len(out) > 5 else []
    assert "kpdev.accelerators.int8.loops_viper" not in loaded, loaded
    assert "kpdev.accelerators.int8.arith_viper" not in loaded, loaded


def _check_kernels(lines, cases):
    got = [line.split() for line in lines if line.startswith("k ")]
    assert len(got) == len(cases), lines[-5:]
    bad = []
    for (_, index, viper, plain), c in zip(got, cases, strict=True):
        ok, ref = kernelcases.reference(c)
        want = "%d:%s" % (ok, ref.hex())
        for who, res in (("viper", viper), ("plain", plain)):
            flag, _, data = res.partition(":")
            if not ok:
                same = flag == "0"  # a refused pool leaves its output unspecified
            else:
                same = res == want
            if not same:
                bad.append("case %s (%s) %s: %s, CPython: %s" % (index, c[0], who, res, want))
    assert not bad, "\n".join(bad[:10])


def test_kernels_match_plain_and_cpython_on_cortex_m3(board, cases):
    _check_kernels(board.exec("d.kernels('/rom/k.bin')", timeout=120).splitlines(), cases)


def test_models_match_tflite_micro_on_cortex_m3(board, rom):
    want = rom[1]
    lines = board.exec("d.models('/rom/m')", timeout=120).splitlines()
    errors = [line for line in lines if line.startswith("error")]
    assert not errors, errors
    got = {}
    for line in lines:
        if line.startswith("o "):
            _, key, k, j, data = line.split()
            got.setdefault(key, {})[(int(k), int(j))] = data
    for key, runs in want.items():
        for k, outs in enumerate(runs):
            for j, data in enumerate(outs):
                assert got.get(key, {}).get((k, j)) == data, "%s run %d output %d" % (key, k, j)


def test_kernels_match_on_the_64_bit_unix_port(micropython, mp_lib, cases, tmp_path):
    """The same calls on the x64 unix port: loops_viper (64-bit word) against the plain loops."""
    path = tmp_path / "k.bin"
    path.write_bytes(kernelcases.encode(cases))
    code = "import int8_kernels_driver as d\nd.which()\nd.kernels(%r)" % str(path)
    env = dict(os.environ, MICROPYPATH="%s:%s" % (mp_lib, DRIVERS))
    r = subprocess.run(
        [micropython, "-X", "heapsize=4M", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["bits", "64", "loops", "kpdev.accelerators.int8.loops_viper"]
    assert "loops_viper32" not in lines[0]
    _check_kernels(lines, cases)
