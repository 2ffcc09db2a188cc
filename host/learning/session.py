"""Edge-learning sessions: teach the device's learner a few labelled shots, watch it learn.

A session (``run_session``) takes a pack with a learner that the device runs, a dataset and a
plan: ``shots`` new samples per class in each of ``rounds`` rounds, drawn with a fixed seed
from the dataset's train side.  Before the first round and after each one the device
classifies the held-out side; the result is a learning curve (accuracy against shots per
class), per-class accuracy, the device's own predictions of each shot before it learned it
(prequential accuracy) and the time learning took over the link.  ``new_classes`` are classes
of the dataset the learner does not know yet: the session adds them first (class-incremental
learning) and keeps scoring the old ones, so forgetting shows.

``export_pack`` turns the learned state the device hands back (LEARN_EXPORT) into a new
version of the pack: the learner's memory, or the Akida model with its learned weights, plus a
manifest that records where and from which session it was learned.
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from kpdev import __version__
from kpdev.host import features
from kpdev.host.client.client import Client
from kpdev.host.datasets import Dataset
from kpdev.host.errors import UsageError
from kpdev.host.evaluation.evaluate import evaluate, frame_batch
from kpdev.host.evaluation.metrics import utc_now
from kpdev.host.packs.pack import MANIFEST, STATE_FILE, Pack, model_path, npy_bytes, write_pack

_MAGIC = b"KPL1"
SESSION_KIND = "kpdev-learn-session"  # session.json, which kpdev report takes
Progress = Callable[[int, int], None]
OnRound = Callable[[dict[str, Any]], None]


def new_session_id() -> str:
    """A short id for a session: UTC time and a random suffix."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


# -- planning ------------------------------------------------------------------------------
def plan_session(
    pack: Pack,
    learner_labels: list[str],
    dataset: Dataset,
    *,
    shots: int,
    rounds: int,
    classes: list[str] | None = None,
    new_classes: list[str] | None = None,
    seed: int = 0,
    test_fraction: float | None = None,
) -> dict[str, Any]:
    """Which samples each round teaches and which the device is scored on (UsageError, one
    line, for a plan the data or the learner cannot meet)."""
    if shots < 1:
        raise UsageError(f"--shots must be at least 1, not {shots}")
    if rounds < 1:
        raise UsageError(f"--rounds must be at least 1, not {rounds}")
    new = list(new_classes or [])
    known = list(learner_labels)
    for label in (classes or []) + new:
        if label not in dataset.classes:
            raise UsageError(
                f"class {label!r} is not in {dataset.name} (its classes: "
                f"{', '.join(dataset.classes)})"
            )
    for label in new:
        if label in known:
            raise UsageError(
                f"--new-classes {label}: the learner knows {label!r} already (it knows "
                f"{', '.join(known)}); teach it with --classes"
            )
    for label in classes or []:
        if label not in known and label not in new:
            raise UsageError(
                f"--classes {label}: the learner does not know {label!r} (it knows "
                f"{', '.join(known) or 'no classes yet'}); add it with --new-classes {label}"
            )
    if classes:
        taught = list(classes) + [c for c in new if c not in classes]
    elif new:
        taught = new
    else:
        taught = [c for c in known if c in dataset.classes]
    if not taught:
        raise UsageError(
            f"{dataset.name} has none of the learner's classes ({', '.join(known) or 'none'}); "
            "name classes to add with --new-classes"
        )
    labels = known + new
    if classes:
        scored = taught
    else:
        scored = [c for c in labels if c in dataset.classes]
    train, test = dataset.split(test_fraction, seed)
    rng = np.random.default_rng(seed)
    picks: dict[str, np.ndarray] = {}
    for label in taught:
        members = np.flatnonzero(train.y == dataset.classes.index(label))
        need = shots * rounds
        if len(members) < need:
            raise UsageError(
                f"class {label!r} has {len(members)} training samples in {dataset.name}; "
                f"--shots {shots} x --rounds {rounds} needs {need}"
            )
        picks[label] = rng.permutation(members)[:need]
    plan_rounds = []
    for r in range(rounds):
        idx = np.concatenate([picks[label][r * shots : (r + 1) * shots] for label in taught])
        plan_rounds.append(rng.permutation(idx))
    test_idx = np.flatnonzero(np.isin(test.y, [dataset.classes.index(c) for c in scored]))
    if not len(test_idx):
        raise UsageError(f"{dataset.name} holds back no samples of {', '.join(scored)} to score")
    return {
        "train": train,
        "test": test.subset(test_idx),
        "rounds": plan_rounds,
        "taught": taught,
        "new": new,
        "scored": scored,
        "labels": labels,
    }


