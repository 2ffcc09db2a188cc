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


# -- the additions of "reports a team can act on" ---------------------------------------------


def _rich_doc(seed=0, board="sim-mcu", label=None):
    """run_doc with what kpdev eval now records: throughput, memory, footprint, host."""
    doc = run_doc(seed, {"name": board}, profile=False)
    r = doc["results"]
    samples = r["latency_samples_us"]
    r["throughput"] = {
        "n": len(samples),
        "device_per_s": len(samples) / (sum(samples) / 1e6),
        "device_s": sum(samples) / 1e6,
        "wall_per_s": len(samples) / 2.5,
        "wall_s": 2.5,
    }
    r["energy"] = {
        "uj_per_inference": 91.25,
        "estimated": True,
        "method": "estimated from the board's power model",
        "mw": 115,
        "count": 200,
        "span": "CLASSIFY (pipeline + model graph)",
        "stages_uj": {"pipeline": 80.0, "models": 11.25},
    }
    r["device_memory"] = {
        "runtime": "micropython",
        "heap_peak": 193_056 + 1000 * seed,
        "heap_live_peak": 164_928,
        "heap_total": 259_072,
        "heap_used": 150_000,
        "storage": {"quota": 1_048_576, "used": 2152, "free": 1_046_424},
    }
    r["footprint"] = {
        "cost": {
            "model_bytes": 2152,
            "ram_bytes": 8768,
            "models": {"main": {"bytes": 2152, "arena_bytes": 1472, "backend": "tflite_micro"}},
        },
        "model_bytes": 2152,
        "catalog": board,
        "ram_bytes": 256 * 1024,
        "storage_bytes": 1024 * 1024,
    }
    r["host"] = {
        "name": "benchhost",
        "os": "Linux-6.1-x86_64",
        "python": "3.11.7",
        "cpus": 2,
        "load_start": [0.5, 0.4, 0.3],
        "load_end": [3.25, 1.0, 0.5],
    }
    doc["dataset"] = {
        "name": "BasicMotions",
        "n": 40,
        "classes": ["Standing", "Running", "Walking", "Badminton"],
        "shape": [100, 6],
        "axes": None,
        "counts": {"Standing": 10, "Running": 10, "Walking": 10, "Badminton": 10},
        "split": "test",
    }
    doc["label"] = label
    return doc


def _row(md, first):
    """The cells of the Markdown table row whose first cell is ``first``."""
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r}")


def test_throughput_energy_memory_host_and_dataset_are_shown_as_what_they_are(tmp_path):
    doc = _rich_doc()
    md = write_report([doc], tmp_path)["markdown"].read_text()
    samples = doc["results"]["latency_samples_us"]
    # Throughput from the stored samples, computed here independently of the report.
    busy = sum(float(v) for v in samples) / 1e6
    assert _row(md, "over device time")[1] == f"{len(samples) / busy:.1f}"
    assert _row(md, "over wall time")[1] == f"{len(samples) / 2.5:.1f}"
    assert "link, batching and the host included" in _row(md, "over wall time")[2]
    # Energy with its method named beside it, and its split into stages.
    assert _row(md, "CLASSIFY (pipeline + model graph)") == [
        "CLASSIFY (pipeline + model graph)",
        "91.25",
        "estimated from the board's power model",
    ]
    assert _row(md, "of which pipeline")[1] == "80.00"
    # Memory against the limits, each share computed here.
    peak = _row(md, "peak heap")
    assert peak[1] == "188.5 KiB (193,056 B)" and peak[2] == "253.0 KiB heap (device STATS)"
    assert peak[3] == f"{100 * 193_056 / 259_072:.1f} %" and "upper bound" in peak[4]
    assert "lower bound" in _row(md, "peak live heap")[4]
    assert _row(md, "heap size")[3] == f"{100 * 259_072 / (256 * 1024):.1f} %"
    assert _row(md, "arena of main")[1] == "1.4 KiB (1,472 B)"
    assert "planned for model main on the host" in _row(md, "arena of main")[4]
    model = _row(md, "model bytes")
    assert model[2] == "1.0 MiB store quota (device INFO)"
    assert model[3] == f"{100 * 2152 / 1_048_576:.1f} %"
    # The host and its load; a load above the CPU count says the figures may be noisy.
    assert _row(md, "host")[1] == "benchhost, Linux-6.1-x86_64, Python 3.11.7, 2 CPUs"
    load = _row(md, "host load")[1]
    assert "0.50/0.40/0.30 at the start, 3.25/1.00/0.50 at the end" in load
    assert "more tasks waiting than the 2 CPUs" in load
    # The dataset as a sentence, not a dict.
    assert _row(md, "dataset")[1] == (
        "BasicMotions, test split: 40 windows of 100 samples x 6 axes, 4 classes "
        "(Standing 10, Running 10, Walking 10, Badminton 10)"
    )
    assert "{" not in _row(md, "dataset")[1]


