"""The agent as a MicroPython board holds it: its file tree, and putting that tree on a board.

``build_tree`` lays out what goes on the board's flash: ``lib/kpdev/...`` (``.mpy`` compiled by
mpy-cross for the board's CPU, or the ``.py`` sources) and a ``main.py`` that starts the agent on
the USB serial console at boot.  The rest drives a board's REPL over its serial port, with
mpremote where files move: ``stop_agent`` hands the console back to the REPL, ``board_runtime``
asks what MicroPython it runs, ``check_board`` and ``check_fits`` refuse a board or a tree that
do not go together, ``copy_tree`` writes the files, ``soft_reset`` restarts the board into the
new agent and ``hello`` checks that it answers.

Paths on the board are relative to the directory the REPL starts in, the root of its flash
filesystem (``/`` on rp2 and esp32, ``/flash`` on stm32): ``lib`` there is on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kpdev import __version__
from kpdev.host.agent.micropython import mpremote_command, stage_lib
from kpdev.host.boards.catalog import Board
from kpdev.host.boards.sim import home
from kpdev.host.client.client import Client
from kpdev.host.errors import BoardError, LinkError, LinkTimeout, UsageError
from kpdev.host.link.transport import open_url
from kpdev.host.plain import human_bytes

# On the board, relative to the REPL's directory.  The state directory's name is not a Python
# identifier on purpose: '' comes before lib on sys.path, and a directory called ``kpdev`` there
# would shadow the agent's package.
STATE_DIR = "kpdev-state"
OFF_FILE = "kpdev-off"
# Two Ctrl-C bytes alone, outside any frame, end the agent's loop (device/agent.py _CTRL_C).
_STOP = b"\x03\x03"
# mpremote's -march names by the number MicroPython's .mpy header and sys.implementation._mpy
# carry (MP_NATIVE_ARCH_*).
_ARCHES = {
    1: "x86",
    2: "x64",
    3: "armv6",
    4: "armv6m",
    5: "armv7m",
    6: "armv7em",
    7: "armv7emsp",
    8: "armv7emdp",
    9: "xtensa",
    10: "xtensawin",
    11: "rv32imc",
    12: "rv64imc",
}
# ARM cores run the code of the ones before them in this list.
_ARM = ("armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp")

Progress = Callable[[int, int], None]


@dataclass
class AgentTree:
    """A board's file tree, laid out in ``root``."""

    root: str
    board: Board
    compiled: bool
    march: str | None
    files: list[tuple[str, int]] = field(default_factory=list)  # (path under root, bytes)

    @property
    def size(self) -> int:
        """Bytes of all files."""
        return sum(size for _, size in self.files)

    @property
    def kind(self) -> str:
        """What the modules are: '.py sources', '.mpy for armv6m', '.mpy (bytecode)'."""
        if not self.compiled:
            return ".py sources"
        return f".mpy for {self.march}" if self.march else ".mpy (bytecode)"

    def describe(self) -> list[dict]:
        """The files as plain data: [{"path", "size"}]."""
        return [{"path": rel, "size": size} for rel, size in self.files]

    def dirs(self) -> list[str]:
        """The directories the files need, parents first."""
        out: list[str] = []
        for rel, _ in self.files:
            parts = rel.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in out:
                    out.append(d)
        return out

    def mpy_header(self) -> bytes | None:
        """The first four bytes of a compiled module: 'M', .mpy version, features, int bits."""
        if not self.compiled:
            return None
        for rel, _ in self.files:
            if rel.endswith(".mpy"):
                with open(os.path.join(self.root, rel), "rb") as f:
                    return f.read(4)
        return None

    def native_headers(self) -> list[tuple[str, bytes]]:
        """(path, header) of the modules holding native code (viper, native): arch-specific."""
        out = []
        for rel, _ in self.files:
            if rel.endswith(".mpy"):
                with open(os.path.join(self.root, rel), "rb") as f:
                    head = f.read(4)
                if len(head) == 4 and head[2] >> 2:
                    out.append((rel, head))
        return out


# Device modules that only work on CPython (numpy, a vendor SDK): kept off MicroPython boards.
_CPYTHON_DEVICE_MODULES = (
    "kpdev.device.power_akida",
    "kpdev.device.learn_akida",
    "kpdev.accelerators.ndarray",
    "kpdev.device.fastinfer",
)


