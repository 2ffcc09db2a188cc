"""``kpdev report``: Markdown and HTML reports, with PNG figures, from measurements documents,
recognitions and learning sessions.

This module reads and checks the inputs and writes the files. The report is built once as a list
of blocks (``report_blocks``), one section an input (``report_runs``, ``report_recognition``,
``report_session``; ``report_comparison`` for several runs), and then rendered twice.
matplotlib (the ``report`` extra) is imported only when figures are drawn (``report_figures``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from kpdev.host.errors import UsageError
from kpdev.host.evaluation.metrics import FLEET_KIND, KIND
from kpdev.host.evaluation.report_blocks import Heading, to_html, to_markdown
from kpdev.host.evaluation.report_comparison import comparison_blocks
from kpdev.host.evaluation.report_figures import require_matplotlib
from kpdev.host.evaluation.report_fleet import fleet_blocks
from kpdev.host.evaluation.report_recognition import recognition_blocks
from kpdev.host.evaluation.report_runs import run_blocks
from kpdev.host.evaluation.report_session import session_blocks
from kpdev.host.evaluation.report_text import what_label


def _default_name(doc: dict, i: int) -> str:
    board = doc.get("board")
    ident = (board.get("id") or board.get("name")) if isinstance(board, dict) else None
    what = what_label(doc)
    parts = [str(p) for p in (ident, what if what != "-" else None) if p]
    return " / ".join(parts) or f"run {i + 1}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:40] or "run"


def _unique(items: list[str], sep: str) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for item in items:
        n = seen.get(item, 0) + 1
        seen[item] = n
        out.append(item if n == 1 else f"{item}{sep}{n}")
    return out


def attach_profile(doc: dict, profile: Any, where: str) -> dict:
    """``doc`` (a measurements document) with ``profile`` (a ``kpdev profile`` document) as its
    ``results.profile``; UsageError when it is not a profile, or profiles another board or
    pack than the run."""
    from kpdev.host.evaluation.evaluate import PROFILE_KIND

    if not isinstance(profile, dict):
        raise UsageError(f"{where} is not a kpdev profile (kpdev profile --out)")
    kind = profile.get("kind")
    if kind == KIND:
        raise UsageError(
            f"{where} is a measurements file, not a profile: give it as a report file, and to "
            "--profile a file from kpdev profile --out"
        )
    if kind not in (PROFILE_KIND, None) or not isinstance(profile.get("stages"), list):
        raise UsageError(f"{where} is not a kpdev profile (kpdev profile --out)")
    board = doc.get("board") if isinstance(doc.get("board"), dict) else {}
    pack = doc.get("pack") if isinstance(doc.get("pack"), dict) else {}
    if profile.get("board") != board.get("name"):
        raise UsageError(
            f"{where} profiles board {profile.get('board')}, but the run is on "
            f"{board.get('name')}: profile the run's board (kpdev profile --board ...)"
        )
    if profile.get("pack") != pack.get("name"):
        run = f"pack {pack.get('name')}" if pack else "a bare model"
        raise UsageError(
            f"{where} profiles pack {profile.get('pack')}, but the run evaluated {run}: "
            "profile the pack the run evaluated"
        )
    return dict(doc, results=dict(doc.get("results") or {}, profile=profile))


def _is_session(doc: Any) -> bool:
    # session.json of kpdev learn run; logs written before it carried a kind have none.
    from kpdev.host.learning.session import SESSION_KIND

    if not isinstance(doc, dict):
        return False
    kind = doc.get("kind")
    return kind == SESSION_KIND or (
        kind is None and "session" in doc and isinstance(doc.get("rows"), list)
    )


def _kind_of(doc: Any) -> str | None:
    """'run', 'recognition' or 'session': what a report input is; None for anything else."""
    from kpdev.host.evaluation.recognize import RECOGNITION_KIND

    if not isinstance(doc, dict):
        return None
    if doc.get("kind") == KIND:
        return "run"
    if doc.get("kind") == FLEET_KIND and isinstance(doc.get("members"), list):
        return "fleet"
    if doc.get("kind") == RECOGNITION_KIND and isinstance(doc.get("windows"), list):
        return "recognition"
    return "session" if _is_session(doc) else None


TAKES = (
    "a measurements file (kpdev eval --out; on a fleet, its kpdev-fleet-*.json), a recognition "
    "(kpdev recognize --out) or a learning session's session.json (kpdev learn run --out)"
)


def read_report_input(path: Path) -> dict:
    """Load one input of ``kpdev report``: a measurements file (checked as
    ``read_measurements`` checks it), a recognition or a learning session; UsageError naming
    what the report takes for anything else."""
    from kpdev.host.evaluation.metrics import read_measurements

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"{path} is not something kpdev report takes ({e}); give it {TAKES}")
    kind = _kind_of(doc)
    if kind == "run":
        return read_measurements(path)
    if kind is None:
        what = f"kind {doc.get('kind')!r}" if isinstance(doc, dict) else "not a JSON object"
        raise UsageError(f"{path} is not something kpdev report takes ({what}); give it {TAKES}")
    return doc


def _default_title(doc: dict, i: int) -> str:
    kind = _kind_of(doc)
    if kind == "recognition":
        return f"{doc.get('board') or doc.get('platform')} / {doc.get('pack')}"
    if kind == "fleet":
        what = (doc.get("pack") or doc.get("model") or {}).get("name")
        return str(doc.get("label") or f"{what} on {len(doc['members'])} boards ({doc['mode']})")
    if kind == "session":
        pack = doc.get("pack") if isinstance(doc.get("pack"), dict) else {}
        return f"{doc.get('board')} / {pack.get('name')} / {doc.get('session')}"
    return str(doc.get("label") or _default_name(doc, i))


def write_report(docs: list[dict], out_dir: Path, names: list[str] | None = None) -> dict:
    """Write report.md, report.html and PNG figures for measurements documents, recognitions
    and learning sessions.

    Each run gets its facts (dataset, host and its load), classification (per-class table,
    confusion heat map), latency (summary, throughput, histogram, latency in the order of the
    run), energy with its method, memory and storage against the board's limits, the models on
    the device (Akida's layers and mapping) and its profile, each only when the run measured
    it.  Several runs also get a comparison of every figure any of them measured, and a
    bar chart.  A recognition gets its windows, a session its rounds and learning curve.
    ``names`` label the inputs (default: the run's ``label``, else board and pack).  Returns
    ``{"markdown": Path, "html": Path, "figures": [Path, ...]}``.
    """
    docs = list(docs)
    if not docs:
        raise UsageError("nothing to report: give at least one measurements file")
    for i, doc in enumerate(docs):
        if _kind_of(doc) is None:
            raise UsageError(
                f"report input {i + 1} is not a kpdev measurements document, recognition or "
                "learning session"
            )
    if names is None:
        names = [_default_title(doc, i) for i, doc in enumerate(docs)]
    elif len(names) != len(docs):
        raise UsageError(f"{len(names)} names for {len(docs)} runs; give one name a run")
    names = [str(n) if n is not None else _default_title(d, i) for i, (n, d) in
             enumerate(zip(names, docs, strict=True))]  # fmt: skip
    names = _unique(names, " #")
    slugs = _unique([_slug(n) for n in names], "-")
    require_matplotlib()  # fail before writing anything when matplotlib is missing

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Path] = []
    title = "kpdev report" if len(docs) == 1 else f"kpdev report: {len(docs)} inputs"
    blocks: list = [Heading(1, title)]
    blocks += comparison_blocks(names, docs, out_dir, figures)
    sections = {
        "run": run_blocks,
        "recognition": recognition_blocks,
        "session": session_blocks,
        "fleet": fleet_blocks,
    }
    for name, slug, doc in zip(names, slugs, docs, strict=True):
        blocks += sections[_kind_of(doc)](name, slug, doc, out_dir, figures)

    markdown = out_dir / "report.md"
    markdown.write_text(to_markdown(blocks, out_dir), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(to_html(blocks, title), encoding="utf-8")
    return {"markdown": markdown, "html": page, "figures": figures}