def test_a_quiet_host_is_not_called_noisy(tmp_path):
    doc = _rich_doc()
    doc["results"]["host"]["load_end"] = [1.0, 1.0, 1.0]
    md = write_report([doc], tmp_path)["markdown"].read_text()
    assert "noisy" not in _row(md, "host load")[1]


def test_the_comparison_covers_every_figure_the_runs_have(tmp_path):
    docs = [_rich_doc(1, label="fast"), _rich_doc(2, "sim-mcu-64k", label="small")]
    docs[1]["results"]["energy"] = None
    md = write_report(docs, tmp_path)["markdown"].read_text()
    assert "## Run: fast\n" in md and "## Run: small\n" in md
    comparison = md[md.index("## Comparison") : md.index("## Run:")]
    assert _row(comparison, "figure") == ["figure", "fast", "small"]
    for i, doc in enumerate(docs, start=1):
        r = doc["results"]
        expected = {
            "accuracy": f"{r['classification']['accuracy']:.4f}",
            "macro F1": f"{r['classification']['macro_f1']:.4f}",
            "latency p50 (µs, device)": f"{r['latency_us']['p50']:.1f}",
            "latency p90 (µs, device)": f"{r['latency_us']['p90']:.1f}",
            "throughput (/s of device time)": f"{r['throughput']['device_per_s']:.1f}",
            "throughput (/s of wall time, link incl.)": f"{r['throughput']['wall_per_s']:.1f}",
            "peak heap (B, upper bound)": f"{r['device_memory']['heap_peak']:,}",
            "model bytes": "2,152",
            "largest arena (B, planned on the host)": "1,472",
            "pack RAM planned (B)": "8,768",
            "link bytes / inference": "320",
            "host load at the start (1 min)": "0.50",
        }
        for figure, value in expected.items():
            assert _row(comparison, figure)[i] == value, figure
    energy = _row(comparison, "energy / inference (µJ)")
    assert energy[1:] == ["91.25 µJ (estimated from the board's power model)", "-"]


def test_report_names_override_the_stored_labels(tmp_path):
    docs = [_rich_doc(1, label="fast"), _rich_doc(2, label="fast")]
    md = write_report(docs, tmp_path / "a")["markdown"].read_text()
    assert "## Run: fast\n" in md and "## Run: fast #2\n" in md
    md = write_report(docs, tmp_path / "b", names=["x", None])["markdown"].read_text()
    assert "## Run: x\n" in md and "## Run: fast\n" in md


def _session_log():
    rows = []
    for r, (acc, walk) in enumerate([(0.25, 0.0), (0.75, 0.5), (1.0, 1.0)]):
        rows.append(
            {
                "round": r,
                "shots_per_class": 4 * r,
                "samples": 16 * r,
                "learn_s": 0.1 * r,
                "learn_ms_per_sample": 6.25 if r else None,
                "prequential_accuracy": 0.5 if r else None,
                "accuracy": acc,
                "per_class": {"Walking": walk, "Running": acc},
                "macro_f1": acc,
                "latency_us": {"p50": 812.0},
            }
        )
    return {
        "session": "20261121T100000-abc123",
        "started": "2026-11-21T10:00:00Z",
        "finished": "2026-11-21T10:00:05Z",
        "pack": {"name": "learn", "version": "1.0.0", "path": "learn.kp"},
        "board": "sim-mcu",
        "runtime": "micropython",
        "learner": "prototypes",
        "dataset": {"name": "BasicMotions", "n": 80, "shape": [100, 6], "classes": ["a", "b"]},
        "seed": 3,
        "shots": 4,
        "rounds": 2,
        "taught": ["Walking", "Running"],
        "new_classes": ["Walking"],
        "scored": ["Walking", "Running"],
        "labels": ["Running", "Walking"],
        "curve": [[row["shots_per_class"], row["accuracy"]] for row in rows],
        "rows": rows,
        "device": {},
    }


