"""MicroPython's stock ``ports/qemu`` firmware on an emulated Cortex-M3 (QEMU ``mps2-an385``):
device code on a 32-bit machine word, for tests and benchmarks.

Not kpdev's board support (that is ``kpdev.host.boards``): the plain upstream firmware, built
from a MicroPython source tree or tarball, with the code under test in a ROMFS image that QEMU
loads at the address the stock AN385 board mounts as ``/rom`` (``/rom/lib`` is on
``sys.path``).  Programs run through the raw REPL on the UART, which QEMU puts on the process's
stdin and stdout.

    fw = firmware(cache_dir, heap=2 << 20)      # built once per source, heap and settings
    with Board(fw, romfs_image, icount=0) as b:  # icount: deterministic virtual time
        out = b.exec("import mymod; mymod.main()")

The source is ``$KPDEV_MICROPYTHON_SRC`` (a tree or a ``.tar.gz``), else the tarball CI keeps in
``../shared/vendor`` beside the repository.  ``missing()`` names what is not installed.
"""

from __future__ import annotations

import glob
import hashlib
import os
import select
import shutil
import subprocess
import tarfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MACHINE = "mps2-an385"
BOARD = "MPS2_AN385"
ROMFS_ADDR = 0x21000000  # the stock board's ROMFS partition 0 (4 MB of the AN385's PSRAM)
ROMFS_SIZE = 0x400000
# The AN385's RAM holds the firmware, its stack and the heap: 4 MB in all (mcu/arm/mps2.ld).
MAX_HEAP = 3 << 20
# SysTick current value: the stock firmware runs SysTick from the 25 MHz core clock, reloading
# every millisecond; time.ticks_ms counts the reloads.
SYSTICK_CVR = 0xE000E018
CORE_HZ = 25_000_000


def source() -> str | None:
    """The MicroPython source (tree or tarball) to build from, or None."""
    env = os.environ.get("KPDEV_MICROPYTHON_SRC")
    if env:
        return env if os.path.exists(env) else None
    found = sorted(glob.glob(os.path.join(REPO, "..", "shared", "vendor", "micropython-*.tar.gz")))
    return os.path.abspath(found[-1]) if found else None


def _mpy_cross() -> str | None:
    try:
        from kpdev.host.agent.micropython import mpy_cross_binary

        return mpy_cross_binary()
    except Exception:
        return None


def missing() -> str | None:
    """Why the emulated Cortex-M3 cannot run here (what to install), or None."""
    if not shutil.which("qemu-system-arm"):
        return "qemu-system-arm is not installed (Debian: apt-get install qemu-system-arm)"
    if not shutil.which("arm-none-eabi-gcc"):
        return (
            "the ARM cross compiler is not installed "
            "(Debian: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)"
        )
    if not shutil.which("make"):
        return "make is not installed"
    if _mpy_cross() is None:
        return "mpy-cross is not installed (pip install 'kpdev[micropython]')"
    if source() is None:
        return (
            "no MicroPython source: set KPDEV_MICROPYTHON_SRC to a source tree or tarball "
            "(or put the qemu source tarball in ../shared/vendor)"
        )
    return None