# -- running -------------------------------------------------------------------------------
def _score(
    client: Client, pack: Pack, test: Dataset, scored: list[str], progress: Progress | None
) -> dict[str, Any]:
    labels = [test.classes[i] for i in test.y]
    result = evaluate(
        client,
        test.x,
        labels,
        classes=scored,
        pipeline=pack.manifest.get("pipeline"),
        progress=progress,
    )
    report = result["classification"]
    per_class = {}
    for label in scored:
        mine = [i for i, t in enumerate(labels) if t == label]
        hits = sum(1 for i in mine if result["predicted"][i] == label)
        per_class[label] = hits / len(mine) if mine else None
    return {
        "accuracy": report["accuracy"],
        "per_class": per_class,
        "macro_f1": report.get("macro_f1"),
        "latency_us": result["latency_us"],
        "classification": report,
    }


def run_session(
    client: Client,
    pack: Pack,
    dataset: Dataset,
    *,
    shots: int,
    rounds: int,
    classes: list[str] | None = None,
    new_classes: list[str] | None = None,
    seed: int = 0,
    test_fraction: float | None = None,
    session: str | None = None,
    on_round: OnRound | None = None,
    progress: Progress | None = None,
    save: bool = False,
) -> dict[str, Any]:
    """Run a whole session on the device behind ``client``; returns the session log.  With
    ``save`` the device keeps what it learned across reboots (``log["saved"]``, LEARN_SAVE).

    ``on_round(row)`` gets each round's row as soon as it is scored (round 0: before
    learning); ``progress(done, total)`` counts shots taught and samples scored.
    """
    info = client.learn_info()
    plan = plan_session(
        pack,
        info["labels"],
        dataset,
        shots=shots,
        rounds=rounds,
        classes=classes,
        new_classes=new_classes,
        seed=seed,
        test_fraction=test_fraction,
    )
    session = session or new_session_id()
    started = utc_now()
    added = client.learn_add_classes(plan["new"])["labels"] if plan["new"] else info["labels"]
    index = {label: i for i, label in enumerate(added)}
    pipeline = pack.manifest.get("pipeline")
    train: Dataset = plan["train"]
    test: Dataset = plan["test"]
    total = sum(len(r) for r in plan["rounds"]) + len(test) * (rounds + 1)
    done = 0

    def report(n: int) -> None:
        nonlocal done
        done = n
        if progress:
            progress(done, total)

    def score() -> dict[str, Any]:
        # The device classifies the held-out side; progress goes on from where it stands.
        start = done
        result = _score(client, pack, test, plan["scored"], lambda d, _t: report(start + d))
        report(start + len(test))
        return result

    rows = []
    row = {"round": 0, "shots_per_class": 0, "samples": 0, "learn_s": 0.0}
    row.update(score())
    rows.append(row)
    if on_round:
        on_round(row)
    taught = 0
    for r, idx in enumerate(plan["rounds"], start=1):
        xs = features.raw_input(pipeline, train.x[idx]) if pipeline else train.x[idx]
        ys = [index[train.classes[train.y[i]]] for i in idx]
        size = frame_batch(client, np.asarray(xs[0]), None)
        before: list[int] = []
        t0 = time.perf_counter()
        for at in range(0, len(ys), size):
            reply = client.learn(list(xs[at : at + size]), ys[at : at + size], session)
            before += reply["p"]
            report(done + len(reply["p"]))
        learn_s = time.perf_counter() - t0
        taught += len(ys)
        row = {
            "round": r,
            "shots_per_class": r * shots,
            "samples": taught,
            "learn_s": learn_s,
            "learn_ms_per_sample": learn_s * 1000 / len(ys),
            "prequential_accuracy": float(
                np.mean([b == y for b, y in zip(before, ys, strict=True)])
            ),
        }
        row.update(score())
        rows.append(row)
        if on_round:
            on_round(row)
    final = client.learn_info()
    log = {
        "kind": SESSION_KIND,
        "session": session,
        "kpdev": __version__,
        "started": started,
        "finished": utc_now(),
        "pack": {"name": pack.name, "version": pack.manifest["version"], "path": pack.path},
        "board": client.device.get("board"),
        "runtime": client.device.get("runtime"),
        "learner": pack.learning["learner"],
        "dataset": dataset.summary(),
        "seed": seed,
        "shots": shots,
        "rounds": rounds,
        "taught": plan["taught"],
        "new_classes": plan["new"],
        "scored": plan["scored"],
        "labels": final["labels"],
        "curve": [[row["shots_per_class"], row["accuracy"]] for row in rows],
        "rows": rows,
        "device": final,
    }
    if save:
        log["saved"] = client.learn_save()
    return log


