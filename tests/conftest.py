"""Fixtures of the whole suite: a $KPDEV_HOME of each module's own, the real micropython and the
device code staged for it, agent processes, and ``impl``: a module's driver program under each
interpreter the device code runs on.  Helpers live in tests/support."""

import os

# The labgrid tests run gRPC in the test process; with gRPC's fork handlers on, a test's
# subprocess started with preexec_fn (a fork) aborted in them (host/fleet/labgrid.py says more).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import pytest
from support.agents import Agents
from support.interpreters import CPythonDriver, MicroPythonDriver

from kpdev.host.agent.micropython import MicroPythonNotFound, micropython_binary, stage_lib
from kpdev.host.boards import simserver


@pytest.fixture(scope="session")
def kpdev_homes(tmp_path_factory):
    """Where the per-module $KPDEV_HOME directories live, with one staged MicroPython lib."""
    base = tmp_path_factory.mktemp("kpdev-homes")
    (base / "lib").mkdir()
    # Emulated boards' firmware and their staged agent: built once for the whole run, also when
    # pytest-xdist runs it on several workers (each has a base of its own under the run's
    # folder): one folder beside them, as kpdev's firmware build takes a lock there.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / "firmware"
        shared.mkdir(exist_ok=True)
        (base / "firmware").symlink_to(shared)
    else:
        (base / "firmware").mkdir()
    yield base
    # A module whose teardown did not run leaves no simulated board behind either.
    for home in sorted(base.iterdir()):
        if (home / "run").is_dir():
            stop_sim_boards(home)


@pytest.fixture(scope="module", autouse=True)
def kpdev_home(kpdev_homes, request):
    """Simulated boards keep their files under a temporary $KPDEV_HOME, never the user's.

    One per test module, so no module sees boards another one left behind; the staged device
    lib is shared (compiling it is the slow part).
    """
    home = kpdev_homes / request.module.__name__
    home.mkdir()
    (home / "lib").symlink_to(kpdev_homes / "lib")
    (home / "firmware").symlink_to(kpdev_homes / "firmware")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KPDEV_HOME", str(home))
        # Background simulated boards stop by themselves should a test run die before the
        # teardown below stops them.
        mp.setenv("KPDEV_SIM_IDLE", "300")
        # Nor the user's config and own boards: a config file of the module's own.
        mp.setenv("KPDEV_CONFIG", str(home / "config.toml"))
        for name in ("KPDEV_KEY", "KPDEV_BOARD", "KPDEV_STATE", "KPDEV_CATALOG"):
            mp.delenv(name, raising=False)
        try:
            yield home
        finally:
            stop_sim_boards()


def stop_sim_boards(home=None):
    """Stop the background simulated boards of ``home`` (default: the current $KPDEV_HOME)."""
    with pytest.MonkeyPatch.context() as mp:
        if home is not None:
            mp.setenv("KPDEV_HOME", str(home))
        simserver.stop_all()


@pytest.fixture(scope="session")
def micropython():
    """Path of the real ``micropython`` binary (skips the test when it is not installed)."""
    try:
        return micropython_binary()
    except MicroPythonNotFound as e:
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def mp_lib(micropython, tmp_path_factory):
    """The device code staged as a board's /lib holds it (compiled with mpy-cross)."""
    return stage_lib(str(tmp_path_factory.mktemp("mplib")))


@pytest.fixture(scope="module", params=["cpython", "micropython"])
def impl(request):
    """The test module's driver program (its ``DRIVER``, a file in tests/support/drivers) under
    each interpreter the device code must run on: CPython in this process and the real
    ``micropython`` binary (cf. cbor2's conftest ``impl``, which runs every test against its C
    and its Python implementation).  ``impl.run(lines)`` gives one answer line each; each run is a
    fresh process (a fresh module under CPython)."""
    if request.param == "cpython":
        return CPythonDriver(request.module.DRIVER)
    binary = request.getfixturevalue("micropython")
    return MicroPythonDriver(binary, request.getfixturevalue("mp_lib"), request.module.DRIVER)


@pytest.fixture
def agents(tmp_path):
    """Agent processes that live as long as one test."""
    a = Agents(tmp_path)
    yield a
    a.stop_all()


@pytest.fixture(scope="module")
def module_agents(tmp_path_factory):
    """Agent processes shared by the tests of one module (started as few times as possible)."""
    a = Agents(tmp_path_factory.mktemp("agents"))
    yield a
    a.stop_all()
