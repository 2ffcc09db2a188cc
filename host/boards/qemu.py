"""Emulated Cortex-M boards: MicroPython firmware on an ARM MPS2 board under ``qemu-system-arm``.

The firmware is MicroPython's ``ports/qemu`` built from a MicroPython source tree or tarball
(``--source`` or ``$KPDEV_MICROPYTHON_SRC``) with kpdev's own board directory (``qemu_board/``:
its make settings, ``kpdev_board.c`` and the frozen boot code ``kpdev_boot.py``).  Builds are
cached under ``$KPDEV_HOME/firmware`` by the source's hash and the board's settings.

A board's 16 MB PSRAM is its flash, backed by the file ``flash.bin`` in the board's state
directory so that it survives restarts::

    PSRAM + 0       ROMFS image: the agent's code (.mpy for the board's CPU), mounted at /rom
    PSRAM + 2 MB    the model area: 4 MB left raw, for memory-mapped models (MODEL_AREA_*)
    PSRAM + 6 MB    littlefs, mounted at /flash: the agent's --state (models, state)

The agent serves on the board's UART, which QEMU puts on its own stdin and stdout: ``python -m
kpdev.host.boards.qemu ...`` (see :func:`command`) is a drop-in for the unix port's command line
and serves on pipes the same way.  It restarts QEMU when the firmware resets the board
(``machine.reset()``), keeping the same pipes, as a USB serial port stays while a board resets.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kpdev.host.boards.catalog import Board
from kpdev.host.errors import BoardError, UsageError

SOURCE_ENV = "KPDEV_MICROPYTHON_SRC"
CACHE_ENV = "KPDEV_FIRMWARE_CACHE"
BOARD_FILES = Path(__file__).resolve().parent / "qemu_board"
QEMU = "qemu-system-arm"
ARM_GCC = "arm-none-eabi-gcc"
INSTALL_HINT = "apt-get install qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi"

MIB = 1024 * 1024
PSRAM_SIZE = 16 * MIB
ROMFS_OFFSET, ROMFS_SIZE = 0, 2 * MIB
# Left raw (never formatted, never written by kpdev's boot): memory-mapped model storage.
MODEL_AREA_OFFSET, MODEL_AREA_SIZE = 2 * MIB, 4 * MIB
LFS_OFFSET, LFS_SIZE = 6 * MIB, 10 * MIB  # kpdev_boot.py mounts the same range
# Where the host loads the agent's options for kpdev_boot.py (the board's SSRAM2).
ARGS_ADDR = 0x20000000
ARGS_MAGIC = b"KPDA"
SEED_OFFSET, SEED_MAGIC = 0x1000, b"KPDS"  # 32 random bytes at ARGS_ADDR + SEED_OFFSET
# The agent's state directory on the board, under /flash.
STATE_ON_BOARD = "kpdev-state"
# QEMU's exit status when the firmware resets the board (machine.reset() exits through
# semihosting with 0).
RESET_STATUS = 0
EXIT_REBOOT = 75  # the agent's status after a REBOOT when supervised (--exit-on-reboot)


@dataclass(frozen=True)
class Machine:
    """One QEMU machine kpdev has a board directory for."""

    name: str  # QEMU's -M
    cpu: str
    psram: int  # the PSRAM's address: QEMU's main RAM on this machine, file-backed
    march: str  # mpy-cross -march of its firmware


MACHINES = {
    "mps2-an385": Machine("mps2-an385", "Cortex-M3", 0x21000000, "armv7m"),
    "mps2-an500": Machine("mps2-an500", "Cortex-M7", 0x60000000, "armv7emdp"),
}


def is_qemu(board: Board) -> bool:
    """Whether ``board`` is an emulated Cortex-M board (``sim: {qemu: MACHINE}``)."""
    return board.simulated and "qemu" in board.sim


def machine(board: Board) -> Machine:
    """The QEMU machine a catalog board runs on."""
    name = board.sim.get("qemu")
    found = MACHINES.get(name)
    if found is None:
        raise BoardError(
            f"board {board.id}: sim.qemu must be one of {', '.join(MACHINES)}, not {name!r}"
        )
    return found


def model_area(board: Board) -> tuple[int, int]:
    """(address, size) of the board's raw model area in its memory map."""
    return machine(board).psram + MODEL_AREA_OFFSET, MODEL_AREA_SIZE


