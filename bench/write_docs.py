"""Write the tables of docs/benchmarks.md from a bench/run_all.py record.

The document marks what is generated with comment pairs:
- ``<!-- bench:summary -->`` ... ``<!-- /bench:summary -->``: every verdict of the run, the
  machine, and each script's time, load and exit;
- ``<!-- bench:NAME -->`` ... ``<!-- /bench:NAME -->``: the verdicts of bench/NAME.py and what
  it printed.
Everything between a pair is replaced; everything outside is left as it is.  No figure in those
tables is typed by hand: edit the record by running the benchmarks again, then run this.

Run: python bench/write_docs.py            (rewrite docs/benchmarks.md from
                                            bench/results/latest.json)
     python bench/write_docs.py --check    (exit 1 if the document's tables differ)
     python bench/run_all.py --write-docs  (the same as the first)
"""

import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DOCS = os.path.join(REPO, "docs", "benchmarks.md")
LATEST = os.path.join(HERE, "results", "latest.json")
MARKER = re.compile(r"<!-- (/?)bench:([A-Za-z0-9_]+) -->")


class DocsError(Exception):
    """The document's markers are broken (unbalanced, nested)."""


def num(x):
    """A figure with as many digits as it deserves."""
    if x is None:
        return "n/a"
    x = float(x)
    if x == int(x) and abs(x) >= 10:
        return "%d" % x
    a = abs(x)
    if a >= 100:
        return "%.0f" % x
    if a >= 10:
        return "%.1f" % x
    if a >= 0.1 or a == 0:
        return "%.2f" % x
    return "%.3g" % x


def with_unit(x, unit):
    return num(x) + unit


def spread(v):
    method = v.get("method", "rounds")
    if method == "exact":
        return "exact (deterministic)"
    if method == "one value" or v["rounds"] == 1:
        return "one value, no spread"
    return "IQR %s..%s, range %s..%s, %d rounds" % (
        num(v["q1"]),
        num(v["q3"]),
        num(v["min"]),
        num(v["max"]),
        v["rounds"],
    )


def target(v):
    return "%s %g%s" % ("<=" if v["at_most"] else ">=", v["target"], v["unit"])


def verdict_word(v):
    word = v["verdict"]
    return "**%s**" % word if word in ("MISS", "NOISY") else word


def fmt_load(la):
    return " ".join("%.2f" % x for x in la) if la else "unknown"


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def verdict_rows(entry, with_script):
    rows = []
    for v in entry["verdicts"]:
        row = ["`%s`" % v["name"], with_unit(v["median"], v["unit"]), spread(v), target(v)]
        row.append(verdict_word(v) + (" (%s)" % v["note"] if v.get("note") else ""))
        rows.append((["`%s`" % entry["script"]] if with_script else []) + row)
    for line in entry.get("unrecorded", []):
        rows.append(
            (["`%s`" % entry["script"]] if with_script else [])
            + ["`%s`" % line, "", "printed by the script, not recorded", "", ""]
        )
    return rows


def run_line(record):
    m = record["machine"]
    return (
        "From `bench/results/latest.json`: one `python bench/run_all.py` (%d scripts, %.0f s "
        "in all) at commit `%s`%s, started %s, on %s (%s cores), Python %s, MicroPython %s. "
        "Load averages (1, 5, 15 min) %s before the run and %s after it."
        % (
            len(record["scripts"]),
            record["seconds"],
            record["commit"],
            " with uncommitted changes" if record.get("dirty") else "",
            record["started"],
            m["cpu_model"],
            m["cores"],
            m["python"],
            m["micropython"],
            fmt_load(record["load_before"]),
            fmt_load(record["load_after"]),
        )
    )


def render_summary(record):
    rows = []
    for entry in record["scripts"]:
        rows += verdict_rows(entry, with_script=True)
    runs = []
    for entry in record["scripts"]:
        left = entry.get("leftovers") or []
        runs.append(
            [
                "`bench/%s.py`" % entry["script"],
                "%.1f s" % entry["seconds"],
                fmt_load(entry["load_before"]),
                fmt_load(entry["load_after"]),
                "ok" if entry["exit"] == 0 else "**%s**" % entry["exit"],
                "none" if not left else "**%s**" % ", ".join(left),
            ]
        )
    return "\n\n".join(
        [
            run_line(record),
            table(["script", "name", "median", "spread", "target", "verdict"], rows),
            table(
                ["script", "took", "load before", "load after", "exit", "temp folders left"],
                runs,
            ),
        ]
    )


def render_script(record, name):
    entry = next((e for e in record["scripts"] if e["script"] == name), None)
    if entry is None:
        return "(`bench/%s.py` was not in the run of `bench/results/latest.json`.)" % name
    head = (
        "From the run of `bench/results/latest.json` (%s, commit `%s`): `bench/%s.py` took "
        "%.1f s, load %s before and %s after (%s cores)."
        % (
            record["started"],
            record["commit"],
            name,
            entry["seconds"],
            fmt_load(entry["load_before"]),
            fmt_load(entry["load_after"]),
            record["machine"]["cores"],
        )
    )
    parts = [head]
    rows = verdict_rows(entry, with_script=False)
    if rows:
        parts.append(table(["name", "median", "spread", "target", "verdict"], rows))
    out = "\n".join(line.rstrip() for line in entry["output"].rstrip().splitlines())
    parts.append("What it printed:\n\n```\n%s\n```" % out.replace("```", "'''"))
    return "\n\n".join(parts)


def render(record, key):
    return render_summary(record) if key == "summary" else render_script(record, key)


def update(text, record):
    """``text`` with every marked block rewritten from ``record``."""
    out = []
    at = 0
    open_key = None
    for m in MARKER.finditer(text):
        closing, key = m.group(1) == "/", m.group(2)
        if not closing:
            if open_key is not None:
                raise DocsError("bench:%s opens inside bench:%s" % (key, open_key))
            open_key = key
            out.append(text[at : m.end()])
            at = m.end()
        else:
            if open_key != key:
                raise DocsError("/bench:%s closes %s" % (key, open_key or "nothing"))
            out.append("\n" + render(record, key) + "\n")
            open_key = None
            at = m.start()
    if open_key is not None:
        raise DocsError("bench:%s is never closed" % open_key)
    out.append(text[at:])
    return "".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--record", default=LATEST)
    parser.add_argument("--docs", default=DOCS)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if different")
    args = parser.parse_args(argv)
    with open(args.record) as f:
        record = json.load(f)
    with open(args.docs) as f:
        text = f.read()
    new = update(text, record)
    if args.check:
        if new != text:
            print("%s: tables differ from %s" % (args.docs, args.record), file=sys.stderr)
            return 1
        return 0
    if new != text:
        with open(args.docs, "w") as f:
            f.write(new)
        print("rewrote the tables of %s from %s" % (args.docs, args.record))
    else:
        print("%s already matches %s" % (args.docs, args.record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
