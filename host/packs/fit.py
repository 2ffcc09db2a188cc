"""Will it fit?  ``kpdev deploy --dry-run``: every limit the real deploy meets, checked without
sending anything, against what the device says of itself (its INFO) or, when no device answers,
the board catalog; the result names which.

The checks, each with what it needs, what the board has and how the figure was found:

- ``backend``: a backend on the board reads the model's format (the one a pack or --backend
  names must be there).
- ``load``: the model loads with that backend.  For a MicroPython board, kpdev loads it with the
  agent's own backend code in MicroPython on this machine (``kpdev.host.agent.trial``), which
  finds what the backend refuses (an operator the interpreter lacks).  For a Linux board it
  loads it here with the backend the board would use (this machine's copy of the runtime).
- ``heap`` (MicroPython boards): the least free heap, as the agent's INFO reports it, with which
  a twin of the board's agent, started here at growing heap sizes, took the load (a model file)
  or the whole deploy (a pack: loads, test vectors, the switch, its pipeline), against the
  device's free heap.  Without a device (no free heap to compare with) or a twin, the
  fresh-heap figure of the load alone stands in, labelled as a lower bound.
- ``storage``: the uploads against the store's free bytes (the catalog: an empty store of the
  board's quota).  A pack's models are all sent and checked before any is committed, so they
  need their room together, beside the models they replace; a learner's state goes after the
  commits, when the replaced models have freed theirs.
- ``request``: the largest request the deploy sends of each kind (PACK_SET, a test vector's
  INFER and CLASSIFY) against the agent's maximum payload.
- ``ram``: from the catalog only, the pack's planned RAM against the board's RAM.

The twin runs the unix port, 64-bit: a 32-bit board's objects are smaller, so for a real board
the figure errs on the safe side.  A device that has served a while has its heap in more pieces
than a fresh twin: with less than ``TIGHT`` bytes to spare the verdict is "may not fit".
"""

from __future__ import annotations

from typing import Any

from kpdev import accelerators
from kpdev.host.agent import trial
from kpdev.host.boards.catalog import Board
from kpdev.host.client.client import classify_body, infer_body, pack_set_body, payload_size
from kpdev.host.packs.pack import Pack, device_pack, state_store_name, store_name
from kpdev.host.plain import human_bytes

# A load is called sure to fit the heap only with this much to spare: a device that has served
# for a while has its heap in more pieces than a twin agent that has just started.
TIGHT = 8 * 1024

# What a board's agent offers, from the catalog alone (no device to ask): by runtime, format ->
# backends, most preferred first (a Linux board's when their runtimes are installed there).
_CATALOG_FORMATS = {
    "micropython": {"tflite": ["tflite_int8"]},
    "linux": {"tflite": ["tflite_micro", "tflite_int8"], "vmfb": ["iree"], "fbz": ["akida"]},
}
# The agent's maximum payload when the catalog gives none (device/agent.py).
_AGENT_MAX_PAYLOAD = {"micropython": 2048, "linux": 256 * 1024}


