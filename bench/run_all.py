"""Run the benchmarks in SCRIPTS once each and keep the run's record.

Each script runs in its own process group (each sets its own temporary KPDEV_HOME), with:
- ``KPDEV_BENCH_RESULTS`` pointing at a file where ``_common.judge``/``verdict`` append one JSON
  line per verdict;
- ``TMPDIR`` pointing at a folder of its own, checked after the script ends: anything named
  ``kpdev-*`` left in it (a temporary folder the script did not remove) is a failure, anything
  else left is reported;
- a time limit: a script that overruns gets SIGTERM (its process group: agents too), then
  SIGKILL 10 s later.
The machine (CPU model, cores, Python, MicroPython) and its load before and after each script
are recorded with each script's output and verdicts in one JSON file, by default
bench/results/latest.json when every script of SCRIPTS ran (the committed record), else
bench/results/partial.json.  bench/write_docs.py writes the tables of docs/benchmarks.md from
that record.

The exit status is 1 when a script failed (a crash, a timeout, a temporary folder left behind),
not when a target was missed: MISS and NOISY lines are measurements, and the summary shows them.

Run: python bench/run_all.py                  (all of SCRIPTS, then the summary)
     python bench/run_all.py wire backends    (some; written to bench/results/partial.json)
     python bench/run_all.py --write-docs     (no benchmarks: rewrite docs/benchmarks.md's tables
                                               from bench/results/latest.json)
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
LATEST = os.path.join(RESULTS, "latest.json")
PARTIAL = os.path.join(RESULTS, "partial.json")
SCRIPTS = ("wire", "roundtrip", "upload", "mp_link", "pipeline", "backends", "learn", "cli_speed")
TIMEOUT = 300  # seconds per script, unless TIMEOUTS says otherwise
TIMEOUTS = {"cli_speed": 600, "mp_link": 600, "pipeline": 600}  # minutes on a loaded machine
KILL_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
LEFTOVER_PREFIXES = ("kpdev-",)  # kpdev-bench-*, kpdev-mcu-speed-*, ...
VERDICT_PREFIXES = ("RATIO ", "RESULT ", "TIME ")


def load():
    """Load averages (1, 5, 15 min) from /proc/loadavg, or None off Linux."""
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def micropython_version():
    """The version line of the MicroPython unix port the sim-mcu boards run, or why not."""
    try:
        from kpdev.host.agent.micropython import micropython_binary

        binary = micropython_binary()
        out = subprocess.run(
            [binary, "-c", "import sys; print(sys.version, sys.implementation.version)"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip() or out.stderr.strip()[-200:]
    except Exception as e:  # noqa: BLE001  (recorded, not fatal)
        return "unavailable: %s" % e


def git(*args):
    try:
        return subprocess.run(
            ["git", "-C", REPO, *args], capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(cpus) if cpus else os.cpu_count(),
        "arch": platform.machine(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "micropython": micropython_version(),
    }


class Child:
    """A script in its own process group, its output echoed and kept."""

    def __init__(self, argv, env):
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
            start_new_session=True,
        )
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            sys.stdout.write(line)
            sys.stdout.flush()

    def signal(self, signum):
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def run(self, timeout):
        """Wait up to ``timeout`` s; then SIGTERM, and SIGKILL after KILL_GRACE.  Returns the
        exit code, or a text saying how it was stopped."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(KILL_GRACE)
                code = "timeout after %g s (ended by SIGTERM)" % timeout
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()
                code = "timeout after %g s (SIGTERM ignored for %g s, SIGKILL)" % (
                    timeout,
                    KILL_GRACE,
                )
        # The group's other processes (an agent a crashed script left) end with it.
        self.signal(signal.SIGTERM)
        self.reader.join(5)
        return code


def leftovers(tmp):
    """(failures, others): entries left in a script's private TMPDIR."""
    names = sorted(os.listdir(tmp))
    bad = [n for n in names if n.startswith(LEFTOVER_PREFIXES)]
    return bad, [n for n in names if n not in bad]


