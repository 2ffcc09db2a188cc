"""The kpdev command line as a user runs it: in-process through Typer's CliRunner, as a
subprocess, and ``kpdev sim`` serving a board in the background."""

import json
import subprocess
import sys
import time

from typer.testing import CliRunner

from kpdev.host.cli.app import app

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def cli(*args, ok=True):
    """Run ``kpdev ARGS`` in-process; returns the result (which must succeed unless not ``ok``)."""
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def cli_json(*args):
    """Run ``kpdev ARGS --json``: stdout is one JSON document and nothing else."""
    return json.loads(cli(*args, "--json").stdout)


def kpdev(*args, env=None, timeout=120, **kw):
    """``kpdev ARGS`` as a user runs it: a process of its own (this Python, ``-m``)."""
    return subprocess.run(
        [sys.executable, "-m", "kpdev.host.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kw,
    )


def one_line_error(r, code):
    """The single stderr line of a failed command (nothing on stdout, no traceback)."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kpdev: "), r.stderr
    assert r.stdout == ""
    return lines[0]


def serve_sim(*args):
    """Start ``kpdev sim ARGS --json`` and return (process, port from its JSON document)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kpdev.host.cli", "sim", *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("}"):
            return proc, json.loads("".join(lines))["port"]
    proc.kill()
    raise AssertionError("kpdev sim printed no port: " + "".join(lines) + proc.stderr.read())
