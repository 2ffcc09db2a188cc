"""What a user of adb, mpremote, docker or gh expects of a command line: failures as one line
(and one JSON object under --json), usage errors without a box, shell completion, tables that
keep ids whole, results not overwritten silently, hints that say what to install."""

import importlib.metadata as md
import json
import os
import re
import subprocess
import sys

import pytest
from support.cli import kpdev
from support.paths import DATA, ROOT

from kpdev.host.cli.app import main

MODEL = DATA / "dense_int8.tflite"


def run(capsys, *args):
    """``kpdev ARGS`` in this process through main(): (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    got = capsys.readouterr()
    return e.value.code, got.out, got.err


def one_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# -- failures: one line, and one JSON object under --json -----------------------------------
@pytest.mark.parametrize(
    "args, start",
    [
        (["deploy", MODEL, "--boardd", "x"], "No such option: --boardd"),
        (["deploy"], "Missing argument"),
        (["ping", "-n", "many", "-b", "sim-linux"], "Invalid value for '--count' / '-n'"),
        (["model", "frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(capsys, args, start):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith(f"kpdev: usage error: {start}"), line
    command = " ".join(str(a) for a in args[:2] if not str(a).startswith(("-", "/")))
    assert line.endswith(f"(see kpdev {command.split()[0]} --help)") or "kpdev model" in line
    assert "╭" not in err and "Usage:" not in err  # no Rich box, no usage block

    code, out, err = run(capsys, *args, "--json")
    assert code == 2
    error = json.loads(out)["error"]
    assert error["code"] == "usage" and error["exit"] == 2 and error["message"] in err
    assert one_line(err).startswith("kpdev: usage error:")


@pytest.mark.parametrize(
    "args, kind, exit_code",
    [
        (["info", "--board", "no-such-board"], "board", 2),
        (["info", "--port", "/dev/does-not-exist"], "link", 4),
        (["deploy", "/nonexistent/model.tflite", "-b", "sim-linux"], "usage", 2),
        (["model", "activate", "ghost", "-b", "sim-linux"], 16, 3),  # E_NO_MODEL
    ],
)
def test_json_failures_print_one_error_object(capsys, args, kind, exit_code):
    code, out, err = run(capsys, *args, "--json")
    assert code == exit_code
    doc = json.loads(out)  # exactly one JSON document: json.loads refuses trailing data
    assert list(doc) == ["error"]
    assert doc["error"]["code"] == kind and doc["error"]["exit"] == exit_code
    line = one_line(err)
    assert line.startswith("kpdev: ") and doc["error"]["message"] in line
    # Without --json the same failure leaves stdout empty.
    code, out, err = run(capsys, *args)
    assert code == exit_code and out == "" and one_line(err) == line


def test_json_failure_as_a_subprocess_keeps_stdout_parseable():
    r = kpdev("info", "--board", "no-such-board", "--json")
    assert r.returncode == 2
    assert json.loads(r.stdout) == {
        "error": {"code": "board", "message": one_line(r.stderr)[len("kpdev: board error: ") :],
                  "exit": 2}
    }  # fmt: skip


def test_no_arguments_shows_the_help(capsys):
    code, out, _ = run(capsys)
    assert code == 2 and "Usage: kpdev" in out and "deploy" in out


def test_version_and_help_exit_0(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("kpdev ")
    code, out, _ = run(capsys, "deploy", "--help")
    assert code == 0 and "Usage: kpdev deploy" in out


def test_help_lists_each_command_with_its_whole_line(capsys):
    # The root help by panel, from app.COMMANDS (no command module imported for it): each line
    # whole, as the command's own help starts, never cut.
    from kpdev.host.cli.app import COMMANDS

    code, out, _ = run(capsys, "--help")
    text = " ".join(out.split())
    assert code == 0
    for panel, rows in COMMANDS:
        assert f"{panel}:" in out
        for name, _, line in rows:
            assert f"{name} {line}" in text, name


# -- shell completion ----------------------------------------------------------------------
def test_typer_brings_what_shell_completion_needs():
    # --install-completion detects the shell with shellingham: typer itself requires it, so
    # kpdev need not declare it (test_install checks kpdev's own imports).
    requires = [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in md.requires("typer")]
    assert "shellingham" in requires


def test_the_bash_completion_script(tmp_path):
    env = dict(os.environ, _KPDEV_COMPLETE="source_bash")
    r = subprocess.run(
        [sys.executable, "-c", "from kpdev.host.cli import main; main()"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "_kpdev_completion()" in r.stdout and "_KPDEV_COMPLETE=complete_bash" in r.stdout
    # --show-completion detects the shell it runs under.
    cmd = f"{sys.executable} -m kpdev.host.cli --show-completion"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "_kpdev_completion()" in r.stdout and "complete " in r.stdout


def test_install_completion_writes_the_users_bash_files(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path))
    cmd = f"{sys.executable} -m kpdev.host.cli --install-completion"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    script = tmp_path / ".bash_completions" / "kpdev.sh"
    assert "_kpdev_completion()" in script.read_text()
    assert str(script.relative_to(tmp_path)) in (tmp_path / ".bashrc").read_text()
    # Bash can load it, and then completes kpdev's commands.
    probe = (
        f"source {script}; COMP_WORDS=(kpdev dep); COMP_CWORD=1; _kpdev_completion kpdev; "
        'echo "${COMPREPLY[@]}"'
    )
    kpdev_dir = tmp_path / "bin"
    kpdev_dir.mkdir()
    wrapper = f'#!/bin/sh\nexec {sys.executable} -m kpdev.host.cli "$@"\n'
    (kpdev_dir / "kpdev").write_text(wrapper)
    (kpdev_dir / "kpdev").chmod(0o755)
    env["PATH"] = f"{kpdev_dir}:{env['PATH']}"
    r = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "deploy" in r.stdout.split(), r.stdout


# -- a model whose runtime is missing on a simulated board -----------------------------------
@pytest.fixture
def no_akida(tmp_path):
    """An environment without akida, as an install without kpdev[akida]: a sitecustomize
    makes the import system find no ``akida`` (importlib.util.find_spec fails too)."""
    stub = tmp_path / "stub" / "akida"
    stub.mkdir(parents=True)
    (stub.parent / "sitecustomize.py").write_text(
        "import sys\n"
        "class _NoAkida:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'akida':\n"
        "            raise ModuleNotFoundError(\"No module named 'akida'\", name='akida')\n"
        "sys.meta_path.insert(0, _NoAkida())\n"
    )
    # The board's agent runs in the background: start it anew in that environment, and stop
    # it after, so the next test's board has its akida back.
    kpdev("sim", "stop", "sim-linux")
    yield dict(os.environ, PYTHONPATH=str(stub.parent))
    kpdev("sim", "stop", "sim-linux")


def test_deploy_names_the_extra_a_simulated_board_lacks(no_akida):
    r = kpdev("deploy", DATA / "akida_digits_fc.fbz", "--board", "sim-linux", env=no_akida)
    assert r.returncode == 3, r.stderr
    line = one_line(r.stderr)
    assert "cannot run on sim-linux" in line and line.endswith("pip install 'kpdev[akida]'"), line


def test_deploy_pack_names_the_extra_a_simulated_board_lacks(no_akida, tmp_path):
    pytest.importorskip("akida")  # building the pack runs the model on the host
    pack = tmp_path / "ak.kp"
    r = kpdev("pack", "build", pack, "-m", DATA / "akida_digits_fc.fbz", "-c",
              ",".join("0123456789"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = kpdev("deploy", pack, "--board", "sim-linux", env=no_akida)
    assert r.returncode == 2, r.stderr
    line = one_line(r.stderr)
    assert "model main is .fbz" in line and "pip install 'kpdev[akida]'" in line, line


def test_no_install_hint_for_a_board_pip_cannot_help(no_akida):
    # sim-mcu runs MicroPython: no pip extra brings it an Akida runtime.
    r = kpdev("deploy", DATA / "akida_digits_fc.fbz", "--board", "sim-mcu", env=no_akida)
    assert r.returncode == 3 and "pip install" not in r.stderr, r.stderr


# -- kpdev boards keeps every id whole ---------------------------------------------------------
LONG_ID = "bench-pico-w-with-the-long-name-2"


@pytest.fixture
def long_catalog(tmp_path):
    """A catalog adding a board with a long id; the environment that uses it."""
    mine = tmp_path / "mine.yml"
    mine.write_text(
        f"{LONG_ID}:\n  name: A Pico W on the bench with a name long enough to wrap anywhere\n"
        "  runtime: micropython\n  link: {type: serial, port: /dev/ttyACM9}\n"
        "  ram_kb: 264\n  storage_kb: 848\n"
    )
    env = dict(os.environ, KPDEV_CATALOG=str(mine), KPDEV_CONFIG=str(tmp_path / "c.toml"))
    env.pop("COLUMNS", None)
    return env


def _ids(env):
    r = kpdev("boards", "--json", env=env)
    assert r.returncode == 0, r.stderr
    ids = [b["id"] for b in json.loads(r.stdout)]
    assert LONG_ID in ids
    return ids


def _whole(ids, text):
    # Every id appears as a whole word: not cut ("sim-mc…") and not folded over two lines.
    for bid in ids:
        assert re.search(rf"(?<![\w-]){re.escape(bid)}(?![\w-])", text), (bid, text)
    assert "…" not in "".join(line.split("│")[1] for line in text.splitlines() if "│" in line)


@pytest.mark.parametrize("columns", [20, 40, 60, 80, 120, 250])
def test_boards_never_cuts_an_id_into_a_pipe(long_catalog, columns):
    ids = _ids(long_catalog)
    r = kpdev("boards", env=dict(long_catalog, COLUMNS=str(columns)))
    assert r.returncode == 0, r.stderr
    _whole(ids, r.stdout)


@pytest.mark.parametrize("columns", [40, 100])
def test_boards_never_cuts_an_id_on_a_terminal(long_catalog, columns):
    import fcntl
    import struct
    import termios

    ids = _ids(long_catalog)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kpdev.host.cli", "boards"],
        stdin=slave, stdout=slave, stderr=slave, env=dict(long_catalog, TERM="xterm"),
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(60)
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", b"".join(chunks).decode()).replace("\r", "")
    assert proc.returncode == 0, text
    # A table keeps to the terminal's width; lines too narrow for one are wrapped by it.
    assert all(len(line) <= columns for line in text.splitlines() if "│" in line), text
    assert ("│" in text) == (columns >= len(LONG_ID) + 20)
    _whole(ids, text)


# -- kpdev repl takes no --json ---------------------------------------------------------------
def test_repl_refuses_json_as_a_usage_error(capsys):
    code, out, err = run(capsys, "repl", "--board", "sim-linux", "--json")
    assert code == 2
    assert "repl is interactive" in one_line(err)
    assert json.loads(out)["error"]["code"] == "usage"


# -- results are not overwritten silently ----------------------------------------------------
@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    """A small pack of the demo's model, pipeline and data."""
    demo = ROOT / "host" / "demo"
    path = tmp_path_factory.mktemp("pack") / "bm.kp"
    r = kpdev(
        "pack", "build", path, "-m", f"main={demo / 'basicmotions_mlp.tflite'}",
        "-c", "Standing,Running,Walking,Badminton",
        "--pipeline", demo / "basicmotions_pipeline.yml", "--dataset", demo / "basicmotions.npz",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return path


def test_pack_build_refuses_to_overwrite_a_pack(pack, tmp_path):
    out = tmp_path / "p.kp"
    out.write_bytes(b"my precious pack")
    args = ["pack", "build", out, "-m", MODEL, "-c", "a,b,c,d"]
    r = kpdev(*args)
    assert r.returncode == 2
    line = one_line(r.stderr)
    assert f"pack {out} exists; pass --force to overwrite it" in line
    assert out.read_bytes() == b"my precious pack"
    r = kpdev(*args, "--force", "--json")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:2] == b"PK"


