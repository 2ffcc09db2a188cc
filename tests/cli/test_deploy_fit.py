"""``kpdev deploy --dry-run`` says what the real deploy then does: on every simulated board, for
the demo pack, a learner pack and every test model, the dry run's verdict is the outcome of the
deploy that follows it in the same state, and the dry run sends nothing.
"""

import json

import pytest
from support.cli import cli, cli_json, kpdev, runner
from support.paths import DATA, DEMO

from kpdev.host.cli.app import app
from kpdev.host.errors import UsageError
from kpdev.protocol.errors import KpdevError

pytest.importorskip("tflite_micro")

DATASET = DEMO / "basicmotions.npz"
PIPELINE = DEMO / "basicmotions_pipeline.yml"
CLASSES = "Standing,Running,Walking,Badminton"
VERDICTS = {True: "fits", False: "does not fit", None: "may not fit"}
MODELS = sorted(p for ext in ("tflite", "vmfb", "fbz") for p in DATA.glob(f"*.{ext}"))


@pytest.fixture(scope="module")
def packs(tmp_path_factory):
    work = tmp_path_factory.mktemp("fit")
    demo = work / "basicmotions.kp"
    cli(
        "pack", "build", demo, "-m", f"main={DEMO / 'basicmotions_mlp.tflite'}", "-c", CLASSES,
        "--pipeline", PIPELINE, "--dataset", DATASET, "--name", "basicmotions",
    )  # fmt: skip
    learner = work / "learner.kp"
    cli(
        "pack", "build", learner, "--pipeline", PIPELINE, "--dataset", DATASET,
        "--learner", "memory", "-L", "per_class=8",
    )  # fmt: skip
    return [learner, demo]


def run(*args):
    """``kpdev ARGS --json`` in-process: (exit ok, the document or the error's detail, error)."""
    r = runner.invoke(app, [str(a) for a in args] + ["--json"])
    if r.exit_code == 0:
        return True, json.loads(r.stdout), None
    assert isinstance(r.exception, KpdevError), r.output
    return False, getattr(r.exception, "detail", None), r.exception


def dry_run(path, board):
    """The dry run's plan, checked for what it must say whatever its verdict."""
    before = cli_json("models", "--board", board)
    ok, plan, error = run("deploy", path, "--board", board, "--dry-run")
    assert ok == (plan["fits"] is not False), error  # "may not fit" warns, exits 0
    assert isinstance(error, (UsageError, type(None))), error  # no device error: nothing sent
    assert plan["dry_run"] and plan["source"] == "device" and plan["board"] == board
    assert plan["verdict"] == VERDICTS[plan["fits"]]
    assert cli_json("models", "--board", board) == before, "the dry run changed the store"
    return plan


def deploy(path, board):
    ok, _, error = run("deploy", path, "--board", board)
    return ok, str(error)


@pytest.mark.parametrize("board", ["sim-mcu", "sim-mcu-64k", "sim-linux"])
def test_the_dry_run_verdict_is_the_deploys_outcome(board, packs):
    outcomes = []
    for path in [*MODELS, *packs]:
        plan = dry_run(path, board)
        before = cli_json("models", "--board", board)
        ok, why = deploy(path, board)
        if not ok:  # a refused deploy leaves the store as it was
            assert cli_json("models", "--board", board) == before, (path.name, why)
        outcomes.append((path.name, plan["fits"], ok))
        # "may not fit" (a tight heap) is no promise either way; the others are.
        if plan["fits"] is not None:
            assert plan["fits"] == ok, (path.name, plan["problems"], why)
        if path.suffix != ".kp":
            cli("model", "delete", "--all", "--board", board)
    # Not one-sided: sim-mcu takes some and refuses others; sim-mcu-64k (26 KB of free heap,
    # a 1 KB maximum payload) takes none of them, sim-linux every one.
    fits = {name for name, f, _ in outcomes if f}
    assert sum(f is None for _, f, _ in outcomes) <= 2, outcomes
    expect = {"sim-mcu": None, "sim-mcu-64k": 0, "sim-linux": len(outcomes)}[board]
    if expect is None:
        assert fits and len(fits) < len(outcomes), outcomes
    else:
        assert len(fits) == expect, outcomes


def test_each_limit_is_named_with_its_figures(packs):
    demo = packs[1]
    # The real limits of that board: its free heap for the load, its 1 KB maximum payload.
    # INFO just before the dry run: on a fresh board, the dry run's PACK_GET (a handler group not
    # loaded before) needs a few more interned names, and MicroPython's next pool of them takes
    # ~7.2 KB for good (micropython.qstr_info(): 13,600 -> 20,832 bytes), so an INFO after it
    # reads that much less. Run alone, this test met that; after the file's other tests, not.
    info = cli_json("info", "--board", "sim-mcu-64k")
    plan = dry_run(demo, "sim-mcu-64k")
    failed = {c["check"]: c for c in plan["checks"] if c["ok"] is False}
    heap = failed["heap"]
    assert heap["have"] == pytest.approx(info["memory"]["heap_free"], abs=4096)
    assert heap["need"] > heap["have"]
    request = failed["request"]
    assert request["have"] == info["max_payload"] == 1024 and request["need"] > 1024
    assert not any(c["check"] == "storage" for c in failed.values())


def test_without_a_device_the_catalog_is_used_and_said(packs, tmp_path):
    # A real board that is not plugged in: the catalog's figures, and the plan says so.
    r = kpdev("deploy", packs[1], "--board", "rpi-pico", "--dry-run", "--json")
    doc = json.loads(r.stdout)
    plan = doc if r.returncode == 0 else doc["error"]["detail"]
    assert plan["source"] == "catalog" and "catalog" in plan["basis"]
    heap = [c for c in plan["checks"] if c["check"] == "heap"]
    assert heap and all(c["have"] == 264 * 1024 for c in heap)