def board_modules(runtime: str) -> Callable[[str], bool]:
    """Which device modules go on a board of ``runtime``: all but other runtimes' backends.

    The backend table (``kpdev.accelerators.BACKENDS``: name -> ``BackendEntry`` with its
    module and the runtime it needs, or None) says which modules belong to a backend for another
    runtime; those modules, or
    packages, stay off the board.  Reading it imports the table only, no backend.
    """
    from kpdev import accelerators

    foreign = [
        entry.module
        for entry in accelerators.BACKENDS.values()
        if entry.runtime is not None and entry.runtime != runtime
    ]
    if runtime == "micropython":
        foreign += list(_CPYTHON_DEVICE_MODULES)

    def include(rel: str) -> bool:
        name = "kpdev." + rel[:-3].replace("/", ".")
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        return not any(name == m or name.startswith(m + ".") for m in foreign)

    return include


def agent_args(board: Board, key: bytes | None = None) -> list[str]:
    """The agent's options for ``board`` from the catalog: its name, quota and link limits."""
    args = ["--link", "stdio", "--state", STATE_DIR, "--board", board.id]
    args += ["--quota", str(board.quota)]
    for opt in ("max_payload", "window"):
        if opt in board.agent:
            args += ["--" + opt.replace("_", "-"), str(board.agent[opt])]
    if board.power:
        args += ["--power", json.dumps(board.power, separators=(",", ":"))]
    if key:
        args += ["--key", key.hex()]
    return args


_MAIN_PY = """\
# kpdev agent for {board_id} ({board_name}),
# written by `kpdev agent build` (kpdev {version}).
#
# At boot this starts the kpdev agent on the USB serial console: the port the REPL uses carries
# the agent's frames instead.  The agent's code is in lib/kpdev, its models in {state}/.
#
# Back to the REPL (for mpremote, Thonny, ...): Ctrl-C typed in a terminal does not stop the
# agent (Ctrl-C is data on its link), and neither does mpremote.  Run
#     kpdev agent stop --port PORT
# which sends two Ctrl-C bytes alone, outside any frame: the agent ends, this file returns and
# the REPL has the port until the next reset.  Then, to boot to the REPL from now on, create the
# file {off} next to this one (mpremote connect PORT fs touch :{off}) or delete this file.
# Uninstall: kpdev agent stop --port PORT, then
#     mpremote connect PORT fs rm -r :lib/kpdev + rm :main.py
{key_note}
import sys

ARGS = {args!r}


def _off():
    try:
        import os

        os.stat("{off}")
        return True
    except (ImportError, OSError):
        return False


def _kbd_intr(char):
    # Ctrl-C is data on the agent's link: a 0x03 byte in a request that arrives while the agent
    # is still importing must not interrupt it (the link keeps Ctrl-C off while it serves).
    try:
        import micropython

        micropython.kbd_intr(char)
    except (ImportError, AttributeError):
        pass


if not _off():
    sys.argv.clear()
    sys.argv.extend(["main.py"] + ARGS)
    _kbd_intr(-1)
    try:
        import kpdev.device.__main__  # noqa: F401  (serves until the agent is stopped)
    except SystemExit:
        pass  # a failed start: carry on to the REPL, where an exit would soft-reset in a loop
    except Exception as e:
        sys.print_exception(e)
    finally:
        _kbd_intr(3)
"""


def main_py(board: Board, key: bytes | None = None) -> str:
    """The board's ``main.py``: start the agent on the USB serial console at boot."""
    key_note = (
        "#\n# The pre-shared key is in ARGS below, readable by anyone with this board's flash.\n"
        if key
        else ""
    )
    return _MAIN_PY.format(
        board_id=board.id,
        board_name=board.name,
        version=__version__,
        state=STATE_DIR,
        off=OFF_FILE,
        args=agent_args(board, key),
        key_note=key_note,
    )