def test_eval_and_profile_refuse_to_overwrite_measurements(pack, tmp_path):
    demo = ROOT / "host" / "demo"
    run_json, prof_json = tmp_path / "run.json", tmp_path / "prof.json"
    run_json.write_text("{}")
    prof_json.write_text("{}")
    board = ["--board", "sim-linux"]
    ev = ["eval", pack, "-d", demo / "basicmotions.npz", "--limit", "4", "-o", run_json, *board]
    pr = ["profile", pack, "-n", "2", "-o", prof_json, *board]
    for args, path in ((ev, run_json), (pr, prof_json)):
        r = kpdev(*args)
        assert r.returncode == 2, r.stderr
        assert f"{path} exists; pass --force to overwrite it" in one_line(r.stderr)
        assert path.read_text() == "{}"  # refused before the run, file untouched
    r = kpdev(*ev, "--force", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(run_json.read_text())["results"]["classification"]["n"] == 4
    r = kpdev(*pr, "--force")
    assert r.returncode == 0, r.stderr
    assert json.loads(prof_json.read_text())["stages"]


def test_eval_keeps_its_default_file_too(pack, tmp_path):
    demo = ROOT / "host" / "demo"
    args = ["eval", pack, "-d", demo / "basicmotions.npz", "--limit", "2", "-b", "sim-linux"]
    r = kpdev(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    written = tmp_path / "kpdev-eval-bm-sim-linux.json"
    first = written.read_text()
    r = kpdev(*args, cwd=tmp_path)
    assert r.returncode == 2 and "kpdev-eval-bm-sim-linux.json exists" in one_line(r.stderr)
    assert written.read_text() == first


# -- kpdev agent build for a simulated board --------------------------------------------------
def test_agent_build_for_a_simulated_board_does_not_suggest_install(tmp_path):
    r = kpdev("agent", "build", "--board", "sim-mcu", "--out", tmp_path / "tree")
    assert r.returncode == 0, r.stderr
    assert "agent install" not in r.stderr and "sim-mcu is simulated" in r.stderr
    assert "kpdev sim sim-mcu --listen pty" in r.stderr
    r = kpdev("agent", "build", "--board", "rpi-pico", "--out", tmp_path / "pico")
    assert r.returncode == 0, r.stderr
    assert "kpdev agent install --board rpi-pico" in r.stderr


def test_every_new_command_offers_json_and_help(capsys):
    for args in (["ports"], ["doctor"], ["config", "get"], ["config", "set"], ["config", "unset"],
                 ["config", "path"]):  # fmt: skip
        code, out, _ = run(capsys, *args, "--help")
        assert code == 0 and "--json" in out, args
        usage = next(line for line in out.splitlines() if "Usage:" in line)
        summary = out.split(usage, 1)[1].strip().splitlines()[0]
        assert len(summary) > 20, (args, summary)  # a sentence, not an empty help
