"""The report's section for an edge-learning session (``session.json`` of ``kpdev learn run``):
its plan, its rounds and the learning curve."""

from __future__ import annotations

from pathlib import Path

from kpdev.host.evaluation.report_blocks import Figure, Heading, Para, Table
from kpdev.host.evaluation.report_figures import learning_curve
from kpdev.host.evaluation.report_text import dataset_sentence, fmt, fmt_int, plain_text


def session_blocks(name: str, slug: str, log: dict, out_dir: Path, figures: list) -> list:
    """The section of a learning session: its facts, rounds and learning curve."""
    pack = log.get("pack") if isinstance(log.get("pack"), dict) else {}
    facts = [
        ["session", str(log.get("session", "-"))],
        ["pack", " ".join(str(pack[k]) for k in ("name", "version") if pack.get(k)) or "-"],
        ["board", f"{log.get('board', '?')} ({log.get('runtime', '?')})"],
        ["learner", str(log.get("learner", "-"))],
        ["started / finished", f"{log.get('started', '-')} / {log.get('finished', '-')}"],
        [
            "plan",
            f"{log.get('shots')} shots per class in each of {log.get('rounds')} rounds, "
            f"seed {log.get('seed')}",
        ],
        ["taught", ", ".join(map(str, log.get("taught") or [])) or "-"],
        ["new classes", ", ".join(map(str, log.get("new_classes") or [])) or "none"],
        ["scored on", ", ".join(map(str, log.get("scored") or [])) or "-"],
    ]
    if isinstance(log.get("dataset"), dict):
        facts.append(["dataset", dataset_sentence(log["dataset"])])
    if isinstance(log.get("saved"), dict):
        facts.append(["saved on the device", plain_text(log["saved"])])
    blocks: list = [Heading(2, f"Learning session: {name}"), Table(["", ""], facts)]
    rows_in = [r for r in log.get("rows") or [] if isinstance(r, dict)]
    scored = [str(c) for c in log.get("scored") or []]
    if rows_in:
        header = [
            "round",
            "shots / class",
            "samples",
            "learn s (host clock)",
            "ms / sample",
            "prequential acc.",
            "held-out acc.",
            "macro F1",
            "p50 µs",
        ] + [f"acc. {c}" for c in scored]
        rows = []
        for r in rows_in:
            per = r.get("per_class") if isinstance(r.get("per_class"), dict) else {}
            lat = r.get("latency_us") if isinstance(r.get("latency_us"), dict) else {}
            rows.append(
                [
                    fmt_int(r.get("round")),
                    fmt_int(r.get("shots_per_class")),
                    fmt_int(r.get("samples")),
                    fmt(r.get("learn_s"), 3),
                    fmt(r.get("learn_ms_per_sample"), 2),
                    fmt(r.get("prequential_accuracy"), 3),
                    fmt(r.get("accuracy"), 3),
                    fmt(r.get("macro_f1"), 3),
                    fmt(lat.get("p50"), 0),
                ]
                + [fmt(per.get(c), 3) for c in scored]
            )
        blocks.append(Heading(3, "Rounds"))
        blocks.append(
            Para(
                "held-out accuracy is scored on the device after each round (round 0: before "
                "learning); prequential accuracy is the device's guess of each shot before it "
                "learned it"
            )
        )
        blocks.append(Table(header, rows, tuple(range(len(header)))))
        path = learning_curve(
            rows_in, scored, log.get("new_classes") or [], name, out_dir / f"{slug}-curve.png"
        )
        figures.append(path)
        blocks.append(Figure(path, f"{name}: learning curve"))
    return blocks
