"""Every shell example in the README runs, in order, as a user following it would.

Each fenced ``sh`` block of README.md runs under bash (``set -e``: the first failing line fails
the test, named with its output) in one working folder that holds the repository's ``host/`` and
``tests/`` (the files the examples name), with a temporary ``$KPDEV_HOME`` for the simulated
boards.  What the runner changes, and why:

- ``pip install -e ".[all]" &&`` is dropped: the tests run in that installed environment, and
  the README's test command is this run itself, so its block is not run again.
- ``kpdev sim BOARD --listen ...`` serves until interrupted: it runs in the background, and the
  port it prints stands in for ``/dev/pts/N`` on the lines after it; TCP port 5555 becomes a free
  port.
- The real-board block talks to ``/dev/ttyACM0``: there, a MicroPython unix port on a pty
  (tests/support/boards.py's FakeBoard, an x64 MicroPython board with a REPL on its serial)
  stands in for the board, and ``rpi-pico`` becomes ``sim-mcu``, the catalog entry of that
  CPU (mpy-cross output for armv6m does not run on x64).
"""

import os
import re
import subprocess
import sys

import pytest
from support.agents import free_port
from support.boards import FakeBoard
from support.paths import ROOT

README = ROOT / "README.md"
_FENCE = re.compile(r"^```sh[^\n]*\n(.*?)^```", re.S | re.M)
_INSTALL = 'pip install -e ".[all]" && '
_SERVE = re.compile(r"^(kpdev sim \S+ --listen \S+)(.*)$")

_PRELUDE = r"""
set -eo pipefail
SERVERS=""
trap 'for p in $SERVERS; do kill $p 2>/dev/null || true; done' EXIT
serve() {
    : > .served  # emptied here: the background job's own redirection may come after the loop
    "$@" > .served 2> .served.err &
    SERVERS="$SERVERS $!"
    for _ in $(seq 600); do [ -s .served ] && break; sleep 0.1; done
    SERVED=$(head -n 1 .served)
    [ -n "$SERVED" ] || { cat .served.err >&2; return 1; }
}
set -x
"""


def blocks():
    """(index, text) of every ``sh`` block of the README."""
    return list(enumerate(m.group(1) for m in _FENCE.finditer(README.read_text())))


def _prepare(text, fake_port=None):
    """The block as the runner runs it, or None for the README's own test command."""
    if "python -m pytest" in text:
        return None
    lines = []
    tcp = str(free_port())
    for line in text.replace(_INSTALL, "").splitlines():
        line = line.replace("5555", tcp)
        m = _SERVE.match(line)
        if m:
            lines.append(f"serve {m.group(1)}")
            lines.append('SERVED_PTY="$SERVED"' if "pty" in m.group(1) else ":")
            continue
        line = line.replace("/dev/pts/N", '"$SERVED_PTY"')
        if "/dev/ttyACM0" in line:
            assert fake_port, "a hardware line outside the real-board block: " + line
            line = line.replace("/dev/ttyACM0", fake_port).replace("rpi-pico", "sim-mcu")
        lines.append(line)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The folder the examples run in, with the repository's files they name."""
    work = tmp_path_factory.mktemp("readme")
    for name in ("host", "tests", "docs", "boards.yml"):
        (work / name).symlink_to(ROOT / name)
    return work


def test_the_readme_has_its_examples():
    texts = [t for _, t in blocks()]
    assert len(texts) >= 8
    assert any("kpdev demo" in t for t in texts)
    assert any("python -m pytest" in t for t in texts)


@pytest.mark.parametrize("index", [i for i, _ in blocks()])
def test_readme_block(index, workdir, kpdev_home, request):
    text = dict(blocks())[index]
    fake = None
    if "/dev/ttyACM0" in text:
        micropython = request.getfixturevalue("micropython")
        root = workdir / "flash"
        root.mkdir(exist_ok=True)
        fake = FakeBoard(micropython, root)
    try:
        script = _prepare(text, fake.port if fake else None)
        if script is None:
            pytest.skip("the README's test command is this run")
        bindir = os.path.dirname(sys.executable)
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"], COLUMNS="120")
        proc = subprocess.run(
            ["bash", "-c", _PRELUDE + script],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        if fake:
            fake.close()
    assert proc.returncode == 0, (
        f"README block {index} failed:\n{text}\n--- stderr (tail) ---\n{proc.stderr[-3000:]}"
        f"\n--- stdout (tail) ---\n{proc.stdout[-1500:]}"
    )