def heap_bytes(board: Board) -> int:
    """The board's MicroPython heap in bytes, from ``sim: {heapsize: 64K}``."""
    text = str(board.sim.get("heapsize", "128K")).strip().upper()
    m = re.fullmatch(r"(\d+)([KM]?)", text)
    if not m:
        raise BoardError(f"board {board.id}: sim.heapsize must be like 64K, not {text!r}")
    return int(m.group(1)) * {"": 1, "K": 1024, "M": MIB}[m.group(2)]


def icount_shift(board: Board) -> int | None:
    """QEMU's -icount shift in deterministic mode (``sim: {icount: N}``), or None."""
    value = board.sim.get("icount")
    if value in (None, False):
        return None
    if value is True:
        return 5
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise BoardError(f"board {board.id}: sim.icount is a shift from 0 to 10, or true")
    return value


# -- tools and source ------------------------------------------------------------------------
def missing_tools(build: bool = True) -> list[str]:
    """The host programs that running (and, with ``build``, building) a board needs but lack."""
    wanted = [QEMU] + ([ARM_GCC, "make"] if build else [])
    return [t for t in wanted if shutil.which(t) is None]


def check_tools(build: bool = True) -> None:
    """Raise a one-line BoardError naming what to install when a tool is missing."""
    missing = missing_tools(build)
    if missing:
        raise BoardError(
            f"emulated Cortex-M boards need {', '.join(missing)}: install them with "
            f"`{INSTALL_HINT}` (Debian/Ubuntu)"
        )


def find_source(source: str | os.PathLike | None = None) -> Path:
    """The MicroPython source to build from: ``source``, else $KPDEV_MICROPYTHON_SRC."""
    import tarfile

    given = source or os.environ.get(SOURCE_ENV)
    if not given:
        raise UsageError(
            "building the emulated board's firmware needs MicroPython's source: pass --source "
            f"(a source tree or .tar.gz) or set {SOURCE_ENV}"
        )
    path = Path(given).expanduser()
    if path.is_dir():
        if not (path / "ports" / "qemu" / "Makefile").is_file():
            raise UsageError(f"{path} is not a MicroPython source tree (no ports/qemu/Makefile)")
        return path
    if path.is_file() and tarfile.is_tarfile(path):
        return path
    raise UsageError(f"MicroPython source {path}: no such directory or tarball")


def _hash_tree(path: Path) -> str:
    h = hashlib.sha256()
    for sub in ("py", "extmod", "shared", "ports/qemu", "lib"):
        top = path / sub
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("build"))
            for fn in sorted(filenames):
                p = Path(dirpath) / fn
                h.update(str(p.relative_to(path)).encode() + b"\0")
                h.update(p.read_bytes())
    return h.hexdigest()


