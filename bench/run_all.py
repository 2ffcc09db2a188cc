"""Run every benchmark in bench/ and print their verdict lines together.

Each script runs in its own process (each sets its own temporary KPDEV_HOME).  The exit status is
1 when a script failed to run (a crash or a timeout), not when a target was missed: MISS lines
are measurements, and the summary shows them.

Run: python bench/run_all.py            (all)
     python bench/run_all.py wire upload (some)
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = ("wire", "roundtrip", "upload", "mp_link", "backends", "learn", "cli_speed")
TIMEOUT = 300  # seconds per script; mp_link and cli_speed take minutes on a loaded machine


def main():
    names = sys.argv[1:] or list(SCRIPTS)
    verdicts = []
    failed = []
    for name in names:
        path = os.path.join(HERE, name + ".py")
        print("=" * 20, "bench/%s.py" % name, "=" * 20, flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, path],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=TIMEOUT,
            )
            out, code = proc.stdout, proc.returncode
        except subprocess.TimeoutExpired as e:
            out = (
                e.stdout.decode(errors="replace")
                if isinstance(e.stdout, bytes)
                else (e.stdout or "")
            )
            code = "timeout after %d s" % TIMEOUT
        print(out, end="" if out.endswith("\n") else "\n")
        seconds = time.perf_counter() - t0
        print("(%s.py took %.1f s)" % (name, seconds), flush=True)
        if code != 0:
            failed.append("%s.py: %s" % (name, code))
        for line in out.splitlines():
            if line.startswith(("RATIO ", "RESULT ", "TIME ")):
                verdicts.append(line.split("  # ")[0])
    print("=" * 20, "summary", "=" * 20)
    for line in verdicts:
        print(line)
    for f in failed:
        print("FAILED " + f)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
