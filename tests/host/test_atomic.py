"""Files kpdev writes whole (packs, measurements, session logs) get the permissions a plain
write would give them: the user's umask for a new file, the old mode for a replaced one."""

import os
import stat
import subprocess
import sys

import pytest
from support.paths import DATA

from kpdev.host.atomic import refuse_existing, write_atomic
from kpdev.host.errors import UsageError
from kpdev.host.evaluation.metrics import write_measurements


@pytest.fixture
def umask():
    """Set the process umask for one test, then put the old one back."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, want", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_a_new_file_gets_the_umask(tmp_path, umask, mask, want):
    umask(mask)
    path = write_atomic(tmp_path / "new.bin", lambda f: f.write(b"x"))
    assert mode(path) == want and path.read_bytes() == b"x"
    doc = write_measurements({"kind": "kpdev-measurements"}, tmp_path / "run.json")
    assert mode(doc) == want


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "kept.bin"
    path.write_bytes(b"old")
    path.chmod(0o600)
    write_atomic(path, lambda f: f.write(b"new"))
    assert mode(path) == 0o600 and path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.bin"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "keep.json"
    path.write_text("old")

    def boom(f):
        f.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_atomic(path, boom)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["keep.json"]


def test_refuse_existing_names_the_file_and_force(tmp_path):
    path = tmp_path / "run.json"
    refuse_existing(path, force=False)  # nothing there yet: fine
    path.write_text("{}")
    with pytest.raises(UsageError, match=r"run\.json exists; pass --force"):
        refuse_existing(path, force=False, what="measurements file")
    refuse_existing(path, force=True)


def test_pack_build_writes_the_pack_with_the_umask(tmp_path):
    out = tmp_path / "p.kp"
    r = subprocess.run(
        [sys.executable, "-m", "kpdev.host.cli", "pack", "build", out, "-m",
         DATA / "dense_int8.tflite", "-c", "a,b,c,d", "--json"],
        capture_output=True, text=True, timeout=120, preexec_fn=lambda: os.umask(0o002),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert mode(out) == 0o664