def build_tree(
    board: Board, out: str, source: bool = False, key: bytes | None = None
) -> AgentTree:
    """Lay out ``board``'s file tree in ``out``: ``lib/kpdev/...`` and ``main.py``.

    The modules are compiled to ``.mpy`` by mpy-cross for the board's CPU (``mpy_march`` in the
    catalog), or copied as ``.py`` with ``source``.  Only MicroPython boards take this tree.
    """
    if board.runtime != "micropython":
        raise UsageError(
            f"{board.id} runs the agent on {board.runtime} (CPython), which imports it as a "
            "Python package: pip install kpdev there, then run python -m kpdev.device"
        )
    os.makedirs(out, exist_ok=True)
    lib = os.path.join(out, "lib")
    include = board_modules("micropython")
    if source:
        stage_lib(lib, compiled=False, include=include, standalone=True)
    else:
        # Compiled in a cache kept between builds, where only changed modules are compiled
        # again, then copied: the tree holds the board's files and nothing else.
        cache = home() / "build" / (board.mpy_march or "bytecode")
        stage_lib(str(cache), march=board.mpy_march, include=include)
        pkg = os.path.join(lib, "kpdev")
        shutil.rmtree(pkg, ignore_errors=True)
        shutil.copytree(cache / "kpdev", pkg, ignore=shutil.ignore_patterns(".*", "*.tmp"))
    with open(os.path.join(out, "main.py"), "w") as f:
        f.write(main_py(board, key))
    tree = AgentTree(out, board, compiled=not source, march=board.mpy_march)
    tree.files = tree_files(out)
    return tree


def tree_files(root: str) -> list[tuple[str, int]]:
    """(path, bytes) of the agent's files under ``root``: lib/kpdev sorted, then main.py.

    main.py comes last so that a copy cut short leaves a board that boots to its REPL.
    """
    files = []
    pkg = os.path.join(root, "lib", "kpdev")
    for dirpath, dirnames, filenames in os.walk(pkg):
        dirnames.sort()
        for fn in sorted(filenames):
            if fn.startswith(".") or fn.endswith(".tmp"):
                continue
            path = os.path.join(dirpath, fn)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            files.append((rel, os.path.getsize(path)))
    if os.path.isfile(os.path.join(root, "main.py")):
        files.append(("main.py", os.path.getsize(os.path.join(root, "main.py"))))
    return files


# -- on the board -----------------------------------------------------------------------------
def stop_agent(port: str, baud: int = 115200, wait: float = 3.0) -> bool:
    """End a kpdev agent serving on ``port`` so that the REPL answers there again.

    Sends two Ctrl-C bytes alone (the agent's stop signal; mpremote's own Ctrl-C comes with a CR
    and does not stop it) and waits for a REPL prompt.  An agent that holds a key ignores them
    (docs/protocol.md §12, console handoff).  Harmless when no agent runs: a REPL
    shows a fresh prompt.  Returns whether a prompt was seen.
    """
    link = open_url(port, baud, timeout=0.1)
    try:
        _drain(link)
        seen = b""
        for _attempt in range(2):
            link.write(_STOP)
            deadline = time.monotonic() + wait / 2
            while time.monotonic() < deadline:
                seen = (seen + link.read(4096))[-256:]
                if b">>> " in seen:
                    return True
            # A partial frame before our bytes swallows them; the agent drops it once the line is
            # quiet (docs/protocol.md §3, quiet link).
        return False
    finally:
        link.close()


def _drain(link, limit: float = 1.0) -> None:
    # Forget what the port holds from before (an old prompt would look like a new one).
    deadline = time.monotonic() + limit
    while link.read(4096) and time.monotonic() < deadline:
        pass


def soft_reset(port: str, baud: int = 115200, wait: float = 3.0) -> bool:
    """Soft-reset the board from its REPL (Ctrl-D), which runs boot.py and then main.py.

    Leaves the raw REPL first (Ctrl-B): a soft reset from there would skip main.py.  Returns
    whether the board said "soft reboot".
    """
    link = open_url(port, baud, timeout=0.1)
    try:
        _drain(link)
        link.write(b"\r\x03")
        time.sleep(0.1)
        link.write(b"\x02")
        time.sleep(0.1)
        link.write(b"\x04")
        seen = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            seen = (seen + link.read(4096))[-256:]
            if b"soft reboot" in seen:
                return True
        return False
    finally:
        link.close()


