"""What a fresh install needs: every third-party import declared, and a core install that works.

The first defect a new user met was an import of a distribution pyproject.toml did not declare
(``click``), hidden because the machine that ran the tests had it.  These tests read the code
and the metadata, so they fail on any machine, whatever else it has installed.
"""

import ast
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.measurements import run_doc
from support.paths import ROOT

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

PARTS = ("protocol", "device", "accelerators", "host")
# Modules only MicroPython has (device code imports them inside try/except).
MICROPYTHON_ONLY = {
    "micropython", "machine", "uctypes", "utime", "uos", "ustruct", "network", "esp", "esp32",
    "rp2", "pyb", "vfs", "uselect", "usocket", "ubinascii", "uhashlib", "ujson", "uio", "uerrno",
    "ure", "uasyncio", "uzlib", "urandom", "ucollections", "utimeq", "uarray",
    "kpdev_board",  # the emulated boards' C module, built into their firmware (qemu_board/)
}  # fmt: skip
# Extras that hold optional backends and tools: a core install has none of them.
OPTIONAL_MODULES = (
    "akida", "tflite_micro", "ai_edge_litert", "iree", "matplotlib", "sklearn", "mpremote",
    "tensorflow", "scipy", "pytest",
)  # fmt: skip


def _requirement_name(req):
    return re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower().replace("_", "-")


def _declared():
    """(core distributions, {extra: distributions}) from pyproject.toml."""
    if tomllib is None:
        pytest.skip("reading pyproject.toml needs tomllib (Python 3.11+)")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_requirement_name(r) for r in project["dependencies"]}
    extras = {
        name: {_requirement_name(r) for r in reqs}
        for name, reqs in project.get("optional-dependencies", {}).items()
    }
    return core, extras


def _imports():
    """(top-level module, file) for every absolute import in the product's code."""
    for part in PARTS:
        for path in sorted((ROOT / part).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    yield name.split(".")[0], path.relative_to(ROOT)


def _third_party():
    stdlib = set(sys.stdlib_module_names)
    own = {"kpdev"} | set(PARTS)
    for top, path in _imports():
        if top in stdlib or top in own or top in MICROPYTHON_ONLY or top.startswith("_"):
            continue
        yield top, path


def test_every_third_party_import_is_declared():
    core, extras = _declared()
    everywhere = core.union(*extras.values())
    dists = md.packages_distributions()
    undeclared = []
    for top, path in _third_party():
        names = {d.lower().replace("_", "-") for d in dists.get(top, [])}
        if not names:
            undeclared.append(f"{path}: {top} (no installed distribution provides it)")
        elif not names & everywhere:
            undeclared.append(f"{path}: {top} (from {', '.join(sorted(names))})")
    assert not undeclared, "imports pyproject.toml does not declare:\n" + "\n".join(undeclared)


def test_optional_backends_are_declared_in_their_extra():
    """An accelerator module's runtime comes from the extra named after it."""
    _, extras = _declared()
    dists = md.packages_distributions()
    wanted = {"akida": "akida", "iree": "iree", "litert": "litert", "tflite_micro": "tflite"}
    for module, extra in wanted.items():
        tops = {t for t, p in _third_party() if p == Path("accelerators") / f"{module}.py"}
        assert tops, module
        for top in tops - {"numpy"}:
            names = {d.lower().replace("_", "-") for d in dists.get(top, [])}
            assert names & extras[extra], f"{module}.py imports {top}, not in extra {extra!r}"


def test_no_click_import_and_no_typer_internals():
    """Typer's public API only: click is not ours to import, typer.core not ours to subclass."""
    for top, path in _imports():
        assert top != "click", f"{path} imports click"
    for path in (ROOT / "host").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "typer.core" not in text and "typer.main" not in text, path


# Run the CLI as if no extra were installed: imports of optional distributions fail.
_BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in %r:
            raise ModuleNotFoundError("No module named %%r" %% name, name=name)
        return None
sys.meta_path.insert(0, Block())
sys.argv[0] = "kpdev"
from kpdev.host.cli.app import main
main()
""" % (OPTIONAL_MODULES,)


def _core_kpdev(*args, env=None):
    return subprocess.run(
        [sys.executable, "-c", _BLOCKER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env or os.environ.copy(),
    )


def test_core_install_runs_the_commands_that_need_no_extra(tmp_path):
    env = dict(os.environ, KPDEV_HOME=str(tmp_path), COLUMNS="200")
    r = _core_kpdev("--help", env=env)
    assert r.returncode == 0, r.stderr
    assert "deploy" in r.stdout
    r = _core_kpdev("boards", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert "sim-linux" in r.stdout
    r = _core_kpdev("pack", "inspect", str(ROOT / "tests" / "data" / "mlp_int8.tflite"), env=env)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_command_that_needs_an_extra_names_it(tmp_path):
    env = dict(os.environ, KPDEV_HOME=str(tmp_path))
    run = tmp_path / "run.json"
    run.write_text(json.dumps(run_doc(1, "sim-mcu")))
    r = _core_kpdev("report", str(run), "-o", str(tmp_path / "rep"), env=env)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "pip install 'kpdev[report]'" in lines[0], lines[0]
    assert not (tmp_path / "rep").exists()
