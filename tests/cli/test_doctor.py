"""kpdev doctor: one line per check, each problem with what to do; exit 0 while kpdev's core
works, whatever optional parts are missing."""

import json
import os
import sys

import pytest
from support.cli import cli, kpdev
from typer.testing import CliRunner

from kpdev.host import doctor, extras
from kpdev.host.cli.app import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path):
    """An environment with a config directory of its own."""
    e = dict(os.environ, KPDEV_CONFIG=str(tmp_path / "conf" / "config.toml"))
    e.pop("KPDEV_BOARD", None)
    e.pop("KPDEV_CATALOG", None)
    return e


def test_doctor_reports_every_check(env):
    r = kpdev("doctor", "--json", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] is True
    by_name = {c["name"]: c for c in report["checks"]}
    for name in ("python", "kpdev", "core", "micropython", "mpy-cross", "config", "catalog"):
        assert name in by_name, name
    for dist in extras.OPTIONAL_DISTRIBUTIONS:  # every optional part has its line
        assert by_name[dist]["status"] in ("ok", "missing")
    assert by_name["python"]["detail"].startswith("%d.%d" % sys.version_info[:2])
    assert "numpy" in by_name["core"]["detail"] and "typer 0.29" in by_name["core"]["detail"]
    assert any(c["name"].startswith("port ") or c["name"] == "ports" for c in report["checks"])
    assert "kpdev config set board NAME" in by_name["config"]["fix"]

    r = kpdev("doctor", env=env)
    assert r.returncode == 0
    lines = r.stdout.strip().splitlines()
    assert len(lines) == len(report["checks"]) + 1  # one line per check, then the summary
    assert lines[-1].startswith("kpdev works")


def test_a_missing_optional_part_names_its_extra_and_does_not_fail(monkeypatch, tmp_path):
    monkeypatch.setenv("KPDEV_CONFIG", str(tmp_path / "config.toml"))
    table = dict(extras.OPTIONAL_DISTRIBUTIONS, **{"kpdev-no-such-runtime": ("nope", "a test")})
    monkeypatch.setattr(doctor, "OPTIONAL_DISTRIBUTIONS", table)
    lines = {c.name: c for c in doctor.run_checks([doctor.check_optional])}
    missing = lines["kpdev-no-such-runtime"]
    assert missing.status == "missing" and missing.detail == "optional, missing: a test"
    assert missing.fix == "pip install 'kpdev[nope]'"
    r = runner.invoke(app, ["doctor"])
    assert r.exit_code == 0, r.output
    assert "optional, missing: a test" in r.stdout and "pip install 'kpdev[nope]'" in r.stdout


def test_a_broken_config_fails_with_what_to_do(env, tmp_path):
    cfg = tmp_path / "conf" / "config.toml"
    cfg.parent.mkdir()
    cfg.write_text('board = "no-such-board"\n')
    r = kpdev("doctor", "--json", env=env)
    assert r.returncode == 1
    config = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "config")
    assert config["status"] == "fail" and "'no-such-board'" in config["detail"]
    assert "kpdev config set board NAME" in config["fix"]
    cfg.write_text("board = sim-mcu\n")
    r = kpdev("doctor", env=env)
    assert r.returncode == 1
    line = next(x for x in r.stdout.splitlines() if " config " in x)
    assert "not valid TOML" in line and f"fix or remove {cfg}" in line


def test_a_bad_catalog_fails_naming_the_file(env, tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "boards.yml").write_text("x:\n  name: X\n")
    r = kpdev("doctor", "--json", env=env)
    assert r.returncode == 1
    catalog = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "catalog")
    assert (
        catalog["status"] == "fail"
        and str(tmp_path / "conf" / "boards.yml") in (catalog["detail"])
    )


def test_a_tool_that_does_not_run_is_a_warning(env):
    r = kpdev("doctor", "--json", env=dict(env, KPDEV_MICROPYTHON="/nonexistent/micropython"))
    assert r.returncode == 0  # optional: kpdev's core still works
    mp = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "micropython")
    assert mp["status"] == "warn" and "KPDEV_MICROPYTHON" in mp["fix"]


def test_one_more_check_is_one_more_function():
    def check_sims():
        yield doctor.Check("sim sim-mcu", doctor.OK, "running")

    def check_broken():
        raise RuntimeError("boom")

    lines = doctor.run_checks([*doctor.CHECKS[:1], check_sims, check_broken])
    assert [c.name for c in lines] == ["python", "sim sim-mcu", "broken"]
    assert lines[2].status == "fail" and "RuntimeError: boom" in lines[2].detail
    assert not doctor.healthy(lines) and doctor.healthy(lines[:2])


def test_doctor_lists_the_running_simulated_boards(env):
    cli("sim", "stop", "--all")
    r = kpdev("doctor", "--json", env=env)
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["simulated boards"]["detail"] == "none running"
    cli("sim", "start", "sim-linux")
    from kpdev.host.boards import simserver
    from kpdev.host.boards.catalog import get_board

    pid = simserver.status(get_board("sim-linux"))["agent_pid"]
    checks = {
        c["name"]: c for c in json.loads(kpdev("doctor", "--json", env=env).stdout)["checks"]
    }
    assert checks["sim sim-linux"]["status"] == "ok"
    assert f"agent pid {pid}" in checks["sim sim-linux"]["detail"]
    cli("sim", "stop", "sim-linux")
