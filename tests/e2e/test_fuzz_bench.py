"""A bounded run of bench/fuzz.py (issue 16, R1): fuzzed frames into each agent runtime."""

import json
import subprocess
import sys

import pytest
from support.paths import ROOT

FRAMES = 2000  # the full run (100,000 a runtime) is in docs/benchmarks.md


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_fuzzed_frames_leave_the_agent_serving_and_its_state_as_it_was(board):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz.py"), "--frames", str(FRAMES)]
        + ["--board", board, "--burst", "40", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["frames"] == FRAMES and out["bursts"] > 0
    assert out["crashes"] == out["hangs"] == out["restarts"] == 0, (out, proc.stderr)
    assert out["slow_pings"] == 0 and out["max_ping_s"] < 2.0, out
    assert out["state_changes_unexplained"] == out["state_changes_after_error_reply"] == 0, out
    assert out["escaped_exceptions"] == 0 and not out["internal"], out
    # The fuzz reached the parser's and the handlers' refusals, not only one of them.
    assert {"BAD_CRC", "TOO_LARGE", "MALFORMED", "UNKNOWN_OP", "BAD_REQUEST"} <= set(
        out["error_codes"]
    ), out
    assert set(out["kinds"]) >= {"claims_the_most", "wrong_length", "truncated", "oversized"}
