"""protocol/compat.py: the one const shim, runtime test and forget_modules of the device code."""

import re
import subprocess

import pytest
from support.paths import ROOT

from kpdev.protocol import compat

DEVICE_SOURCES = sorted(
    p
    for top in ("protocol", "device", "accelerators")
    for p in (ROOT / top).rglob("*.py")
    if "__pycache__" not in p.parts
)
COMPAT = ROOT / "protocol" / "compat.py"


def _sources_matching(pattern):
    rx = re.compile(pattern, re.M)
    return [str(p.relative_to(ROOT)) for p in DEVICE_SOURCES if rx.search(p.read_text())]


def test_one_const_shim_one_runtime_test_one_forget_modules():
    """Nothing but compat.py defines const or forget_modules, or asks sys.implementation.name."""
    assert _sources_matching(r"def const\(x\)") == ["protocol/compat.py"]
    assert _sources_matching(r"^def forget_modules\(") == ["protocol/compat.py"]
    assert _sources_matching(r"sys\.implementation\.name") == ["protocol/compat.py"]
    # The viper twins import micropython anyway, so they take const from it directly.
    direct = set(_sources_matching(r"^\s*from micropython import const"))
    assert direct <= {
        "protocol/compat.py",
        "accelerators/learner_viper.py",
        "device/pipeline_viper.py",
    }


def test_compat_on_cpython():
    assert compat.RUNTIME == "cpython" and not compat.MICROPYTHON
    assert compat.const(0x41) == 0x41
    compat.forget_modules(["kpdev.protocol.compat"])  # CPython keeps every module
    import sys

    assert "kpdev.protocol.compat" in sys.modules


PROBE = """\
import gc, sys
from kpdev.protocol import compat
from kpdev.protocol import framing
import shimmed
print(compat.RUNTIME, compat.MICROPYTHON)
# const() folded: the private names are no module globals, the values are in the code.
print(sorted(k for k in dir(shimmed) if k.startswith("_X")), shimmed.f())
print("_E_BAD_CRC" in dir(framing), "const" in dir(framing))
import kpdev.protocol.auth
compat.forget_modules(["kpdev.protocol.auth"])
print("kpdev.protocol.auth" in sys.modules, hasattr(sys.modules["kpdev.protocol"], "auth"))
"""

SHIMMED = """\
from kpdev.protocol.compat import const

_X1 = const(5)
_X2 = const(0x41)
PUBLIC = const(7)


def f():
    return _X1 + _X2 + PUBLIC
"""


@pytest.mark.parametrize("compiled", [False, True], ids=["source", "mpy"])
def test_const_from_the_shim_folds_on_micropython(micropython, mp_lib, tmp_path, compiled):
    """MicroPython folds ``_NAME = const(N)`` with const imported from compat, .py and .mpy."""
    (tmp_path / "shimmed.py").write_text(SHIMMED)
    if compiled:
        from kpdev.host.agent.micropython import mpy_cross_binary

        subprocess.run(
            [mpy_cross_binary(), "-O3", "-march=x64", "shimmed.py"], cwd=tmp_path, check=True
        )
        (tmp_path / "shimmed.py").unlink()
    (tmp_path / "probe.py").write_text(PROBE)
    r = subprocess.run(
        [micropython, "probe.py"],
        cwd=tmp_path,
        env={"MICROPYPATH": "%s:%s" % (tmp_path, mp_lib)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        "micropython True",
        "[] 77",
        "False True",
        "False False",
    ]
