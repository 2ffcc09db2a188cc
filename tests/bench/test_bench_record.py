"""bench/write_docs.py and bench/run_all.py without running a benchmark: the tables written from
a record, the committed docs against the committed record (a hand edit fails here), and
run_all's time limit and temp-folder check on tiny scripts of its own."""

import importlib.util
import json
import os
import signal
import sys
import textwrap
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO, "bench")


def _load(name):
    path = os.path.join(BENCH, name + ".py")
    spec = importlib.util.spec_from_file_location("bench_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_docs = _load("write_docs")
run_all = _load("run_all")


def _verdict(name, median, q1, q3, word, rounds=9, method="rounds", unit="x", note=""):
    return {
        "kind": "RATIO",
        "name": name,
        "median": median,
        "q1": q1,
        "q3": q3,
        "min": q1 - 0.1,
        "max": q3 + 0.1,
        "rounds": rounds,
        "method": method,
        "unit": unit,
        "target": 0.9,
        "at_most": False,
        "verdict": word,
        "note": note,
        "script": "fake",
        "load": [1.0, 1.0, 1.0],
    }


FAKE = {
    "started": "2026-12-07 19:30 UTC",
    "commit": "abc1234",
    "dirty": False,
    "argv": [],
    "machine": {
        "cpu_model": "Test CPU",
        "cores": 2,
        "cores_usable": 2,
        "arch": "x86_64",
        "kernel": "6.0",
        "python": "3.11.7",
        "micropython": "3.4.0; MicroPython v1.29.0",
    },
    "load_before": [1.5, 1.25, 1.0],
    "load_after": [2.5, 1.5, 1.0],
    "seconds": 123.4,
    "scripts": [
        {
            "script": "alpha",
            "load_before": [1.5, 1.25, 1.0],
            "load_after": [1.75, 1.25, 1.0],
            "seconds": 12.3,
            "exit": 0,
            "leftovers": [],
            "other_leftovers": [],
            "failures": [],
            "verdicts": [
                _verdict("alpha-single", 0.87, 0.80, 0.95, "NOISY"),
                _verdict("alpha-batch", 0.5, 0.4, 0.6, "MISS", note="a note | with a bar"),
                _verdict("alpha-bytes", 33, 33, 33, "PASS", 1, "exact", " B"),
            ],
            "unrecorded": [],
            "output": "alpha: some table\n  row 1   \n",
        },
        {
            "script": "beta",
            "load_before": [1.75, 1.25, 1.0],
            "load_after": [2.5, 1.5, 1.0],
            "seconds": 99.0,
            "exit": "timeout after 300 s (ended by SIGTERM)",
            "leftovers": ["kpdev-bench-x1"],
            "other_leftovers": [],
            "failures": ["exit timeout", "left kpdev-bench-x1"],
            "verdicts": [],
            "unrecorded": ["TIME beta warm: 0.41 s (target <= 0.35 s) MISS"],
            "output": "beta\n",
        },
    ],
}

DOC = """# Benchmarks

Hand-written prose stays.

<!-- bench:summary -->
| stale | table |
<!-- /bench:summary -->

## alpha

Prose about alpha, 1.23x by hand is outside any table.

<!-- bench:alpha -->
<!-- /bench:alpha -->

<!-- bench:gamma -->
old
<!-- /bench:gamma -->
"""


def test_summary_has_every_verdict_with_its_spread_and_the_run():
    text = write_docs.render_summary(FAKE)
    assert "`alpha-single` | 0.87x | IQR 0.80..0.95, range 0.70..1.05, 9 rounds" in text
    assert "| >= 0.9x | **NOISY** |" in text
    assert "**MISS** (a note \\| with a bar)" in text  # a bar in a note does not split the row
    assert "| 33 B | exact (deterministic) |" in text
    assert "TIME beta warm: 0.41 s (target <= 0.35 s) MISS" in text
    assert "printed by the script, not recorded" in text
    # the machine, the run and each script's load, exit and leftovers
    assert "Test CPU (2 cores)" in text and "`abc1234`" in text
    assert "1.50 1.25 1.00 before the run and 2.50 1.50 1.00 after it" in text
    assert "| `bench/beta.py` | 99.0 s | 1.75 1.25 1.00 | 2.50 1.50 1.00 |" in text
    assert "**timeout after 300 s (ended by SIGTERM)** | **kpdev-bench-x1** |" in text


def test_update_rewrites_only_between_markers_and_is_stable():
    new = write_docs.update(DOC, FAKE)
    assert "| stale | table |" not in new
    assert "Hand-written prose stays." in new
    assert "Prose about alpha, 1.23x by hand is outside any table." in new
    alpha = new.split("<!-- bench:alpha -->")[1].split("<!-- /bench:alpha -->")[0]
    assert "`alpha-batch` | 0.50x" in alpha
    assert "```\nalpha: some table\n  row 1\n```" in alpha  # trailing blanks stripped
    assert "alpha.py` took 12.3 s, load 1.50 1.25 1.00 before" in alpha
    assert "`bench/gamma.py` was not in the run" in new
    assert write_docs.update(new, FAKE) == new


@pytest.mark.parametrize(
    "doc",
    [
        "<!-- bench:summary -->\n",
        "<!-- /bench:summary -->\n",
        "<!-- bench:a -->\n<!-- bench:b -->\n<!-- /bench:b -->\n<!-- /bench:a -->\n",
        "<!-- bench:a -->\n<!-- /bench:b -->\n",
    ],
)
def test_broken_markers_are_refused(doc):
    with pytest.raises(write_docs.DocsError):
        write_docs.update(doc, FAKE)


def test_check_mode_exits_1_on_a_hand_edit(tmp_path, capsys):
    record = tmp_path / "r.json"
    record.write_text(json.dumps(FAKE))
    docs = tmp_path / "b.md"
    docs.write_text(write_docs.update(DOC, FAKE))
    assert write_docs.main(["--record", str(record), "--docs", str(docs), "--check"]) == 0
    docs.write_text(docs.read_text().replace("0.87x", "0.97x"))
    assert write_docs.main(["--record", str(record), "--docs", str(docs), "--check"]) == 1
    assert "tables differ" in capsys.readouterr().err


def test_committed_docs_tables_match_the_committed_record():
    with open(write_docs.LATEST) as f:
        record = json.load(f)
    with open(write_docs.DOCS) as f:
        text = f.read()
    assert "<!-- bench:summary -->" in text
    assert write_docs.update(text, record) == text, (
        "docs/benchmarks.md's generated tables differ from bench/results/latest.json: "
        "run `python bench/write_docs.py` (never edit the tables by hand)"
    )


def test_committed_record_is_one_full_run_of_scripts():
    with open(write_docs.LATEST) as f:
        record = json.load(f)
    ran = [e["script"] for e in record["scripts"]]
    assert sorted(ran) == sorted(run_all.SCRIPTS), (
        "bench/results/latest.json is not one run of every script in run_all.SCRIPTS: "
        "run `python bench/run_all.py`, then `python bench/write_docs.py`"
    )
    for entry in record["scripts"]:
        assert entry["load_before"] is not None and entry["load_after"] is not None


# -- run_all's process handling, on tiny scripts ------------------------------------------------
def test_a_script_ignoring_sigterm_is_killed(monkeypatch):
    monkeypatch.setattr(run_all, "KILL_GRACE", 0.5)
    code = textwrap.dedent(
        """
        import signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("started", flush=True)
        time.sleep(60)
        """
    )
    t0 = time.monotonic()
    child = run_all.Child([sys.executable, "-c", code], dict(os.environ))
    result = child.run(1.0)
    assert time.monotonic() - t0 < 10
    assert "SIGKILL" in result
    assert child.proc.returncode == -signal.SIGKILL
    assert child.lines == ["started\n"]


def test_a_script_ended_by_sigterm_and_its_leftovers(tmp_path, monkeypatch):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "leaky.py").write_text(
        textwrap.dedent(
            """
            import os, tempfile, time
            tempfile.mkdtemp(prefix="kpdev-bench-")
            open(os.path.join(tempfile.gettempdir(), "other.txt"), "w").close()
            print("RESULT leaky 1 B (target <= 2 B) PASS", flush=True)
            time.sleep(60)
            """
        )
    )
    monkeypatch.setattr(run_all, "HERE", str(bench))
    monkeypatch.setitem(run_all.TIMEOUTS, "leaky", 2)
    work = tmp_path / "work"
    work.mkdir()
    entry = run_all.run_script("leaky", str(work), [])
    assert entry["exit"].startswith("timeout after 2 s")
    assert [n[: len("kpdev-bench-")] for n in entry["leftovers"]] == ["kpdev-bench-"]
    assert entry["other_leftovers"] == ["other.txt"]
    assert entry["unrecorded"] == ["RESULT leaky 1 B (target <= 2 B) PASS"]
    assert len(entry["failures"]) == 2
    assert entry["load_before"] is None or len(entry["load_before"]) == 3