def _mpremote(port: str, *args: str, timeout: float = 30.0) -> str:
    """Run mpremote on ``port`` without its automatic soft reset; returns its stdout."""
    cmd = mpremote_command() + ["connect", port, "resume", *args]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LinkError(f"mpremote got no answer from {port} within {timeout:g} s") from None
    if result.returncode != 0:
        raise LinkError(f"mpremote on {port}: {_last_line(result.stderr or result.stdout)}")
    return result.stdout


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "failed with no output"


# Runs on the board: what MicroPython it is and how much room its flash has for the tree.
_QUERY = """\
import os, sys
i = sys.implementation
def du(p):
    try:
        m = os.stat(p)
    except OSError:
        return 0
    if not m[0] & 0x4000:
        return m[6]
    return sum(du(p + "/" + n) for n in os.listdir(p))
try:
    s = os.statvfs(".")
    free = s[0] * s[3]
except Exception:
    free = -1
v = ".".join(str(x) for x in i.version[:3])
print("kpdev-query", i.name, v, getattr(i, "_mpy", 0), free, du("lib/kpdev") + du("main.py"))
"""


def board_runtime(port: str) -> dict:
    """What the board on ``port`` runs: implementation, version, .mpy support, free flash."""
    out = _mpremote(port, "exec", _QUERY)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[0] == "kpdev-query":
            mpy = int(parts[3])
            return {
                "implementation": parts[1],
                "version": parts[2],
                "mpy_version": mpy & 0xFF,
                "mpy_sub_version": (mpy >> 8) & 3,
                "arch": _ARCHES.get(mpy >> 10),
                "free": int(parts[4]),
                "installed": int(parts[5]),
            }
    raise LinkError(f"{port} did not answer like a MicroPython REPL: {_last_line(out)}")


def _runs(board_arch: str, code_arch: str) -> bool:
    if board_arch in _ARM and code_arch in _ARM:
        return _ARM.index(board_arch) >= _ARM.index(code_arch)
    return board_arch == code_arch


def check_board(board: Board, runtime: dict, port: str) -> None:
    """Raise unless the board described by ``runtime`` is MicroPython on ``board``'s CPU."""
    if runtime["implementation"] != "micropython":
        raise BoardError(f"{port} runs {runtime['implementation']}, not MicroPython")
    if runtime["arch"] and board.mpy_march and not _runs(runtime["arch"], board.mpy_march):
        raise BoardError(
            f"the board on {port} has a {runtime['arch']} CPU but {board.id} is "
            f"{board.mpy_march} in the catalog: pass the --board that is connected "
            "(see kpdev boards)"
        )


def check_fits(tree: AgentTree, runtime: dict, port: str) -> None:
    """Raise unless the board described by ``runtime`` can load and hold ``tree``."""
    check_board(tree.board, runtime, port)
    head = tree.mpy_header()
    if head is not None and head[1] != runtime["mpy_version"]:
        raise BoardError(
            f"the board on {port} runs MicroPython {runtime['version']}, which loads .mpy "
            f"version {runtime['mpy_version']}, but mpy-cross wrote version {head[1]}: update "
            "the board's firmware, or install the sources with --source"
        )
    for rel, head in tree.native_headers():
        if runtime["arch"] and (head[2] & 3) != runtime["mpy_sub_version"]:
            raise BoardError(
                f"{rel} holds native code of .mpy sub-version {head[2] & 3} but MicroPython "
                f"{runtime['version']} on {port} loads {runtime['mpy_sub_version']}: update the "
                "board's firmware, or install the sources with --source"
            )
    room = runtime["free"] + runtime["installed"]
    if runtime["free"] >= 0 and tree.size > room:
        raise BoardError(
            f"the agent needs {tree.size} bytes of flash but the board on {port} has {room} "
            "free: delete files with mpremote, or install compiled (without --source)"
        )


# Runs on the board before the copy: drop the old agent (a stale .py would shadow a new .mpy)
# and the boot-to-REPL flag, then make the directories.  The models in STATE_DIR stay.
_PREPARE = """\
import os
def rm(p):
    try:
        m = os.stat(p)
    except OSError:
        return
    if m[0] & 0x4000:
        for n in os.listdir(p):
            rm(p + "/" + n)
        os.rmdir(p)
    else:
        os.remove(p)
rm("lib/kpdev")
rm("%s")
for d in %r:
    try:
        os.mkdir(d)
    except OSError:
        pass
"""


