"""Deploying a Knowledge Pack: the checks before anything is sent, the upload, the activation and
the test vectors run on the device.

The order keeps the device whole: every check that can refuse the pack (storage, RAM, backends)
runs on the pack file and the device's INFO before the first byte goes out; models are sent
(an interrupted upload resumes where it stopped), loaded on the device before any is stored, and
stored without being activated; their test vectors run
by name before the pack is switched; the switch itself (PACK_SET) is one atomic write on the
device.  A refusal at any step leaves the previous pack active.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kpdev import accelerators
from kpdev.accelerators.options import OPTIONS
from kpdev.host.boards.catalog import Board, load_boards
from kpdev.host.client.client import Client, pack_set_body, payload_size
from kpdev.host.errors import UsageError
from kpdev.host.extras import extra_for, pip_install
from kpdev.host.packs.pack import Pack, device_pack, state_store_name, store_name
from kpdev.host.plain import human_bytes, jsonable
from kpdev.protocol import ops
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.formats import EXTENSIONS, format_of

# What a board's runtime can run, by model format, when its agent has the runtimes installed.
_RUNTIME_FORMATS = {"micropython": ("tflite",), "linux": ("tflite", "vmfb", "fbz")}


def _flatbuffer_id(data: bytes, at: int = 0) -> bytes:
    # A FlatBuffer's file identifier: bytes 4..8 after its start (8..12 when size-prefixed).
    return data[at + 4 : at + 8]


def _is_tflite(data: bytes) -> bool:
    return _flatbuffer_id(data) == b"TFL3"


def _is_vmfb(data: bytes) -> bool:
    # IREE writes a FlatBuffer with identifier "IREE", bare, size-prefixed, or (as its compiler
    # does today) as the first member of a zip archive, stored uncompressed.
    at = 0
    if data[:4] == b"PK\x03\x04" and len(data) >= 30:
        name_len, extra_len = struct.unpack_from("<HH", data, 26)
        at = 30 + name_len + extra_len
    return b"IREE" in (_flatbuffer_id(data, at), _flatbuffer_id(data, at + 4))


def _is_fbz(data: bytes) -> bool:
    # Akida writes a Snappy-compressed FlatBuffer that has no file identifier: a varint of the
    # uncompressed length n, then elements of which the first is a literal (tag bits 00); a
    # Snappy block is never longer than 32 + n + n/6 bytes (Akida writes exactly that long).
    n = at = 0
    while at < min(len(data), 5):
        n |= (data[at] & 0x7F) << (7 * at)
        at += 1
        if data[at - 1] < 0x80:
            break
    else:
        return False
    return 0 < n and at < len(data) and data[at] & 3 == 0 and len(data) <= 32 + n + n // 6


# Model format -> (check of its bytes, what a file of that format is).
_FORMAT_CHECKS = {
    "tflite": (_is_tflite, "a TFLite model (FlatBuffer identifier TFL3 at bytes 4..8)"),
    "vmfb": (_is_vmfb, "an IREE module (FlatBuffer identifier IREE, bare or in a zip)"),
    "fbz": (_is_fbz, "an Akida model (a Snappy-compressed FlatBuffer)"),
}


def read_model_file(path: Path) -> tuple[bytes, str]:
    """The bytes and format of a model file; UsageError naming the problem (an unknown
    extension, or bytes that are not a model of the format the extension names)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    fmt = format_of(path.name)
    if fmt is None:
        raise UsageError(
            f"{path.name}: not a model file; use one of {', '.join(EXTENSIONS)} (or a .kp pack)"
        )
    check, what = _FORMAT_CHECKS[fmt]
    if not check(data):
        raise UsageError(
            f"{path}: not {what}, although its name ends in .{fmt}; "
            "give the model file itself (kpdev sends nothing else)"
        )
    return data, fmt