class _Board:
    """What the checks know of the board: from its INFO, or from the catalog."""

    def __init__(self, board: Board | None, info: dict[str, Any] | None, why: str = ""):
        self.board = board
        self.source = "device" if info is not None else "catalog"
        if info is not None:
            self.id = str(info.get("board") or (board.id if board else "the device"))
            self.runtime = info.get("runtime") or (board.runtime if board else "")
            self.runtime = "linux" if self.runtime == "cpython" else self.runtime
            self.formats = dict(info.get("formats") or {})
            storage = info.get("storage") or {}
            self.quota = int(storage.get("quota") or 0)
            self.free = int(storage.get("free", self.quota))
            self.stored = {m["name"]: m for m in info.get("models") or []}
            self.pack = info.get("pack")  # the active pack (PACK_GET), when the caller asked
            memory = info.get("memory") or {}
            self.heap_free = memory.get("heap_free") if self.runtime == "micropython" else None
            self.max_payload = int(info.get("max_payload") or 1024)
            self.staged_input = bool(info.get("staged_input"))
            self.basis = f"figures from {self.id}'s own report (INFO, just now)"
        else:
            assert board is not None
            self.id = board.id
            self.runtime = board.runtime
            self.formats = {f: list(n) for f, n in _CATALOG_FORMATS.get(board.runtime, {}).items()}
            self.quota = self.free = board.quota
            self.stored = {}
            self.pack = None
            self.heap_free = None
            self.max_payload = int(
                board.agent.get("max_payload") or _AGENT_MAX_PAYLOAD.get(board.runtime, 1024)
            )
            self.staged_input = True  # kpdev's own agent takes inputs in pieces
            self.basis = (
                f"figures from the catalog (boards.yml) for {board.id}, with an empty store"
                + (f": no device answered ({why})" if why else "")
            )
        self.checks: list[dict[str, Any]] = []

    def add(self, check: str, subject: str, ok: bool | None, need=None, have=None, how="", why=""):
        """One check's result: ``ok`` None when it could not be checked; ``how`` the figures
        were found, ``why`` it fails (or could not be checked)."""
        self.checks.append(
            {
                "check": check,
                "subject": subject,
                "ok": ok,
                "need": need,
                "have": have,
                "how": how,
                "why": why,
            }
        )

    def result(self, **extra) -> dict[str, Any]:
        """The plan: ``fits`` True when every check passed, False when one failed, None when
        none failed but one could not be told (no figure to check, or a tight heap)."""
        problems = [f"{c['subject']}: {c['why']}" for c in self.checks if c["ok"] is not True]
        fits = None if problems else True
        if any(c["ok"] is False for c in self.checks):
            fits = False
        verdict = {True: "fits", False: "does not fit", None: "may not fit"}[fits]
        return {
            "board": self.id,
            "source": self.source,
            "basis": self.basis,
            "fits": fits,
            "verdict": verdict,
            "problems": problems,
            "checks": self.checks,
            **extra,
        }


def _backend(view: _Board, subject: str, fmt: str, asked: str | None) -> str | None:
    offered = view.formats.get(fmt) or []
    how = f"{view.id} offers for .{fmt}"
    if asked:
        ok = asked in offered
        why = "" if ok else f"needs backend {asked}, which {view.id} lacks for .{fmt}"
        view.add("backend", subject, ok, asked, ", ".join(offered) or "none", how, why)
        return asked if ok else None
    if not offered:
        has = ", ".join("." + f for f in view.formats) or "nothing"
        why = f"no backend on {view.id} runs .{fmt} (it runs {has})"
        view.add("backend", subject, False, f".{fmt}", "none", how, why)
        return None
    view.add("backend", subject, True, f".{fmt}", offered[0], how)
    return offered[0]


def _load(view: _Board, subject: str, data: bytes, fmt: str, backend: str, meta) -> int | None:
    """The load check; returns the free heap the load needs (MicroPython) when known."""
    entry = accelerators.BACKENDS[backend]
    if view.runtime == "micropython" and entry.runtime is None and view.board is not None:
        try:
            need, why = trial.heap_to_load(view.board, data, backend, meta)
        except trial.TrialUnavailable as e:
            need = (entry.heap or 0) + (len(data) if meta.get("weights") == "ram" else 0)
            view.add("load", subject, None, how="not tried", why=str(e))
            return need
        if need is None:
            view.add(
                "load", subject, False, how=f"tried: {backend}, MicroPython here",
                why=f"{backend} does not load it: {why}",
            )  # fmt: skip
            return None
        view.add("load", subject, True, how=f"tried: {backend}, MicroPython here")
        return need
    if view.runtime == "linux":
        try:
            why = trial.load_here(data, fmt, backend, meta)
        except trial.TrialUnavailable as e:
            view.add("load", subject, None, how="not tried", why=str(e))
            return None
        how = f"tried: {backend}, this machine's runtime"
        if why is not None:
            view.add("load", subject, False, how=how, why=f"{backend} does not load it: {why}")
        else:
            view.add("load", subject, True, how=how)
    return None


