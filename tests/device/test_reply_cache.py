"""A request sent again under the same id (its reply was lost) is answered from the agent's
reply cache when it changes state, not carried out twice; a read-only one is run again."""

import cbor2
import pytest
from support.agents import AGENT_BOARDS, next_rid, raw

from kpdev.protocol import ops


@pytest.mark.parametrize("board", AGENT_BOARDS)
def test_a_state_changing_request_sent_again_is_answered_from_the_cache(agents, board):
    c = agents.start(board).client()
    c.ping()
    rid = next_rid()
    reset = cbor2.dumps({"reset": True})
    _, first = raw(c, ops.STATS, reset, rid=rid)
    c.ping()
    c.ping()
    _, again = raw(c, ops.STATS, reset, rid=rid)  # the same request: its reply was "lost"
    assert again == first  # the very reply, with the counters from before the reset
    after = c.stats()
    assert after["duplicates"] == 1
    assert after["frames_in"] == 4  # 2 PINGs, the copy, this STATS: the reset happened once
    # Another id, or another payload under the same id, is a new request: carried out.
    _, other = raw(c, ops.STATS, reset, rid=next_rid())
    assert other["frames_in"] == 5  # the counters it reset, the STATS above included
    now = c.stats()
    assert now["frames_in"] == 1 and now["duplicates"] == 0
    # A read-only request under the same id is simply run again.
    rid = next_rid()
    _, p1 = raw(c, ops.PING, cbor2.dumps({"data": b"x"}), rid=rid)
    _, p2 = raw(c, ops.PING, cbor2.dumps({"data": b"x"}), rid=rid)
    assert p2["uptime_ms"] >= p1["uptime_ms"] and c.stats()["duplicates"] == 0