def check_load(fmt: str, meta: dict[str, Any], info: dict[str, Any]) -> str | None:
    """Refuse (UsageError, one line naming the choices) a backend or load option the device
    would not use for a ``fmt`` model: an unknown backend, one that does not read ``fmt`` or
    that the device (``info``, its INFO) lacks, or a load option that backend does not read.

    Returns the backend the device will load it with (None: none there reads ``fmt``).
    """
    names = accelerators.FORMATS.get(fmt, ())
    offered = (info.get("formats") or {}).get(fmt) or []
    asked = meta.get("backend")
    if asked is not None:
        if asked not in accelerators.BACKENDS:
            raise UsageError(
                f"--backend {asked}: no such backend; use one of "
                f"{', '.join(accelerators.BACKENDS)}"
            )
        if asked not in names:
            raise UsageError(
                f"--backend {asked} does not read .{fmt} models; use one of {', '.join(names)}"
            )
        if asked not in offered:
            where = info.get("board") or "the device"
            board = load_boards().get(str(info.get("board")))
            raise UsageError(
                f"--backend {asked}: {where} lacks it (for .{fmt} it has "
                f"{', '.join(offered) or 'none'})" + install_hint(board, backend=asked)
            )
    which = asked or (offered[0] if offered else None)
    known = OPTIONS[which] if which else ()
    if which is None:  # the load will fail anyway; accept what any backend of the format reads
        known = tuple(o for n in names for o in OPTIONS[n])
    for key in meta:
        if key != "backend" and key not in known:
            raise UsageError(
                f"-O {key}: {which or 'no backend of .' + fmt} takes no load option {key!r}; "
                f"use one of {', '.join(known) or 'none'}"
            )
    return which


def delete_models(client: Client, names: list[str] | None) -> list[str]:
    """Delete the named models (None: every stored model); returns the names deleted.

    Every name is checked first: a name the device does not hold is refused (UsageError) and
    nothing is deleted.
    """
    stored = [m["name"] for m in client.models().get("models", [])]
    names = stored if names is None else list(dict.fromkeys(names))
    missing = [n for n in names if n not in stored]
    if missing:
        raise UsageError(
            f"no model {', '.join(missing)} on the device (it has {', '.join(stored) or 'none'});"
            " nothing was deleted"
        )
    for n in names:
        client.delete(n)
    return names


def _fits(pack: Pack, board: Board) -> bool:
    cost = pack.manifest.get("cost") or {}
    formats = {m["format"] for m in pack.manifest["models"]}
    ok_formats = set(_RUNTIME_FORMATS.get(board.runtime, ()))
    return (
        formats <= ok_formats
        and int(cost.get("model_bytes") or 0) <= board.quota
        and int(cost.get("ram_bytes") or 0) <= board.ram_kb * 1024
    )


def _would_fit(pack: Pack) -> str:
    names = [b.id for b in load_boards().values() if _fits(pack, b)]
    if not names:
        return "no catalog board fits"
    more = f" and {len(names) - 6} more (kpdev boards)" if len(names) > 6 else ""
    return f"boards that would take it: {', '.join(names[:6])}{more}"


def install_hint(board: Board | None, fmt: str | None = None, backend: str | None = None) -> str:
    """For a simulated CPython board, whose agent runs in this Python environment: the pip
    command that brings the runtime of ``backend`` (or else of format ``fmt``); '' otherwise."""
    if board is None or not board.simulated or board.runtime != "linux":
        return ""
    extra = extra_for(fmt, backend)
    if extra is None:
        return ""
    return f"; {board.id} runs in this Python environment, add the runtime with: " + pip_install(
        extra
    )


def _load_meta(spec: dict[str, Any]) -> dict[str, Any]:
    """The upload meta of a pack model: its load options and, when it names one, its backend."""
    meta = dict(spec.get("options") or {})
    if spec.get("backend"):
        meta["backend"] = spec["backend"]
    return meta