def run_script(name, work, current, timeout=None):
    """Run bench/NAME.py once (``timeout`` s at most, else its own limit); returns its entry."""
    path = os.path.join(HERE, name + ".py")
    tmp = os.path.join(work, name, "tmp")
    os.makedirs(tmp)
    results = os.path.join(work, name, "verdicts.jsonl")
    env = dict(os.environ, TMPDIR=tmp, KPDEV_BENCH_RESULTS=results, PYTHONUNBUFFERED="1")
    timeout = timeout or TIMEOUTS.get(name, TIMEOUT)
    print("=" * 20, "bench/%s.py" % name, "=" * 20, flush=True)
    entry = {"script": name, "load_before": load()}
    t0 = time.perf_counter()
    child = Child([sys.executable, path], env)
    current.append(child)
    code = child.run(timeout)
    current.remove(child)
    entry["seconds"] = round(time.perf_counter() - t0, 1)
    entry["load_after"] = load()
    entry["exit"] = code
    bad, other = leftovers(tmp)
    entry["leftovers"] = bad
    entry["other_leftovers"] = other
    verdicts = []
    if os.path.exists(results):
        with open(results) as f:
            verdicts = [json.loads(line) for line in f if line.strip()]
    entry["verdicts"] = verdicts
    out = "".join(child.lines)
    entry["output"] = out
    # Verdict lines a script printed without a record (its own format, not _common's).
    entry["unrecorded"] = (
        [line.split("  # ")[0] for line in out.splitlines() if line.startswith(VERDICT_PREFIXES)]
        if not verdicts
        else []
    )
    failures = []
    if code != 0:
        failures.append("exit %s" % code)
    if bad:
        failures.append("left in its temp dir: %s" % ", ".join(bad))
    entry["failures"] = failures
    print(
        "(%s.py took %.1f s; load %s before, %s after%s)"
        % (
            name,
            entry["seconds"],
            fmt_load(entry["load_before"]),
            fmt_load(entry["load_after"]),
            "; other files left in its temp dir: %s" % ", ".join(other) if other else "",
        ),
        flush=True,
    )
    return entry


def fmt_load(la):
    return "/".join("%.2f" % x for x in la) if la else "unknown"


def run(names, out_path, timeout=None):
    current = []

    def on_signal(signum, frame):
        for child in list(current):
            child.signal(signal.SIGTERM)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    record = {
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "argv": sys.argv[1:],
        "machine": machine(),
        "load_before": load(),
        "scripts": [],
    }
    m = record["machine"]
    print(
        "machine: %s, %s cores, Python %s, MicroPython %s; commit %s%s"
        % (
            m["cpu_model"],
            m["cores"],
            m["python"],
            m["micropython"],
            record["commit"],
            " (with uncommitted changes)" if record["dirty"] else "",
        )
    )
    t0 = time.perf_counter()
    work = tempfile.mkdtemp(prefix="kpdev-runall-")
    try:
        for name in names:
            record["scripts"].append(run_script(name, work, current, timeout))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    record["load_after"] = load()
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    print("=" * 20, "summary", "=" * 20)
    failed = False
    for entry in record["scripts"]:
        for v in entry["verdicts"]:
            if v.get("method") == "rounds":
                how = "IQR %.4g..%.4g, %d rounds" % (v["q1"], v["q3"], v["rounds"])
            else:
                how = v.get("method", "one value")
            print(
                "%s %s %.4g%s [%s] %s"
                % (v["kind"], v["name"], v["median"], v["unit"], how, v["verdict"])
            )
        for line in entry["unrecorded"]:
            print(line + "  (printed, not recorded)")
        for f in entry["failures"]:
            failed = True
            print("FAILED %s.py: %s" % (entry["script"], f))
    print(
        "%d scripts in %.1f s; record written to %s"
        % (len(names), record["seconds"], os.path.relpath(out_path))
    )
    return 1 if failed else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scripts", nargs="*", help="names from SCRIPTS (default: all)")
    parser.add_argument("--out", help="the record to write")
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds per script instead of its own limit (a short one checks that scripts "
        "start and leave nothing behind when ended by SIGTERM)",
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="run nothing: rewrite docs/benchmarks.md's tables from the record",
    )
    args = parser.parse_args(argv)
    if args.write_docs:
        import write_docs

        return write_docs.main(["--record", args.out or LATEST])
    names = args.scripts or list(SCRIPTS)
    unknown = [n for n in names if not os.path.exists(os.path.join(HERE, n + ".py"))]
    if unknown:
        parser.error("no such script in bench/: %s" % ", ".join(unknown))
    full = sorted(names) == sorted(SCRIPTS) and not args.timeout
    return run(names, args.out or (LATEST if full else PARTIAL), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