def _source_key(src: str) -> str:
    h = hashlib.sha256()
    if os.path.isfile(src):
        with open(src, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    else:
        h.update(os.path.abspath(src).encode())
        for sub in ("py", "ports/qemu"):
            for path in sorted(glob.glob(os.path.join(src, sub, "**", "*"), recursive=True)):
                if os.path.isfile(path):
                    h.update(("%s %d" % (path, os.path.getmtime(path))).encode())
    return h.hexdigest()[:16]


def firmware(cache_dir: str, heap: int = 143360, timeout: float = 900) -> str:
    """Path of the stock AN385 firmware with a ``heap``-byte MicroPython heap, built into
    ``cache_dir`` unless a build of the same source, heap and settings is there."""
    why = missing()
    if why:
        raise RuntimeError(why)
    if not 16 << 10 <= heap <= MAX_HEAP:
        raise ValueError("heap must be 16 KB to %d bytes" % MAX_HEAP)
    src = source()
    key = _source_key(src)
    out_dir = os.path.join(cache_dir, "qemu-stock-%s" % key)
    elf = os.path.join(out_dir, "firmware-%s-heap%d.elf" % (BOARD, heap))
    if os.path.exists(elf):
        return elf
    os.makedirs(out_dir, exist_ok=True)
    tree = src
    if os.path.isfile(src):
        tree = os.path.join(out_dir, "src")
        if not os.path.isdir(os.path.join(tree, "ports", "qemu")):
            tmp = tree + ".%d.tmp" % os.getpid()
            shutil.rmtree(tmp, ignore_errors=True)
            with tarfile.open(src) as tar:
                top = os.path.commonpath(tar.getnames())
                tar.extractall(tmp, filter="data")
            os.replace(os.path.join(tmp, top) if top else tmp, tree)
            shutil.rmtree(tmp, ignore_errors=True)
    build = os.path.join(out_dir, "build-heap%d" % heap)
    cmd = [
        "make",
        "-C",
        os.path.join(tree, "ports", "qemu"),
        "BOARD=" + BOARD,
        "FROZEN_MANIFEST=",
        "MICROPY_MPYCROSS=" + _mpy_cross(),
        "MICROPY_HEAP_SIZE=%d" % heap,
        "BUILD=" + build,
        "-j2",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError("firmware build failed: %s" % (r.stderr or r.stdout)[-2000:])
    tmp = elf + ".%d.tmp" % os.getpid()
    shutil.copyfile(os.path.join(build, "firmware.elf"), tmp)
    os.replace(tmp, elf)
    shutil.rmtree(build, ignore_errors=True)
    return elf


# The user's $KPDEV_HOME as pytest started (the suite's fixtures point it at a temporary one per
# module; this module is imported at collection, before they do): the firmware cache survives
# runs there; without one it lives as long as the run.
_HOME_AT_START = os.environ.get("KPDEV_HOME")


def firmware_for_tests(tmp_path_factory, heap: int) -> str:
    """The firmware for a test module (pytest-skipped when qemu or the source is missing), in
    the cache the emulated boards share ($KPDEV_FIRMWARE_CACHE, which CI keeps between runs),
    else under the user's KPDEV_HOME, else in a folder of this run."""
    import pytest

    why = missing()
    if why:
        pytest.skip(why)
    cache = os.environ.get("KPDEV_FIRMWARE_CACHE")
    if not cache:
        base = _HOME_AT_START or str(tmp_path_factory.mktemp("kpdev-home"))
        cache = os.path.join(base, "firmware")
    return firmware(cache, heap=heap)


def romfs_image(root: str, path: str) -> str:
    """Write a ROMFS image of the directory ``root`` (``root/lib`` becomes ``/rom/lib``)."""
    import contextlib
    import io

    from mpremote.romfs import make_romfs

    with contextlib.redirect_stdout(io.StringIO()):
        image = make_romfs(root, mpy_cross=False)
    if len(image) > ROMFS_SIZE:
        raise ValueError(
            "ROMFS image of %d bytes is above the partition's %d" % (len(image), ROMFS_SIZE)
        )
    with open(path, "wb") as f:
        f.write(image)
    return path


class BoardError(Exception):
    pass


class Board:
    """One QEMU run of ``firmware`` with ``romfs`` loaded, driven through the raw REPL.

    ``icount``: None runs as fast as the host can (virtual time follows the host clock);
    a number N runs QEMU's deterministic mode, one instruction advancing virtual time by 2**N
    ns (0: 1 ns), so a time measured on the board is an instruction count.
    """

    def __init__(self, fw: str, romfs: str | None = None, icount: int | None = None):
        cmd = ["qemu-system-arm", "-M", MACHINE, "-display", "none", "-monitor", "null"]
        cmd += ["-semihosting", "-chardev", "stdio,id=s0,signal=off", "-serial", "chardev:s0"]
        if icount is not None:
            cmd += ["-icount", "shift=%d,align=off,sleep=off" % icount]
        if romfs:
            cmd += ["-device", "loader,file=%s,addr=0x%x,force-raw=on" % (romfs, ROMFS_ADDR)]
        cmd += ["-kernel", fw]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._buf = b""
        try:
            self._read_until(b">>> ", 20)
            self.proc.stdin.write(b"\r\x01")
            self.proc.stdin.flush()
            self._read_until(b"raw REPL; CTRL-B to exit\r\n>", 10)
        except BaseException:
            self.close()
            raise

    def _read_until(self, marker: bytes, timeout: float) -> bytes:
        end = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while marker not in self._buf:
            left = end - time.monotonic()
            if left <= 0:
                raise BoardError(
                    "no %r from the board in %.0f s; got %r" % (marker, timeout, self._buf[-300:])
                )
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise BoardError(
                        "QEMU exited (%s); got %r" % (self.proc.poll(), self._buf[-300:])
                    )
                self._buf += chunk
        i = self._buf.index(marker) + len(marker)
        got, self._buf = self._buf[:i], self._buf[i:]
        return got

    def exec(self, code: str, timeout: float = 60) -> str:
        """Run ``code`` on the board; its printed output.  An exception there raises BoardError."""
        self.proc.stdin.write(code.encode() + b"\x04")
        self.proc.stdin.flush()
        ok = self._read_until(b"OK", timeout)
        if not ok.endswith(b"OK"):
            raise BoardError("raw REPL did not accept the code: %r" % ok)
        out = self._read_until(b"\x04", timeout)[:-1]
        err = self._read_until(b"\x04", timeout)[:-1]
        self._read_until(b">", timeout)
        if err:
            raise BoardError(err.decode(errors="replace").strip())
        return out.decode(errors="replace").replace("\r\n", "\n")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# Printed by ``clock()`` on the board: the virtual time in ns from the millisecond counter and
# SysTick's down-counter, read until the counter did not move meanwhile.  Under ``icount=0`` the
# difference of two readings is the number of instructions run between them (to 40, one
# SysTick count at 25 MHz); the stock firmware's ticks_us can be off by a millisecond.
CLOCK = """
import time, machine
def clock():
    while True:
        a = time.ticks_ms()
        c = machine.mem32[%d]
        if time.ticks_ms() == a:
            return a * 1000000 + (%d - c) * %d
""" % (SYSTICK_CVR, CORE_HZ // 1000 - 1, 1_000_000_000 // CORE_HZ)