def source_hash(source: Path) -> str:
    """A hash of the source: the tarball's bytes, or the files of a tree the build reads."""
    if source.is_dir():
        return _hash_tree(source)
    h = hashlib.sha256()
    with open(source, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def firmware_root() -> Path:
    """Where built firmware, unpacked sources and the staged agent are kept:
    $KPDEV_FIRMWARE_CACHE, else $KPDEV_HOME/firmware (keys make sharing one safe)."""
    from kpdev.host.boards.sim import home

    env = os.environ.get(CACHE_ENV)
    path = Path(env).expanduser() if env else home() / "firmware"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _unpack(source: Path, digest: str) -> Path:
    # The tarball's tree under firmware/src/HASH (once), or the tree given.
    import tarfile

    if source.is_dir():
        return source
    dest = firmware_root() / "src" / digest[:16]
    if (dest / "ports" / "qemu" / "Makefile").is_file():
        return dest
    tmp = Path(tempfile.mkdtemp(prefix="unpack-", dir=firmware_root()))
    try:
        with tarfile.open(source) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:
                tar.extractall(tmp)  # noqa: S202  (Python without extraction filters)
        entries = list(tmp.iterdir())
        top = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        if not (top / "ports" / "qemu" / "Makefile").is_file():
            raise UsageError(f"{source} holds no MicroPython source tree (no ports/qemu)")
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(top, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _board_files_hash(m: Machine) -> str:
    h = hashlib.sha256()
    for p in sorted(BOARD_FILES.glob("*")) + [BOARD_FILES / m.name / "mpconfigboard.mk"]:
        if p.is_file():
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def firmware_key(board: Board, digest: str) -> str:
    """The cache key of ``board``'s firmware: source hash, machine, heap, kpdev's board files."""
    m = machine(board)
    text = "\n".join([digest, m.name, str(heap_bytes(board)), _board_files_hash(m)])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class Firmware:
    """A built firmware image and how it was obtained."""

    path: Path
    key: str
    cached: bool
    seconds: float
    source: str

    def describe(self) -> dict:
        """Plain data for --json."""
        return {
            "firmware": str(self.path),
            "key": self.key,
            "cached": self.cached,
            "seconds": round(self.seconds, 2),
            "source": self.source,
        }


def _mpy_cross() -> str:
    from kpdev.host.agent.micropython import mpy_cross_binary

    return mpy_cross_binary()


@contextlib.contextmanager
def _build_lock():
    # One build at a time per KPDEV_HOME: they share the object files of a machine.
    fd = os.open(firmware_root() / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


Progress = Callable[[int, int], None]


def build_firmware(
    board: Board,
    source: str | os.PathLike | None = None,
    progress: Progress | None = None,
    jobs: int | None = None,
    force: bool = False,
) -> Firmware:
    """Build (or find in the cache) the firmware of the emulated board ``board``.

    ``progress(done, total)`` counts compiled files.  Heap sizes of one machine share their
    object files: another heap size recompiles only ``main.c``.
    """
    if not is_qemu(board):
        raise UsageError(f"{board.id} is not an emulated Cortex-M board (see kpdev boards)")
    m = machine(board)
    src = find_source(source)
    digest = source_hash(src)
    key = firmware_key(board, digest)
    out = firmware_root() / key / "firmware.elf"
    start = time.monotonic()
    if out.is_file() and not force:
        return Firmware(out, key, True, 0.0, str(src))
    check_tools(build=True)
    with _build_lock():
        if out.is_file() and not force:
            return Firmware(out, key, True, time.monotonic() - start, str(src))
        tree = _unpack(src, digest)
        _make(board, m, tree, digest, out, progress, jobs)
    return Firmware(out, key, False, time.monotonic() - start, str(src))


def _make(board, m, tree, digest, out, progress, jobs) -> None:
    work = firmware_root() / "build" / f"{m.name}-{digest[:12]}-{_board_files_hash(m)[:12]}"
    boards = work / "board"
    shutil.rmtree(boards, ignore_errors=True)
    shutil.copytree(BOARD_FILES, boards, ignore=shutil.ignore_patterns("__pycache__"))
    mpylib = work / "no-micropython-lib"  # the frozen manifest requires nothing from it
    mpylib.mkdir(parents=True, exist_ok=True)
    (mpylib / "README.md").write_text("kpdev's frozen manifest requires no micropython-lib\n")
    build = work / "build"
    # The heap is a static array sized in main.c: the one file to compile again.
    for stale in (build / "main.o", build / "main.d", build / "firmware.elf"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    total_file = work / "compiled-files"
    try:
        total = int(total_file.read_text())
    except (OSError, ValueError):
        total = 0
    argv = [
        "make",
        "-C",
        str(tree / "ports" / "qemu"),
        f"-j{jobs or os.cpu_count() or 1}",
        "BOARD=KPDEV_" + m.name.upper().replace("-", "_"),
        f"BOARD_DIR={boards / m.name}",
        f"BUILD={build}",
        f"MPY_LIB_DIR={mpylib}",
        f"MICROPY_MPYCROSS={_mpy_cross()}",
        f"MICROPY_HEAP_SIZE={heap_bytes(board)}",
        "CFLAGS_EXTRA=-fpermitted-flt-eval-methods=c11",
    ]
    log_path = work / "build.log"
    done = 0
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        for line in proc.stdout:
            log.write(line)
            if line.startswith("CC "):
                done += 1
                if progress:
                    progress(done, max(total, done))
        code = proc.wait()
    if code != 0:
        tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])
        raise BoardError(f"building the firmware failed (make exit {code}; {log_path}): {tail}")
    if done > 20:  # a build from scratch: remember its size for the next progress bar
        total_file.write_text(str(done))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    shutil.copyfile(build / "firmware.elf", tmp)
    os.replace(tmp, out)


def ensure_firmware(board: Board, progress: Progress | None = None) -> Path:
    """The board's firmware, built first when it is not (the source must be known)."""
    check_tools(build=False)
    try:
        src = find_source()
    except UsageError:
        raise BoardError(
            f"{board.id} needs its firmware built from MicroPython's source: run `kpdev firmware "
            f"build {board.id} --source TARBALL_OR_DIR`, or set {SOURCE_ENV}"
        ) from None
    return build_firmware(board, src, progress=progress).path


# -- the agent's flash image ---------------------------------------------------------------------
def romfs_image(board: Board) -> Path:
    """The agent's code as a ROMFS image of .mpy for the board's CPU (staged and cached)."""
    from kpdev.host.agent import romfs
    from kpdev.host.agent.build import board_modules
    from kpdev.host.agent.micropython import stage_lib

    march = board.mpy_march or machine(board).march
    # Beside the firmware: one staged lib per CPU, however many boards use it.
    lib = stage_lib(
        str(firmware_root() / ("lib-" + march)),
        march=march,
        include=board_modules("micropython"),
    )
    image = romfs.write_image(lib, str(firmware_root() / f"agent-{march}.romfs"))
    size = os.path.getsize(image)
    if size > ROMFS_SIZE:
        raise BoardError(f"the agent's ROMFS image is {size} bytes; the board has {ROMFS_SIZE}")
    return Path(image)


def command(board: Board, agent_args: list[str]) -> list[str]:
    """argv that runs ``board`` under QEMU with the agent (options ``agent_args``) on stdio.

    Builds the firmware first if needed.  ``--state DIR`` among the options is the host
    directory holding the board's flash file; the agent on the board keeps its state in
    /flash/kpdev-state.
    """
    firmware = ensure_firmware(board)
    image = romfs_image(board)
    argv = [
        sys.executable,
        "-m",
        "kpdev.host.boards.qemu",
        "--machine",
        machine(board).name,
        "--firmware",
        str(firmware),
        "--romfs",
        str(image),
    ]
    shift = icount_shift(board)
    if shift is not None:
        argv += ["--icount", str(shift)]
    return argv + ["--", *agent_args]


# -- running a board (python -m kpdev.host.boards.qemu) -------------------------------------------
def write_flash(flash: Path, image: bytes) -> None:
    """Put the ROMFS ``image`` at the start of the flash file (created blank when new)."""
    if not flash.exists():
        with open(flash, "wb") as f:
            f.truncate(PSRAM_SIZE)
    with open(flash, "r+b") as f:
        if os.fstat(f.fileno()).st_size < PSRAM_SIZE:
            f.truncate(PSRAM_SIZE)
        f.seek(ROMFS_OFFSET)
        if f.read(len(image)) != image:
            f.seek(ROMFS_OFFSET)
            f.write(image)


def options_block(args: list[str], seed: bytes) -> bytes:
    """What the host loads at ARGS_ADDR: the agent's options as kpdev_boot.py reads them, and
    at SEED_OFFSET the seed of the board's os.urandom (kpdev_board.c)."""
    text = "\0".join(args).encode()
    block = ARGS_MAGIC + len(text).to_bytes(4, "little") + text
    if len(block) > SEED_OFFSET:
        raise BoardError(f"the agent's options take {len(block)} bytes; at most {SEED_OFFSET}")
    return block.ljust(SEED_OFFSET, b"\0") + SEED_MAGIC + seed


def board_args(agent_args: list[str], key: str | None) -> tuple[Path, list[str]]:
    """(host state directory, the options as the agent on the board takes them)."""
    args = list(agent_args)
    state = Path("kpdev-state")
    if "--state" in args:
        i = args.index("--state")
        state = Path(args[i + 1])
        del args[i : i + 2]
    link = "stdio"
    if "--link" in args:
        i = args.index("--link")
        link = args[i + 1]
        del args[i : i + 2]
    if link != "stdio":
        raise BoardError(
            f"an emulated board serves on its UART (stdio), not {link}: "
            "use kpdev sim BOARD --listen pty|tcp://HOST:PORT"
        )
    args = ["--link", "stdio", "--state", STATE_ON_BOARD] + args
    if key and "--key" not in args:
        args += ["--key", key]
    return state, args


def qemu_argv(
    machine_name: str, firmware: str, flash: Path, boot: Path, icount: int | None
) -> list[str]:
    """QEMU's command line: the UART on stdin/stdout, the PSRAM backed by ``flash``."""
    argv = [
        QEMU,
        "-M",
        machine_name,
        "-nographic",
        "-monitor",
        "none",
        "-semihosting",
        "-object",
        f"memory-backend-file,id=psram,size={PSRAM_SIZE // MIB}M,mem-path={flash},share=on",
        "-machine",
        "memory-backend=psram",
        "-chardev",
        "stdio,id=uart0,signal=off",
        "-serial",
        "chardev:uart0",
        "-device",
        f"loader,file={boot},addr={ARGS_ADDR:#x},force-raw=on",
        "-kernel",
        firmware,
    ]
    if icount is not None:
        argv += ["-icount", f"shift={icount},align=off,sleep=off"]
    return argv


def _die_with_parent() -> None:
    # QEMU must not outlive its supervisor (a SIGKILL of it is a board's power cut).
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _stdin_closed() -> bool:
    poll = select.poll()
    poll.register(0, select.POLLHUP | select.POLLERR)
    return any(ev & (select.POLLHUP | select.POLLERR) for _, ev in poll.poll(0))


def run(machine_name: str, firmware: str, romfs: str, icount: int | None, agent_args: list[str]):
    """Serve the board on this process's stdin/stdout until stdin closes; returns exit status.

    A reset of the board (QEMU exits with status 0) starts QEMU again on the same pipes, with
    the same flash: RAM is lost, files stay.  Another status ends the run with that status
    (75 after a supervised REBOOT).
    """
    if machine_name not in MACHINES:
        raise BoardError(f"unknown machine {machine_name}; known: {', '.join(MACHINES)}")
    state, args = board_args(agent_args, os.environ.get("KPDEV_KEY"))
    if icount is not None:
        args += ["--clock", f"icount:{icount}"]  # the agent labels its times as virtual
    if "--model-area" not in args:
        # The raw part of the board's flash: loaded models are read there in place.
        area = MACHINES[machine_name].psram + MODEL_AREA_OFFSET
        args += ["--model-area", f"mem:{area:#x}:{MODEL_AREA_SIZE}"]
    state.mkdir(parents=True, exist_ok=True)
    flash = state / "flash.bin"
    with open(romfs, "rb") as f:
        write_flash(flash, f.read())
    for stale in state.glob(".boot-*"):  # left by a run that was killed; rewritten at each start
        with contextlib.suppress(OSError):
            stale.unlink()
    fd, boot_name = tempfile.mkstemp(prefix=".boot-", dir=state)  # mode 0600: it may hold a key
    boot = Path(boot_name)
    os.close(fd)
    proc: subprocess.Popen | None = None
    stopping: list[int] = []

    def _stop(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while True:
            with open(boot, "wb") as f:  # a fresh seed at each start, as a board's TRNG
                f.write(options_block(args, os.urandom(32)))
            proc = subprocess.Popen(
                qemu_argv(machine_name, firmware, flash, boot, icount),
                stdin=0,
                stdout=1,
                preexec_fn=_die_with_parent,
            )
            while proc.poll() is None:
                if stopping or _stdin_closed():
                    proc.terminate()
                    try:
                        proc.wait(5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                    return 0
                time.sleep(0.05)
            if proc.returncode != RESET_STATUS:
                if proc.returncode != EXIT_REBOOT:
                    sys.stderr.write(
                        f"kpdev-qemu: {machine_name} stopped with status {proc.returncode}\n"
                    )
                return proc.returncode
            sys.stderr.write(f"kpdev-qemu: {machine_name} reset\n")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            boot.unlink()


def main(argv: list[str]) -> int:
    """``python -m kpdev.host.boards.qemu --machine M --firmware ELF --romfs IMG [--icount N]
    -- AGENT-OPTIONS...``"""
    import argparse

    p = argparse.ArgumentParser(prog="python -m kpdev.host.boards.qemu")
    p.add_argument("--machine", required=True, choices=sorted(MACHINES))
    p.add_argument("--firmware", required=True)
    p.add_argument("--romfs", required=True)
    p.add_argument("--icount", type=int)
    p.add_argument("agent", nargs=argparse.REMAINDER)
    ns = p.parse_args(argv)
    agent_args = ns.agent[1:] if ns.agent[:1] == ["--"] else ns.agent
    try:
        return run(ns.machine, ns.firmware, ns.romfs, ns.icount, agent_args)
    except (BoardError, OSError) as e:
        sys.stderr.write(f"kpdev-qemu: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