def _heap(view: _Board, subject: str, need: int, how: str, low: int | None = None) -> None:
    """The heap check: ``need`` the free heap a just-started agent needed, ``low`` (when
    known) the least any agent can need (the load alone on a fresh heap).  An agent that has
    loaded models before needs less than a just-started one (the names the loader interns stay
    interned), so a free heap between the two can go either way: "may not fit"."""
    if view.heap_free is None:
        ram = view.board.ram_kb * 1024 if view.board else None
        ok = None if ram is None or need <= ram else False
        why = (
            "free heap unknown without the device"
            if ok is None
            else f"needs {human_bytes(need)} of free heap, more than {view.id}'s "
            f"{human_bytes(ram)} of RAM"
        )
        view.add("heap", subject, ok, need, ram, how + "; has: the board's RAM in all", why)
        return
    free = int(view.heap_free)
    low = need if low is None else min(low, need)
    if free < low:
        why = f"needs at least {human_bytes(low)} of free heap, {view.id} has {human_bytes(free)}"
        view.add("heap", subject, False, need, free, how, why)
        return
    if free >= need + TIGHT:
        view.add("heap", subject, True, need, free, how)
        return
    why = (
        f"{view.id} has {human_bytes(free)} of free heap: a just-started agent needed "
        f"{human_bytes(need)}, one that has loaded models before needs less (at least "
        f"{human_bytes(low)}), and a heap in pieces more; it may or may not load"
    )
    view.add("heap", subject, None, need, free, how, why)


def _storage(view: _Board, uploads: list[tuple[str, int]], after: list[tuple[str, int]]) -> None:
    """``uploads`` are all under way at once (a deploy sends and checks every model before it
    commits any); ``after`` go once they are committed, when the models they replaced have
    freed their room."""
    free = view.free
    how = "free store" + (", empty" if view.source == "catalog" else "")
    for i, (name, size) in enumerate(uploads + after):
        if i == len(uploads):  # the first upload after the commits
            for done, _ in uploads:
                old = view.stored.get(done)
                if old:
                    free += int(old.get("size") or 0)
        ok = size <= free
        why = "" if ok else (
            f"needs {human_bytes(size)} of storage, {view.id} has {human_bytes(free)} free of "
            f"{human_bytes(view.quota)}"
        )  # fmt: skip
        view.add("storage", name, ok, size, free, how, why)
        if not ok:
            return
        free -= size


def _request(view: _Board, what: str, size: int) -> None:
    ok = size <= view.max_payload
    why = "" if ok else (
        f"the {what} request is {size} bytes, over {view.id}'s maximum payload of "
        f"{view.max_payload}"
    )  # fmt: skip
    view.add("request", what, ok, size, view.max_payload, "CBOR body vs max payload", why)


_FRESH = "needs: least free heap it loaded with here (MicroPython x64, fresh heap): a lower bound"
_TWIN = "needs: least free heap (INFO) a just-started twin of the agent here loaded it with"
_TWIN_PACK = "needs: least free heap (INFO) a just-started twin of the agent here deployed it with"


def fit_model(
    name: str,
    data: bytes,
    fmt: str,
    meta: dict[str, Any],
    board: Board | None,
    info: dict[str, Any] | None,
    why: str = "",
) -> dict[str, Any]:
    """The dry run of ``kpdev deploy MODEL``: every check, and the verdict ``fits``."""
    view = _Board(board, info, why)
    load_meta = {k: v for k, v in meta.items() if k != "backend"}
    backend = _backend(view, name, fmt, meta.get("backend"))
    _storage(view, [(name, len(data))], [])
    if backend:
        fresh = _load(view, name, data, fmt, backend, load_meta)
        if fresh is not None and _twin_ok(view) and fresh <= view.heap_free:
            try:
                need, why = trial.agent_heap_to_load(view.board, data, fmt, backend, load_meta)
            except trial.TrialUnavailable as e:
                need, why = None, str(e)
            if need is None:
                view.add("heap", name, None, fresh, view.heap_free, _FRESH, why)
            else:
                _heap(view, name, need, _TWIN, low=fresh)
        elif fresh is not None:
            _heap(view, name, fresh, _FRESH)
    return view.result(name=name, format=fmt, bytes=len(data), backend=backend)