def check_pack(pack: Pack, board: Board | None, info: dict[str, Any]) -> dict[str, Any]:
    """Refuse (UsageError, one line) a pack the board cannot hold or run; else the plan.

    ``info`` is the device's INFO.  The plan says, per model, its store name, size, format and
    whether the device already holds these exact bytes.
    """
    m = pack.manifest
    where = board.id if board else info.get("board", "the device")
    cost = m.get("cost") or {}
    total = sum(len(pack.model_bytes(x["id"])) for x in m["models"])
    total += len(pack.learner_state() or b"")
    ram = cost.get("ram_bytes")
    problems = []
    quota = board.quota if board else int(info.get("storage", {}).get("quota") or 0)
    if quota and total > quota:
        problems.append(
            f"its models need {human_bytes(total)} of storage, {where} has {human_bytes(quota)}"
        )
    if board is not None and ram and int(ram) > board.ram_kb * 1024:
        problems.append(f"it plans {human_bytes(int(ram))} of RAM, {where} has {board.ram_kb} KB")
    formats = info.get("formats") or {}
    offered = info.get("backends") or {}
    local = board or load_boards().get(str(info.get("board")))  # a simulated board by --port
    for x in m["models"]:
        if x.get("backend"):
            if x["backend"] not in offered:
                problems.append(
                    f"model {x['id']} needs backend {x['backend']}, which {where} lacks "
                    f"(it has {', '.join(offered) or 'none'})"
                    + install_hint(local, backend=x["backend"])
                )
        elif not formats.get(x["format"]):
            problems.append(
                f"model {x['id']} is .{x['format']}, which no backend on {where} runs "
                f"(it runs {', '.join('.' + f for f in formats) or 'nothing'})"
                + install_hint(local, fmt=x["format"])
            )
    if problems:
        raise UsageError(
            f"{m['name']} does not fit {where}: {'; '.join(problems)}; {_would_fit(pack)}"
        )
    # Space: models already stored under the same name free their room when replaced.
    stored = {d["name"]: d for d in info.get("models", [])}
    plan = []
    for x in m["models"]:
        name = store_name(pack, x["id"])
        have = stored.get(name)
        plan.append(
            {
                "id": x["id"],
                "name": name,
                "bytes": len(pack.model_bytes(x["id"])),
                "format": x["format"],
                "stored": bool(
                    have
                    and have["sha256"] == x["sha256"]
                    and (have.get("meta") or {}) == _load_meta(x)
                ),
            }
        )
    return {"board": where, "model_bytes": total, "ram_bytes": ram, "models": plan}


def upload_models(
    client: Client, pack: Pack, plan: dict[str, Any], progress: Callable | None = None
) -> None:
    """Store every model of the pack under its store name, not activated; uploads resume.

    Models the plan marks ``stored`` (the same bytes and meta already there) are not sent again.
    Every model is sent and loaded on the device (MODEL_INFO of the upload) before any is
    committed: one the device cannot load is refused (DeviceError) with the uploads dropped, and
    the models stored under those names (the active pack's, when it is an older version of this
    one) stay as they were.  ``progress(done, total)`` counts bytes over all models.
    """
    total = sum(p["bytes"] for p in plan["models"])
    base = 0
    sent = [p for p in plan["models"] if not p["stored"]]
    for p in plan["models"]:
        if p["stored"]:
            base += p["bytes"]
            continue
        meta = _load_meta(pack.model(p["id"]))
        data = pack.model_bytes(p["id"])

        def step(done, _total, base=base):
            if progress:
                progress(base + done, total)

        client.send_model(p["name"], data, p["format"], meta, progress=step)
        base += p["bytes"]
    for p in sent:
        problem = client.model_info(p["name"], upload=True).get("load_error")
        if problem:
            for q in sent:
                client.abort_upload(q["name"])
            raise DeviceError(
                f"model {p['id']} of {pack.manifest['name']} cannot run on {plan['board']}: "
                f"{problem['msg']}; nothing was stored, the previous pack stays active",
                problem["code"],
            )
    for p in sent:
        client.commit(p["name"], activate=False)
    if progress:
        progress(total, total)


def _upload_state(client: Client, pack: Pack, info: dict[str, Any]) -> None:
    # A memory learner's starting state is stored like a model (format kpl), unless it is there.
    state = pack.learner_state()
    if state is None:
        return
    name = state_store_name(pack)
    digest = pack.learning["state"]["sha256"]
    if any(d["name"] == name and d["sha256"] == digest for d in info.get("models", [])):
        return
    client.upload(name, state, "kpl", {}, activate=False)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "iub":
        return bool(np.array_equal(a, b))  # integer backends: bit-exact
    return bool(np.allclose(a, b, rtol=1e-5, atol=1e-6))


