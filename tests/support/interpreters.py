"""Driver programs (tests/support/drivers/*.py) under each interpreter the device code must run
on: CPython in this process, and the real ``micropython`` binary with the device code staged as
a board's /lib.  A driver reads one request a line on stdin and prints one answer line each; its
``handle(line)`` makes the answer, so under CPython the same function is called directly."""

import importlib.util
import os
import shutil
import subprocess

from .paths import DRIVERS


def driver_path(filename):
    """The path of a driver program in tests/support/drivers."""
    path = DRIVERS / filename
    assert path.is_file(), path
    return path


def load_driver(filename):
    """A fresh module of the driver program (its globals as a new process would have them)."""
    return load_module(driver_path(filename))


def load_module(path):
    """A fresh module of the Python file ``path`` (a driver, or a test module whose helpers
    another test reuses: pytest's importlib mode does not make test modules importable)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_micropython(binary, lib, script, lines, timeout=60):
    """Run ``script`` under micropython with ``lines`` on stdin; returns its stdout lines."""
    env = dict(os.environ, MICROPYPATH=lib + ":.frozen")
    proc = subprocess.run(
        [binary, script],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout.splitlines()
    assert len(out) == len(lines), proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


class CPythonDriver:
    """A driver program in this process: each ``run`` on a fresh module, as a new process."""

    name = "cpython"

    def __init__(self, filename):
        self.filename = filename

    def run(self, lines):
        handle = load_driver(self.filename).handle
        return [handle(line.strip()) for line in lines]


class MicroPythonDriver:
    """A driver program under the real micropython binary: one process each ``run``."""

    name = "micropython"

    def __init__(self, binary, lib, filename):
        self.binary = binary
        self.lib = lib
        # Beside the staged device code: micropython puts the script's folder first on its path.
        self.script = os.path.join(lib, filename)
        shutil.copyfile(driver_path(filename), self.script)

    def run(self, lines):
        return run_micropython(self.binary, self.lib, self.script, lines)