def ensure_active(
    client: Client,
    pack: Pack,
    dataset: Dataset,
    *,
    board: Any | None = None,
    progress: Progress | None = None,
    **plan: Any,
) -> bool:
    """Make ``pack`` the device's active pack for a session; True when it had to be deployed.

    It is deployed only when the device's active pack is another one (or another version), and
    only after the session ``plan`` (shots, rounds, classes, ...) is checked against the labels
    the learner starts from: a plan the data cannot meet leaves the device's pack as it was.
    """
    from kpdev.host.packs.deploy import deploy_pack

    active = client.pack_get()
    if active is not None and [active["name"], active["version"]] == [
        pack.name,
        pack.manifest["version"],
    ]:
        return False
    plan_session(pack, list(pack.learning.get("classes") or []), dataset, **plan)
    deploy_pack(client, pack, board, progress=progress)
    return True


def write_session(log: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write ``session.json`` and, when matplotlib is there, ``learning_curve.png`` to
    ``out``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"log": out / "session.json"}
    from kpdev.host.atomic import write_atomic

    text = json.dumps(log, indent=2, default=_plain) + "\n"
    write_atomic(paths["log"], lambda f: f.write(text.encode()))
    try:
        plot = plot_curve(log, out / "learning_curve.png")
    except ImportError:
        plot = None
    if plot is not None:
        paths["plot"] = plot
    return paths


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def plot_curve(log: dict[str, Any], path: Path) -> Path:
    """The learning curve (accuracy against shots per class, overall and per class) as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = log["rows"]
    shots = [row["shots_per_class"] for row in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(shots, [row["accuracy"] for row in rows], "o-", lw=2, color="black", label="all")
    for label in log["scored"]:
        values = [row["per_class"].get(label) for row in rows]
        new = label in log["new_classes"]
        name = label + (" (new)" if new else "")
        ax.plot(shots, values, "s--" if new else ".:", lw=1, label=name)
    ax.set_xlabel("shots per class learned on the device")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{log['pack']['name']} on {log['board']} ({log['learner']} learner)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    from kpdev.host.atomic import write_atomic

    def save(f) -> None:
        fig.savefig(f, format="png")

    write_atomic(path, save)
    plt.close(fig)
    return path


# -- the learned state ---------------------------------------------------------------------
def parse_state(data: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, payload) of a learner state as the device saves and exports it
    (device/learnrun.py); UsageError when it is not whole."""
    if len(data) < 8 or data[:4] != _MAGIC:
        raise UsageError("the learned state is not a kpdev learner state (bad magic)")
    (n,) = struct.unpack("<I", data[4:8])
    try:
        header = json.loads(data[8 : 8 + n])
    except ValueError:
        raise UsageError("the learned state's header is not JSON") from None
    payload = data[8 + n :]
    if (
        not isinstance(header, dict)
        or len(payload) != header.get("payload")
        or hashlib.sha256(payload).hexdigest() != header.get("sha256")
    ):
        raise UsageError("the learned state is damaged (its payload does not match its sha256)")
    return header, payload


