"""Inference latencies of one model, and the latency and energy figures STATS reports.

Imported by the first inference, not with the agent: an idle board keeps none of it.
"""

_RING = 128  # latencies kept per model for the percentiles


class Latency:
    """min/mean/max over all inferences; p50/p99 over the last 128."""

    def __init__(self):
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0
        self._ring = []
        self._next = 0

    def add(self, us):
        """Record one inference time in microseconds."""
        if self.count == 0 or us < self.min:
            self.min = us
        if us > self.max:
            self.max = us
        self.count += 1
        self.total += us
        if len(self._ring) < _RING:
            self._ring.append(us)
        else:
            self._ring[self._next] = us
            self._next = (self._next + 1) % _RING

    def summary(self):
        """Plain dict for the wire."""
        s = sorted(self._ring)
        n = len(s)
        return {
            "count": self.count,
            "min_us": self.min,
            "mean_us": (self.total // self.count) if self.count else 0,
            "p50_us": s[(n - 1) // 2] if n else 0,
            "p99_us": s[min(n - 1, (99 * n) // 100)] if n else 0,
            "max_us": self.max,
        }


def summarize(stats, power):
    """(models, packs) of the STATS reply for ``stats`` (a ``kpdev.device.stats.Stats``).

    ``power``, the board's power settings, labels the energy per run of each model (INFER's
    span) and of each pack (CLASSIFY's: pipeline + models): an estimate (idle_mw/active_mw
    model) is active_mw x the mean time of every run; a sensor's is the measured mean over the
    runs made while power was measured.
    """
    source = power.get("source") if power else None
    mw = (power.get("active_mw") or 0) if source == "estimate" else None
    models = {}
    for name in stats.models:
        lat = stats.models[name]
        m = lat.summary()
        e = stats.energies.get(name) or [0, 0, 0]
        e = _energy(source, mw, lat.count, lat.total, e[0], e[1], e[2])
        if e is not None:
            m["energy"] = e
        models[name] = m
    packs = {}
    for name in stats.packs:
        c = stats.packs[name]
        n = c[0]
        p = {"count": n, "pipeline_us": c[1] / n, "models_us": c[2] / n}
        p["mean_us"] = (c[1] + c[2]) / n
        e = _energy(source, mw, n, c[1] + c[2], c[3], c[4], c[5])
        if e is not None:
            # Each stage's share of the whole classification's time.
            share = e["mj"] / (c[1] + c[2]) if c[1] + c[2] else 0
            e["stages"] = {"pipeline": share * c[1], "models": share * c[2]}
            p["energy"] = e
        packs[name] = p
    return models, packs


def _energy(source, mw, count, us, uj, measured, measured_us):
    # Energy per run: an estimate is mw x the mean time of all ``count`` runs (``us`` in all);
    # a sensor's is the mean of the ``measured`` runs (``uj`` and ``measured_us`` in all).
    if mw is not None and count:
        return {
            "mj": mw * us / count / 1000000,
            "mw": mw,
            "count": count,
            "source": source,
            "estimated": True,
        }
    if source and measured:
        return {
            "mj": uj / measured / 1000,
            "mw": uj * 1000 / measured_us if measured_us else None,
            "count": measured,
            "source": source,
            "estimated": False,
        }
    return None