def test_a_learning_session_and_a_recognition_are_report_inputs(tmp_path):
    import json

    from kpdev.host.evaluation.report import read_report_input

    log = _session_log()  # as written before session.json carried a kind
    (tmp_path / "session.json").write_text(json.dumps(log))
    rec = {
        "kind": "kpdev-recognition",
        "pack": "basicmotions",
        "platform": "host",
        "board": "host",
        "signal": "walk.npz",
        "windows": [
            {"window": i, "start": 100 * i, "class": c, "score": 0.9, "us": 40.0 + i, "label": t}
            for i, (c, t) in enumerate([("Walking", "Walking"), ("Running", "Walking")])
        ],
        "classification": None,
    }
    (tmp_path / "rec.json").write_text(json.dumps(rec))
    docs = [read_report_input(tmp_path / "session.json"), read_report_input(tmp_path / "rec.json")]
    out = write_report(docs, tmp_path / "rep", names=["teach", "walk"])
    md = out["markdown"].read_text()
    assert "## Learning session: teach" in md and "Comparison" not in md
    assert _row(md, "plan")[1] == "4 shots per class in each of 2 rounds, seed 3"
    assert _row(md, "2") == [
        "2", "8", "32", "0.200", "6.25", "0.500", "1.000", "1.000", "812", "1.000", "1.000"
    ]  # fmt: skip
    assert "## Recognition: walk" in md
    assert _row(md[md.index("## Recognition") :], "1")[2:] == [
        "Running",
        "0.900",
        "41",
        "Walking (wrong)",
    ]
    assert "not a device figure" in _row(md, "µs per window")[1]
    assert {p.name for p in out["figures"]} == {"teach-curve.png", "walk-timeline.png"}

    (tmp_path / "other.json").write_text(json.dumps({"kind": "kpdev-pack"}))
    with pytest.raises(UsageError, match="is not something kpdev report takes"):
        read_report_input(tmp_path / "other.json")


def test_akida_layers_and_mapping_are_tables(tmp_path):
    akida = pytest.importorskip("akida")
    from support.paths import DATA

    from kpdev import accelerators

    path = DATA / "akida_digits_cnn.fbz"
    details = accelerators.get("akida").load(str(path), {"virtual": "AKD1000"}).info()
    doc = run_doc(0, {"name": "sim-linux"}, profile=False)
    doc["results"]["models"] = {
        "cnn": {"backend": "akida", "format": "fbz", "size": 1234, "details": details}
    }
    md = write_report([doc], tmp_path)["markdown"].read_text()
    model = akida.Model(str(path))
    mapped = akida.Model(str(path))
    mapped.map(akida.AKD1000())
    nps = {la.name: len(la.mapping.nps) for la in mapped.layers if la.mapping is not None}
    assert "#### cnn: Akida layers" in md
    for layer in model.layers:
        row = _row(md, layer.name)
        assert row[1] == layer.parameters.layer_type.name
        assert row[2] == " x ".join(map(str, layer.input_dims))
        assert row[3] == " x ".join(map(str, layer.output_dims))
        assert row[4] == " x ".join(map(str, layer.get_variable("weights").shape))
        assert row[7].split(" ")[0] == str(nps.get(layer.name) or "-")
    assert "#### cnn: mapping onto AKD1000" in md
    assert _row(md, "fits in hardware")[1] == "yes"
    assert _row(md, "NPs used")[1] == f"{details['virtual']['nps_used']} of 78"
    (sequence,) = mapped.sequences
    assert _row(md, sequence.name)[1:] == ["Hardware", "1", f"{len(sequence.program):,}"]