def export_pack(
    pack: Pack,
    data: bytes,
    out: Path,
    *,
    board: str | None,
    version: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write the device's learned state ``data`` as a new version of ``pack`` at ``out``.

    The new pack carries the learned memory (memory learner) or the Akida model with its
    learned weights (akida learner), the learner's labels, ``learning.learned`` (board,
    session, samples, when, from which pack) and test vectors recomputed by the host
    reference runtime, so a fresh board is checked against what was learned.
    """
    from kpdev.host.runtime.reference import ReferenceLearner

    header, payload = parse_state(data)
    m = pack.manifest
    if [header.get("pack"), header.get("version")] != [m["name"], m["version"]]:
        raise UsageError(
            f"the device's learner belongs to pack {header.get('pack')} {header.get('version')}, "
            f"not {m['name']} {m['version']}; give the pack it runs (--pack)"
        )
    manifest = copy.deepcopy(m)
    files = {k: v for k, v in pack.files.items() if k != MANIFEST}
    learning = manifest["learning"]
    learning["classes"] = list(header["labels"])
    learned = {
        "on_device": True,
        "board": board,
        "session": header.get("session"),
        "samples": header.get("samples"),
        "exported": utc_now(),
        "from": {"name": m["name"], "version": m["version"]},
    }
    if learning.get("learned"):
        learned["before"] = learning["learned"]
    learning["learned"] = learned
    if header["learner"] == "memory":
        files[STATE_FILE] = payload
        learning["state"] = {
            "file": STATE_FILE,
            "sha256": hashlib.sha256(payload).hexdigest(),
            "bytes": len(payload),
        }
    else:
        entry = next(x for x in manifest["models"] if x["id"] == learning["model"])
        files[model_path(entry["id"], entry["format"])] = payload
        entry["sha256"] = hashlib.sha256(payload).hexdigest()
        entry["bytes"] = len(payload)
        entry["classes"] = list(header["labels"])
        entry["class_index"] = {label: i for i, label in enumerate(header["labels"])}
    base = m["version"].split("+", 1)[0]
    manifest["version"] = version or f"{base}+learned.{header.get('session') or 'device'}"
    manifest["created"] = utc_now()
    manifest["kpdev"] = __version__
    manifest["metrics"] = None  # the build's accuracy is not the learned pack's
    draft = Pack(str(out), manifest, files)
    ref = ReferenceLearner(draft)
    try:
        if header["learner"] == "akida":
            entry = next(x for x in manifest["models"] if x["id"] == learning["model"])
            entry["outputs"] = ref.output_specs()
        _revector(draft, ref)
    finally:
        ref.close()
    path = write_pack(out, manifest, files)
    return path, learned


def _revector(pack: Pack, ref: Any) -> None:
    # The vectors keep their windows and model inputs; outputs and labels are the learned ones.
    for v, entry in zip(pack.vectors(), pack.manifest["test_vectors"], strict=True):
        x = v["inputs"][0]
        for mid, paths in entry["outputs"].items():
            for p, y in zip(paths, ref.model_outputs(mid, x), strict=True):
                pack.files[p] = npy_bytes(y)
        entry["label"] = ref.classify(x)[1]
