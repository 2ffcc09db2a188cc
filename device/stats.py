"""Counters, latency and energy figures the STATS operation reports."""


class Stats:
    """Everything the agent counts since start or the last reset."""

    def __init__(self):
        self.reset()

    def reset(self):
        """Zero every counter."""
        self.frames_in = 0
        self.frames_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors = {}
        self.models = {}
        self.energies = {}  # model -> [µJ, inferences, µs] measured by the power source
        # pack -> [classifications, pipeline µs, models µs, µJ, classifications, µs measured]
        self.packs = {}

    def error(self, code):
        """Count one ERROR frame sent with ``code``."""
        self.errors[code] = self.errors.get(code, 0) + 1

    def inference(self, model, us):
        """Record one inference of ``model``."""
        lat = self.models.get(model)
        if lat is None:
            from kpdev.device.latency import Latency  # only a board that runs models needs it

            lat = self.models[model] = Latency()
        lat.add(us)

    def energy(self, model, uj, us):
        """Record the measured energy (µJ) of one inference of ``model`` that took ``us``."""
        e = self.energies.get(model)
        if e is None:
            self.energies[model] = [uj, 1, us]
        else:
            e[0] += uj
            e[1] += 1
            e[2] += us

    def classify(self, pack, tf, tm, uj):
        """Record one classification by ``pack``: its pipeline and model-graph µs, and the energy
        (µJ) a sensor measured over both (None when none did)."""
        c = self.packs.get(pack)
        if c is None:
            c = self.packs[pack] = [0, 0, 0, 0, 0, 0]
        c[0] += 1
        c[1] += tf
        c[2] += tm
        if uj is not None:
            c[3] += uj
            c[4] += 1
            c[5] += tf + tm

    def summary(self, power=None):
        """Plain dict for the wire (the agent adds link, heap and uptime figures).

        ``power``, the board's power settings, labels the energy per run of each model (INFER's
        span) and of each pack (CLASSIFY's: pipeline + models): an estimate (idle_mw/active_mw
        model) is active_mw x the mean time of every run; a sensor's is the measured mean over
        the runs made while power was measured.
        """
        source = power.get("source") if power else None
        mw = (power.get("active_mw") or 0) if source == "estimate" else None
        models = {}
        for name in self.models:
            lat = self.models[name]
            m = lat.summary()
            e = self.energies.get(name) or [0, 0, 0]
            e = _energy(source, mw, lat.count, lat.total, e[0], e[1], e[2])
            if e is not None:
                m["energy"] = e
            models[name] = m
        packs = {}
        for name in self.packs:
            c = self.packs[name]
            n = c[0]
            p = {"count": n, "pipeline_us": c[1] / n, "models_us": c[2] / n}
            p["mean_us"] = (c[1] + c[2]) / n
            e = _energy(source, mw, n, c[1] + c[2], c[3], c[4], c[5])
            if e is not None:
                # Each stage's share of the whole classification's time, at its power.
                share = e["mj"] / (c[1] + c[2]) if c[1] + c[2] else 0
                e["stages"] = {"pipeline": share * c[1], "models": share * c[2]}
                p["energy"] = e
            packs[name] = p
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "errors": dict(self.errors),
            "models": models,
            "packs": packs,
        }


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
