"""Recognition of a raw recording: per-window classes from the device's stream, or the host's
emulation of the same pack.

On the device the samples go out in STREAM_PUSH requests as large as the link takes; the agent
cuts the windows itself and sends one CLASS_EVENT per window.  On the host, ``features.segment``
cuts the same windows and ``kpdev.host.runtime.emulate.HostPack`` classifies them.  With per-sample
labels, a window's true class is the majority label of its samples (ties: the class listed first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from kpdev.host import features
from kpdev.host.client.client import Client
from kpdev.host.datasets import Signal
from kpdev.host.errors import UsageError
from kpdev.host.evaluation.metrics import classification, utc_now
from kpdev.host.packs.pack import Pack
from kpdev.protocol import ops

RECOGNITION_KIND = "kpdev-recognition"  # the document ``kpdev recognize --out`` writes


def _stream(client: Client, samples: np.ndarray, progress: Callable | None) -> list[dict]:
    events: list[dict] = []
    before = client.on_event

    def on_event(op: int, body: Any) -> None:
        if op == ops.CLASS_EVENT:
            events.append(body)
        elif before:
            before(op, body)

    client.on_event = on_event
    try:
        client.stream_start()
        per = max(1, (client.max_payload - 96) // (samples.itemsize * samples.shape[1]))
        for at in range(0, len(samples), per):
            client.stream_push(samples[at : at + per])
            if progress:
                progress(min(len(samples), at + per), len(samples))
        client.stream_stop()
    finally:
        client.on_event = before
    return sorted(events, key=lambda e: e["w"])


def recognize(
    pack: Pack, signal: Signal, client: Client | None = None, progress: Callable | None = None
) -> dict[str, Any]:
    """Classify every window of ``signal``: on the device behind ``client`` (which must hold
    ``pack``), or on the host when ``client`` is None.

    Returns ``{"kind": "kpdev-recognition", "created", "pack", "platform", "board", "windows":
    [{"window", "start", "class", "score", "us", "path", "label"}], "classification": metrics
    or None, "skipped": {class: windows} or None}``.  A window's ``us`` is the device's own time
    for it (pipeline + models) on the device, and the host's time of its emulation on the host.
    Labelled windows of a class the pack does not know are left out of ``classification`` and
    counted in ``skipped``, as ``kpdev eval`` leaves out such samples.
    """
    pipeline = pack.manifest.get("pipeline")
    if not pipeline:
        raise UsageError(f"{pack.path}: the pack has no pipeline, so it cannot take a recording")
    axes = pipeline["axes"]
    if signal.x.ndim != 2 or signal.x.shape[1] != len(axes):
        got = signal.x.shape[1] if signal.x.ndim == 2 else "?"
        raise UsageError(
            f"the recording has {got} axes; the pack's pipeline takes {len(axes)} "
            f"({', '.join(axes)})"
        )
    size, stride = pipeline["window"]["size"], pipeline["window"]["stride"]
    samples = features.raw_input(pipeline, signal.x)
    starts = list(range(0, len(samples) - size + 1, stride))
    if not starts:
        raise UsageError(
            f"the recording has {len(samples)} samples, fewer than one window of {size}"
        )
    if client is None:
        from kpdev.host.runtime.emulate import HostPack

        host = HostPack(pack)
        try:
            results = [host.classify(w) for w in features.segment(samples, size, stride)]
        finally:
            host.close()
        board = "host"
    else:
        results = _stream(client, samples, progress)
        board = client.device.get("board")
    truth = None
    if signal.labels is not None and signal.classes:
        truth = []
        for s in starts[: len(results)]:
            counts = np.bincount(signal.labels[s : s + size], minlength=len(signal.classes))
            truth.append(signal.classes[int(np.argmax(counts))])
    rows = [
        {
            "window": i,
            "start": starts[i] if i < len(starts) else None,
            "class": r["l"],
            "score": r["s"],
            "us": r["tf"] + r["tm"],
            "path": r["p"],
            "label": truth[i] if truth else None,
        }
        for i, r in enumerate(results)
    ]
    report, skipped = None, None
    if truth:
        # As kpdev eval does: a window of a class the pack cannot answer with is left out of the
        # score and counted, not scored as an error the pack had no chance to avoid.
        known = set(pack.classes())
        skipped = {}
        for t in truth:
            if t not in known:
                skipped[t] = skipped.get(t, 0) + 1
        scored = [(t, r["class"]) for t, r in zip(truth, rows, strict=True) if t in known]
        if scored:
            names = [c for c in signal.classes if c in known]
            names = list(dict.fromkeys(names + [p for _, p in scored]))
            report = classification(
                [names.index(t) for t, _ in scored], [names.index(p) for _, p in scored], names
            )
    return {
        "kind": RECOGNITION_KIND,
        "created": utc_now(),
        "pack": pack.name,
        "platform": "host" if client is None else "device",
        "board": board,
        "windows": rows,
        "classification": report,
        "skipped": skipped or None,
    }
