"""``profile_pack``: per-stage medians, spreads, an ``other`` row and shares that add up, from
the per-run times a simulated board's PROFILE_RUN returns; checked against numpy on the very
replies the device sent."""

import numpy as np
import pytest
from support.packs import device_pack, upload_all

from kpdev.host.evaluation.evaluate import PROFILE_KIND, profile_pack

pytest.importorskip("tflite_micro")


@pytest.mark.parametrize("board", ["sim-mcu", "sim-linux"])
def test_profile_medians_other_and_shares(agents, board):
    client = agents.start(board).client()
    upload_all(client)
    client.pack_set(device_pack())
    replies, asked = [], []
    send = client.profile

    def recording(x, runs, warmup):  # the real request; the test keeps what came back
        asked.append((runs, warmup))
        replies.append(send(x, runs, warmup))
        return replies[-1]

    client.profile = recording
    doc = profile_pack(client, None, runs=70, warmup=3)

    # 70 runs take two requests (64 per-run times a reply at most); only the first warms up.
    assert asked == [(64, 3), (6, 0)]
    assert doc["kind"] == PROFILE_KIND and (doc["runs"], doc["warmup"]) == (70, 3)
    assert (doc["pack"], doc["board"]) == ("demo", board)
    names = [s["name"] for s in doc["stages"]]
    assert names[:5] == [
        "unpack", "feature:mean", "feature:std", "feature:max", "feature:mean_crossing_rate"
    ]  # fmt: skip
    assert "scale" in names and "quantize" in names and "model:router" in names
    assert "mean" not in names and "std" not in names  # never a bare generator name

    totals = np.concatenate([r["totals"] for r in replies]).astype(float)
    stage_runs = {}
    for r in replies:
        for s in r["stages"]:
            name = s["name"] if s["name"].startswith("model:") or s["name"] in (
                "unpack", "scale", "quantize"
            ) else "feature:" + s["name"]  # fmt: skip
            stage_runs.setdefault(name, []).extend(s["runs"])
    for s in doc["stages"]:
        values = np.asarray(stage_runs[s["name"]], dtype=float)
        assert len(values) == 70
        p10, median, p90 = np.percentile(values, [10, 50, 90])
        assert (s["median"], s["p10"], s["p90"]) == pytest.approx((median, p10, p90))
        assert (s["min"], s["max"], s["us"]) == pytest.approx(
            (values.min(), values.max(), values.mean())
        )
    other = totals - sum(np.asarray(v, dtype=float) for v in stage_runs.values())
    assert doc["other"]["name"] == "other"
    assert doc["other"]["median"] == pytest.approx(np.median(other))
    assert doc["other"]["us"] == pytest.approx(other.mean())
    assert doc["total"]["median"] == pytest.approx(np.median(totals))
    assert doc["total_us"] == pytest.approx(totals.mean())
    # The shares are of the mean total and add up to 100 % with the "other" row.
    shares = [s["share"] for s in doc["stages"]] + [doc["other"]["share"]]
    assert sum(shares) == pytest.approx(100.0)
    spread = (np.percentile(totals, 90) - np.percentile(totals, 10)) / np.median(totals)
    assert doc["spread"] == pytest.approx(spread)
    assert doc["noisy"] == (spread > 0.25)