def copy_commands(tree: AgentTree) -> list[list[str]]:
    """The mpremote commands (after ``connect PORT``) that put ``tree`` on a board."""
    cmds = [["exec", _PREPARE % (OFF_FILE, tree.dirs())]]
    for rel, _ in tree.files:
        cmds.append(["fs", "cp", os.path.join(tree.root, rel), ":" + rel])
    return cmds


def copy_tree(port: str, tree: AgentTree, progress: Progress | None = None) -> None:
    """Write ``tree`` to the board's flash with one mpremote run, file by file.

    ``progress(done, total)`` counts bytes of whole files.
    """
    argv = mpremote_command() + ["connect", port, "resume"]
    for cmd in copy_commands(tree):
        argv += cmd + ["+"]
    argv.pop()
    sizes = {os.path.join(tree.root, rel): size for rel, size in tree.files}
    total = tree.size
    done = 0
    pending = 0  # mpremote names a file before copying it
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "cp" and parts[1] in sizes:
                done += pending
                pending = sizes[parts[1]]
                if progress:
                    progress(done, total)
        errors = proc.stderr.read()
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0:
        raise LinkError(
            f"copying the agent to {port} failed after {done} of {total} bytes: "
            f"{_last_line(errors)}"
        )
    if progress:
        progress(total, total)


def hello(port: str, baud: int = 115200, key: bytes | None = None, timeout: float = 10.0) -> dict:
    """HELLO to the agent just started on ``port``; returns what it reports (its INFO).

    Asks again every few seconds until ``timeout``: a request that reached the board while it
    was still booting may have been lost.
    """
    link = open_url(port, baud)
    client = Client(link, key, timeout=timeout)
    deadline = time.monotonic() + timeout
    try:
        while True:
            client.timeout = max(0.1, min(3.0, deadline - time.monotonic()))
            try:
                return client.hello()
            except LinkTimeout:
                if time.monotonic() >= deadline:
                    raise LinkTimeout(
                        f"the agent on {port} did not answer within {timeout:g} s of the reset; "
                        f"see what the board prints with: mpremote connect {port} repl "
                        "(then Ctrl-D restarts it)"
                    ) from None
    finally:
        client.close()


def install(
    board: Board,
    port: str,
    *,
    key: bytes | None = None,
    source: bool = False,
    timeout: float = 15.0,
    progress: Callable[[int, int], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> dict:
    """Install the agent on the MicroPython board ``board`` at ``port``, as ``kpdev agent
    install`` does, and return what was done.

    The order keeps the board usable: any running agent is stopped first; the board's
    MicroPython is asked what it runs and the files are refused before copying if it could not
    load them or they do not fit; ``lib/kpdev`` and ``main.py`` are replaced with mpremote (the
    stored models stay); a soft reset starts the agent, and HELLO checks it.  ``say(text)``
    gets a line for each step; ``progress(done, total)`` counts bytes copied.
    """
    import tempfile

    say = say or (lambda text: None)
    baud = int(board.link.get("baud", 115200))
    say(f"stopping any agent on {port}")
    stop_agent(port, baud)
    runtime = board_runtime(port)
    check_board(board, runtime, port)
    free = runtime["free"]
    say(
        f"{port}: MicroPython {runtime['version']}"
        + (f" ({runtime['arch']})" if runtime["arch"] else "")
        + (f", {human_bytes(free)} free" if free >= 0 else "")
    )
    with tempfile.TemporaryDirectory(prefix="kpdev-agent-") as tmp:
        tree = build_tree(board, tmp, source=source, key=key)
        check_fits(tree, runtime, port)
        copy_tree(port, tree, progress=progress)
    say("soft reset; waiting for the agent")
    rebooted = soft_reset(port, baud)
    info = hello(port, baud, key, timeout)
    return {
        "board": board.id,
        "port": port,
        "files": tree.describe(),
        "bytes": tree.size,
        "runtime": runtime,
        "soft_reboot_seen": rebooted,
        "agent": info,
    }
