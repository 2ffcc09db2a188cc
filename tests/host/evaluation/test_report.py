"""``write_report``: Markdown, HTML and PNG figures from measurements documents."""

import base64
import re
import sys

import pytest
from support.measurements import run_doc

from kpdev.host.errors import UsageError
from kpdev.host.evaluation.metrics import latency, measurements

pytest.importorskip("matplotlib")

from kpdev.host.evaluation.report import attach_profile, write_report  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), path
    assert 2_000 < len(data) < 40_000, (path, len(data))


def embedded_images(page):
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_one_run(tmp_path):
    doc = run_doc(0, {"id": "sim-mcu", "name": "Simulated microcontroller"})
    out = write_report([doc], tmp_path / "rep")
    assert out["markdown"] == tmp_path / "rep" / "report.md"
    assert out["html"] == tmp_path / "rep" / "report.html"
    names = sorted(p.name for p in out["figures"])
    assert len(names) == 4
    assert [n.rsplit("-", 1)[1] for n in names] == [
        "confusion.png",
        "latency.png",
        "profile.png",
        "timeline.png",
    ]
    for path in out["figures"]:
        assert path.parent == tmp_path / "rep"
        check_png(path)

    md = out["markdown"].read_text()
    for path in out["figures"]:
        assert f"]({path.name})" in md
    cls = doc["results"]["classification"]
    assert f"accuracy {cls['accuracy']:.4f}" in md
    assert f"macro F1 {cls['macro_f1']:.4f}" in md
    assert f"{doc['results']['latency_us']['p50']:.1f}" in md
    assert "feature:mean" in md and "| per inference | 52.50 | estimated |" in md
    assert "Comparison" not in md  # one run: nothing to compare

    page = out["html"].read_text()
    assert page.startswith("<!DOCTYPE html>")
    images = embedded_images(page)
    assert images == [p.read_bytes() for p in out["figures"]]
    assert f"{cls['accuracy']:.4f}" in page


def test_two_runs_compared_and_escaped(tmp_path):
    docs = [
        run_doc(1, {"id": "sim-mcu", "name": "Simulated microcontroller"}),
        run_doc(2, {"name": "<x&y>"}, accuracy_noise=0.6, profile=False, energy=False),
    ]
    out = write_report(docs, tmp_path, names=["mcu", "<x&y> | board"])
    figures = {p.name for p in out["figures"]}
    assert "comparison.png" in figures
    # comparison, run one with profile, run two without (each: confusion, histogram, timeline)
    assert len(figures) == 1 + 4 + 3
    for path in out["figures"]:
        check_png(path)

    md = out["markdown"].read_text()
    page = out["html"].read_text()
    for doc in docs:
        acc = f"{doc['results']['classification']['accuracy']:.4f}"
        assert md.count(acc) >= 2  # the comparison table and the run's own section
        assert acc in page
    comparison = md[md.index("## Comparison") : md.index("## Run:")]
    assert "](comparison.png)" in comparison
    assert "320" in comparison and "52.50 µJ (estimated)" in comparison
    for path in out["figures"]:
        assert f"]({path.name})" in md

    # The board name and the run name are text, never markup, in either file.
    assert "<x&y>" not in page
    assert "&lt;x&amp;y&gt;" in page
    assert "<x&y>" not in md
    assert r"\<x&y\> \| board" in md
    assert len(embedded_images(page)) == len(out["figures"])


def test_default_names_are_board_and_pack(tmp_path):
    board = {"id": "sim-mcu"}
    out = write_report([run_doc(3, board), run_doc(4, board)], tmp_path)
    md = out["markdown"].read_text()
    assert "## Run: sim-mcu / basicmotions 1.0.0 / main\n" in md
    assert "## Run: sim-mcu / basicmotions 1.0.0 / main #2\n" in md
    assert len({p.name for p in out["figures"]}) == len(out["figures"])  # no figure overwritten


def test_missing_sections_are_skipped(tmp_path):
    bare = measurements("run", board={"id": "sim-linux"}, versions={}, results={})
    only_summary = measurements(
        "bench",
        board={"id": "sim-mcu"},
        versions={},
        results={"latency_us": latency([5, 6, 7]), "classification": None, "profile": {}},
    )
    out = write_report([bare], tmp_path / "bare")
    assert out["figures"] == []
    md = out["markdown"].read_text()
    assert "## Run: sim-linux" in md and "Classification" not in md and "Latency" not in md

    out = write_report([bare, only_summary], tmp_path / "two")
    assert [p.name for p in out["figures"]] == ["comparison.png"]  # p50 of the second run only
    md = out["markdown"].read_text()
    assert "### Latency" in md and "Profile" not in md


def test_same_input_same_figures(tmp_path):
    doc = run_doc(5, {"id": "sim-mcu"})
    first = write_report([doc], tmp_path / "a")["figures"]
    second = write_report([doc], tmp_path / "b")["figures"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_refusals(tmp_path):
    doc = run_doc(6, {"id": "sim-mcu"})
    with pytest.raises(UsageError, match="at least one measurements file"):
        write_report([], tmp_path)
    with pytest.raises(UsageError, match="2 names for 1 runs"):
        write_report([doc], tmp_path, names=["a", "b"])
    with pytest.raises(UsageError, match="report input 2 is not a kpdev measurements document"):
        write_report([doc, {"kind": "kpdev-pack"}], tmp_path)


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    # A None entry in sys.modules makes the import fail, as if matplotlib were not installed.
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(UsageError, match=r"pip install 'kpdev\[report\]'"):
        write_report([run_doc(7, {"id": "sim-mcu"})], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _profile(board="sim-mcu", pack="basicmotions"):
    row = {"us": 10.0, "median": 9.0, "p10": 8.0, "p90": 12.0, "min": 7.0, "max": 30.0}
    return {
        "kind": "kpdev-profile",
        "schema": 1,
        "pack": pack,
        "version": "1.0.0",
        "board": board,
        "runs": 20,
        "warmup": 2,
        "stages": [
            dict(row, name="feature:std", share=40.0),
            dict(row, name="model:m", share=40.0),
        ],
        "other": dict(row, name="other", us=5.0, share=20.0),
        "total": dict(row, us=25.0),
        "total_us": 25.0,
        "spread": 0.6,
        "noisy": True,
    }


def test_profile_of_the_run_is_shown_with_medians_and_other(tmp_path):
    doc = run_doc(0, {"name": "sim-mcu"}, profile=False)
    out = write_report([attach_profile(doc, _profile(), "prof.json")], tmp_path / "rep")
    md = out["markdown"].read_text()
    assert "| feature:std | 9.0 | 8.0-12.0 | 10.0 | 40.0 % |" in md
    assert "| other | 9.0 | 8.0-12.0 | 5.0 | 20.0 % |" in md
    assert "spreads over 60 % of its median" in md


@pytest.mark.parametrize(
    "profile, message",
    [
        (_profile(board="sim-linux"), "profiles board sim-linux, but the run is on sim-mcu"),
        (_profile(pack="other"), "profiles pack other, but the run evaluated pack basicmotions"),
        (run_doc(1, {"name": "sim-mcu"}), "is a measurements file, not a profile"),
        ({"kind": "something"}, "is not a kpdev profile"),
        ([1, 2], "is not a kpdev profile"),
    ],
)
def test_a_profile_of_another_run_is_refused(profile, message):
    doc = run_doc(0, {"name": "sim-mcu"}, profile=False)
    with pytest.raises(UsageError) as caught:
        attach_profile(doc, profile, "prof.json")
    assert str(caught.value).startswith("prof.json ") and message in str(caught.value)
