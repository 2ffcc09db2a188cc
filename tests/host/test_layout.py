"""The layering docs/architecture.md describes, checked on the source: imports, folders, docs."""

import ast
import re

import pytest
from support.paths import ROOT

HOST = ROOT / "host"
SUBPACKAGES = sorted(p.parent for p in HOST.glob("*/__init__.py"))


def _imports(path):
    """Every module name a file imports (absolute imports; kpdev uses no relative ones)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def _sources(top):
    return sorted(p for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)


def test_only_the_cli_uses_rich_or_typer():
    offenders = [
        f"{p.relative_to(ROOT)}: {name}"
        for p in _sources("host")
        if "cli" not in p.relative_to(HOST).parts[:1]
        for name in _imports(p)
        if name.split(".")[0] in ("rich", "typer", "click")
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "top, allowed",
    [
        ("protocol", ("kpdev.protocol",)),
        ("device", ("kpdev.protocol", "kpdev.device", "kpdev.accelerators")),
        ("accelerators", ("kpdev.protocol", "kpdev.accelerators", "kpdev.device")),
    ],
)
def test_the_device_half_never_imports_the_host(top, allowed):
    offenders = [
        f"{p.relative_to(ROOT)}: {name}"
        for p in _sources(top)
        for name in _imports(p)
        # the package root (its version) is shared by both halves
        if name.startswith("kpdev.") and not name.startswith(allowed + ("kpdev.__version__",))
    ]
    assert offenders == []


def test_the_library_does_not_import_the_cli():
    offenders = [
        f"{p.relative_to(ROOT)}: {name}"
        for p in _sources("host")
        if p.relative_to(HOST).parts[0] != "cli"
        for name in _imports(p)
        if name == "kpdev.host.cli" or name.startswith("kpdev.host.cli.")
    ]
    assert offenders == []


@pytest.mark.parametrize("package", SUBPACKAGES, ids=lambda p: p.name)
def test_each_host_folder_says_what_lives_there(package):
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
    assert doc, f"host/{package.name}/__init__.py has no docstring"
    modules = sorted(p.stem for p in package.glob("*.py") if not p.stem.startswith("__"))
    missing = [m for m in modules if not re.search(r"\b%s\b" % m, doc)]
    assert missing == [], f"host/{package.name}/__init__.py does not name {missing}"


def test_the_architecture_page_knows_every_host_folder():
    page = (ROOT / "docs" / "architecture.md").read_text()
    folders = [p.name for p in SUBPACKAGES]
    assert folders and [f for f in folders if f"host/{f}/" not in page] == []
    top = sorted(p.stem for p in HOST.glob("*.py") if p.stem != "__init__")
    assert len(top) <= 7, top  # a handful of modules at the top; the rest live in folders
    assert [m for m in top if f"`{m}`" not in page] == []