def check_vectors(client: Client, pack: Pack, stage: str) -> list[dict[str, Any]]:
    """Run the pack's test vectors on the device; one result per vector and check.

    ``stage`` "models": each model's outputs for the vector's model input, by store name (before
    the pack is switched).  ``stage`` "pipeline": the model input the device's pipeline makes of
    the vector's raw window, and the class it picks (after the switch).
    """
    results = []
    for i, v in enumerate(pack.vectors()):
        if stage == "models":
            for mid, want in v["outputs"].items():
                got, _ = client.infer(v["inputs"], model=store_name(pack, mid))
                ok = len(got) == len(want) and all(
                    _same(g, w) for g, w in zip(got, want, strict=True)
                )
                diff = None
                if not ok and got and want and got[0].shape == want[0].shape:
                    diff = float(np.max(np.abs(got[0].astype(float) - want[0].astype(float))))
                results.append(
                    {"vector": i, "check": f"model {mid}", "match": ok, "max_diff": diff}
                )
        elif v.get("window") is not None:
            r = client.classify(v["window"], features=True)
            ok = _same(r["x"], v["inputs"][0].reshape(r["x"].shape)) if "x" in r else False
            results.append(
                {
                    "vector": i,
                    "check": "pipeline",
                    "match": ok,
                    "class": r["l"],
                    "label": v.get("label"),
                }
            )
    return results


def deploy_pack(
    client: Client,
    pack: Pack,
    board: Board | None,
    *,
    force: bool = False,
    progress: Callable | None = None,
) -> dict[str, Any]:
    """Check, upload, verify and activate ``pack`` on the device behind ``client``.

    Returns the plan with ``vectors`` (per vector and check: match or not) and ``active``.
    A model the device cannot load stops the deploy before anything is stored (DeviceError
    saying why; see ``upload_models``); model vectors that differ stop it before activation
    unless ``force``.  Either way the previous pack stays active.
    (``kpdev.host.packs.fit.fit_pack`` predicts all this without sending anything.)
    """
    info = dict(client.device)
    info["models"] = client.models().get("models", [])
    plan = check_pack(pack, board, info)
    plan.update({"pack": pack.manifest["name"], "version": pack.manifest["version"]})
    plan["dry_run"] = False
    plan["active"] = False
    _check_requests(pack, client.max_payload, plan["board"])
    upload_models(client, pack, plan, progress)
    _upload_state(client, pack, info)
    vectors = check_vectors(client, pack, "models")
    bad = [r for r in vectors if not r["match"]]
    if bad and not force:
        plan["vectors"] = vectors
        raise DeviceError(
            f"{len(bad)} of {len(vectors)} model test vectors differ on {plan['board']} "
            f"(first: vector {bad[0]['vector']}, {bad[0]['check']}); the previous pack stays "
            "active (--force activates anyway)",
            ops.E_INFER,
        )
    names = {x["id"]: store_name(pack, x["id"]) for x in pack.manifest["models"]}
    client.pack_set(device_pack(pack, names))
    plan["active"] = True
    vectors += check_vectors(client, pack, "pipeline")
    plan["vectors"] = vectors
    return plan


def _check_requests(pack: Pack, max_payload: int, where: str) -> None:
    # The pack's description must fit in one PACK_SET: refused before any model is sent.
    names = {x["id"]: store_name(pack, x["id"]) for x in pack.manifest["models"]}
    size = payload_size(pack_set_body(device_pack(pack, names)))
    if size > max_payload:
        raise UsageError(
            f"{pack.name} does not fit {where}: its description (PACK_SET) is {size} bytes, "
            f"over the agent's maximum payload of {max_payload}; nothing was sent (fewer "
            "classes or models, or a board with a larger max_payload)"
        )


