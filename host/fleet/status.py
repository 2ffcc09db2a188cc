"""What ``kpdev fleet list`` says of each member: board type, whether its agent answers (a
simulated board's background agent running; a port's agent answering HELLO), and for labgrid
places whether each is free or acquired, and by whom.  Listing starts no simulated board and
acquires no place."""

from __future__ import annotations

import threading
from typing import Any

from kpdev.host.boards.catalog import get_board
from kpdev.host.fleet.select import Selection
from kpdev.protocol.errors import KpdevError

PROBE_TIMEOUT_S = 2.0


def _board_state(bid: str) -> dict[str, Any]:
    from kpdev.host.boards import simserver

    b = get_board(bid)
    row: dict[str, Any] = {"member": bid, "board": bid, "kind": "simulated" if b.simulated else
                           "board"}  # fmt: skip
    if b.simulated:
        st = simserver.status(b)
        if st.get("running") and st.get("agent_pid"):
            holder = st.get("in_use_by")
            row["answering"] = True
            row["state"] = f"agent running (pid {st['agent_pid']})" + (
                f", in use by {holder}" if holder else ""
            )
        else:
            row["answering"] = False
            row["state"] = "not running (starts on first use)"
        return row
    row["answering"] = None
    row["state"] = f"not probed (default link {b.describe_link()})"
    return row


def _probe(row: dict[str, Any], board: str | None, port: str) -> None:
    from kpdev.host.client.session import open_session

    try:
        with open_session(board, port, None, timeout=PROBE_TIMEOUT_S) as c:
            row["answering"] = True
            row["agent_board"] = c.device.get("board")
            row["state"] = f"agent answering ({c.device.get('board')}, {c.device.get('runtime')})"
    except (KpdevError, OSError) as e:
        row["answering"] = False
        row["state"] = f"not answering: {str(e).splitlines()[0] if str(e) else type(e).__name__}"


def member_states(members: list[str], probe: bool = True) -> list[dict[str, Any]]:
    """One row a member (places: one row a matching place)."""
    rows: list[dict[str, Any]] = []
    threads = []
    for text in members:
        sel = Selection()
        try:
            sel.add(text)
        except KpdevError as e:
            rows.append({"member": text, "kind": "?", "state": f"invalid: {e}"})
            continue
        for m in sel.members:
            if m.port is None:
                rows.append(_board_state(m.board))
                continue
            row = {"member": m.name, "board": m.board, "kind": "port", "answering": None,
                   "state": "not probed"}  # fmt: skip
            rows.append(row)
            if probe:
                t = threading.Thread(target=_probe, args=(row, m.board, m.port), daemon=True)
                threads.append(t)
                t.start()
        for pattern in sel.places:
            rows += _place_rows(pattern)
    for t in threads:
        t.join(PROBE_TIMEOUT_S * 3)
    return rows


def _place_rows(pattern: str) -> list[dict[str, Any]]:
    try:
        from kpdev.host.fleet import labgrid

        found = labgrid.places([pattern], labgrid.coordinator())
    except ImportError as e:
        return [{"member": f"place:{pattern}", "kind": "place", "state": f"unknown: {e}"}]
    except KpdevError as e:
        return [{"member": f"place:{pattern}", "kind": "place", "state": f"unknown: {e}"}]
    return [
        {
            "member": f"place {p.name}",
            "board": p.board,
            "kind": "place",
            "url": p.url,
            "owner": p.owner,
            "state": f"acquired by {p.owner}" if p.owner else "free",
        }
        for p in found
    ]
