"""``kpdev demo``, the README's first command: the whole job on the default simulated board."""

import json
from pathlib import Path

from support.cli import PNG, kpdev


def test_demo_runs_the_whole_job_and_leaves_a_report(tmp_path):
    # The README's first command, as a user runs it: a fresh directory, the default board.
    r = kpdev("demo", "--out", tmp_path / "demo", "--json", timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(r.stdout)
    assert data["board"] == "sim-mcu" and data["vectors_match"]
    # The device (MicroPython, kpdev's int8 kernels) gives the host reference's answers.
    assert data["accuracy"] == data["host_accuracy"] >= 0.9
    assert data["latency_us"]["p50"] > 0
    assert data["recognized"]["n"] == 8 and data["recognized"]["accuracy"] >= 0.75
    html = Path(data["report"]["html"])
    assert html.exists() and "data:image/png;base64," in html.read_text()
    figures = [Path(f) for f in data["report"]["figures"]]
    assert len(figures) >= 3 and all(f.read_bytes()[:8] == PNG for f in figures)
    assert (tmp_path / "demo" / "basicmotions.kp").exists()