def deploy_model(
    client: Client,
    name: str,
    data: bytes,
    fmt: str,
    meta: dict[str, Any],
    *,
    activate: bool = True,
    keep_unloadable: bool = False,
    board: Board | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Put one model file on the device safely: check its backend and load options, send it,
    check that the device can load it, and only then store it (replacing the model of that name)
    and make it the active model.

    A backend or option the device would not use is refused before anything is sent
    (``check_load``), and so is a model of a format no backend there reads (unless
    ``keep_unloadable``: the user stores it for a runtime to come).  A model the device cannot
    load (an operator its backend lacks, too little memory) is never activated, and is not
    stored unless ``keep_unloadable``: its upload is dropped, and a model stored under its name
    and the active model stay exactly as they were.  DeviceError says why, what became of it
    and of the active model (with the pip extra to install when a backend is missing); its
    ``detail`` carries the result for --json.  Returns the upload result with the board,
    seconds, backend, io spec and whether it is active.
    """
    import time

    if board is not None and len(data) > board.quota:
        raise UsageError(
            f"{name} is {human_bytes(len(data))} but {board.id} stores at most "
            f"{human_bytes(board.quota)}"
        )
    which = check_load(fmt, meta, client.device)
    where = client.device.get("board") or "the device"
    if which is None and not keep_unloadable:
        # No backend there reads the format: the load would fail, so nothing is sent.
        offered = client.device.get("formats") or {}
        has = ", ".join(f".{f}" for f in offered) or "none"
        found = board or load_boards().get(str(client.device.get("board")))
        error = DeviceError(
            f"{name} cannot run on {where}: it has no backend for .{fmt} models (it runs "
            f"{has}); nothing was sent (--keep-unloadable stores it anyway)"
            + install_hint(found, fmt, meta.get("backend")),
            ops.E_NO_BACKEND,
        )
        error.detail = {"board": where, "format": fmt, "sent": False}
        raise error
    before = client.models()
    replaced = any(m["name"] == name for m in before.get("models", []))
    t0 = time.perf_counter()
    offset = client.send_model(name, data, fmt, meta, progress=progress)
    # The load is checked on the upload itself, before MODEL_COMMIT: a model the device refuses
    # never replaces the one stored under its name.
    detail = client.model_info(name, upload=True)
    problem = detail.get("load_error")
    result: dict[str, Any] = {"name": name, "active": False, "stored": False}
    if problem and not keep_unloadable:
        client.abort_upload(name)
    else:
        result = client.commit(name, activate=False)
        result["stored"] = True
    result["resumed_from"] = offset
    seconds = time.perf_counter() - t0
    if activate and not problem:
        client.activate(name)
        result["active"] = True
    result.update(
        {
            "board": client.device.get("board"),
            "seconds": seconds,
            "backend": detail.get("backend"),
            "io": detail.get("io"),
            "details": detail.get("details"),
            "load_error": problem,
        }
    )
    if fmt == "tflite" and not problem:
        from kpdev.host.runtime.reference import tflm_arena_bytes

        # Beside the heap the device reports: what TFLM's arena is for the same model.
        result["tflm_arena_reference_bytes"] = tflm_arena_bytes(data)
    if problem:
        hint = ""
        if problem["code"] == ops.E_NO_BACKEND:
            found = board or load_boards().get(str(result["board"]))
            hint = install_hint(found, fmt, meta.get("backend"))
        if keep_unloadable:
            fate = f"{name} is stored on {result['board']} (--keep-unloadable)"
            if replaced:
                fate += f"; the model stored as {name} before was replaced by it"
        else:
            fate = f"nothing was stored on {result['board']} (--keep-unloadable stores it)"
            if replaced:
                fate += f"; the model stored as {name} before is unchanged"
        active = client.models().get("active")
        result["active"] = active == name and keep_unloadable
        if active == before.get("active"):
            fate += "; the active model is unchanged"
        else:
            fate += f"; the active model is now {active or 'none'}"
        error = DeviceError(
            f"{name} cannot run on {result['board']}: {problem['msg']}; {fate}{hint}",
            problem["code"],
        )
        error.detail = jsonable(result)  # under --json, the CLI puts it in the error object
        raise error
    return result
