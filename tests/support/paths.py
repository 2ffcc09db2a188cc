"""Where the tests' files are, computed once: the repository root (the kpdev package), tests/data,
the demo data in host/demo (made by examples/basicmotions) and the driver programs in
tests/support/drivers."""

import hashlib
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
TESTS = SUPPORT.parent
ROOT = TESTS.parent
DATA = TESTS / "data"
DEMO = ROOT / "host" / "demo"
EXAMPLES = ROOT / "examples" / "basicmotions"  # the scripts that made the demo's data
DRIVERS = SUPPORT / "drivers"


def read_data(name):
    """Bytes of a file in tests/data."""
    return (DATA / name).read_bytes()


def sha256(data):
    return hashlib.sha256(data).digest()