def fit_pack(
    pack: Pack, board: Board | None, info: dict[str, Any] | None, why: str = ""
) -> dict[str, Any]:
    """The dry run of ``kpdev deploy PACK``: every check, and the verdict ``fits``."""
    view = _Board(board, info, why)
    m = pack.manifest
    names = {x["id"]: store_name(pack, x["id"]) for x in m["models"]}
    uploads = []
    needs = []
    for x in m["models"]:
        data = pack.model_bytes(x["id"])
        name = names[x["id"]]
        have = view.stored.get(name)
        if not (have and have.get("sha256") == x["sha256"]):
            uploads.append((name, len(data)))
        backend = _backend(view, name, x["format"], x.get("backend"))
        if backend:
            load_meta = dict(x.get("options") or {})
            need = _load(view, name, data, x["format"], backend, load_meta)
            if need is not None:
                needs.append((need, name))
    after = []
    state = pack.learner_state()
    if state is not None:
        name = state_store_name(pack)
        have = view.stored.get(name)
        if not (have and have.get("sha256") == pack.learning["state"]["sha256"]):
            after.append((name, len(state)))
    _storage(view, uploads, after)
    cost = m.get("cost") or {}
    requests_ok = _requests(view, pack, names)
    if view.runtime == "micropython":
        fresh = max(needs)[0] if needs else 0
        clear = all(c["ok"] is not False for c in view.checks)  # the twin would fail the same
        if clear and _twin_ok(view) and requests_ok and fresh <= view.heap_free:
            try:
                held = tuple(
                    x["id"]
                    for x in m["models"]
                    if (view.stored.get(names[x["id"]]) or {}).get("sha256") == x["sha256"]
                )
                mine = view.pack or {}
                active = (mine.get("name"), mine.get("version")) == (pack.name, m["version"])
                need, why = trial.agent_heap_to_deploy(view.board, pack, fresh, held, active)
            except trial.TrialUnavailable as e:
                view.add("heap", pack.name, None, fresh, view.heap_free, _FRESH, str(e))
            else:
                if need is None:  # the twin refused it at every heap size: so will the device
                    why = f"a twin of the agent here refused the deploy: {why}"
                    view.add("heap", pack.name, False, None, view.heap_free, _TWIN_PACK, why)
                else:
                    _heap(view, pack.name, need, _TWIN_PACK, low=fresh)
        else:
            for need, name in needs:
                _heap(view, name, need, _FRESH)
    if view.source == "catalog" and board is not None and cost.get("ram_bytes"):
        ram = int(cost["ram_bytes"])
        ok = ram <= board.ram_kb * 1024
        why = "" if ok else f"it plans {human_bytes(ram)} of RAM, {board.id} has {board.ram_kb} KB"
        view.add("ram", pack.name, ok, ram, board.ram_kb * 1024, "planned RAM vs the board's", why)
    return view.result(pack=pack.name, version=m["version"])


def _requests(view: _Board, pack: Pack, names: dict[str, str]) -> bool:
    """The request checks of a pack's deploy; whether they all pass."""
    before = len(view.checks)
    _request(view, "PACK_SET", payload_size(pack_set_body(device_pack(pack, names))))
    vectors = pack.vectors()
    infer = [
        payload_size(infer_body(v["inputs"], names[mid])) for v in vectors for mid in v["outputs"]
    ]
    if infer:
        if max(infer) > view.max_payload and view.staged_input:
            how = "larger than a frame: the input goes in pieces (INFER_INPUT)"
            view.add("request", "INFER (test vector)", True, max(infer), view.max_payload, how)
        else:
            _request(view, "INFER (test vector)", max(infer))
    windows = [v["window"] for v in vectors if v.get("window") is not None]
    if windows:
        biggest = max(payload_size(classify_body(w, True)) for w in windows)
        _request(view, "CLASSIFY (test vector)", biggest)
    return all(c["ok"] for c in view.checks[before:])


def _twin_ok(view: _Board) -> bool:
    # A twin agent answers for a MicroPython board whose free heap the device told.
    return view.board is not None and view.heap_free is not None


def catalog_info(board: Board) -> dict[str, Any]:
    """The part of an INFO the catalog can stand in for: the board and the formats it runs."""
    return {"board": board.id, "formats": _Board(board, None).formats}
