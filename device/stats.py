"""Counters, latency and energy figures the STATS operation reports."""


class Stats:
    """Everything the agent counts since start or the last reset."""

    # The parser counters when the current TCP client connected (in agent._on_connect's
    # order), set by the agent: STATS tells this connection's counts from those since start.
    link = None

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

    def summary(self, power=None):
        """Plain dict for the wire (the agent adds link, heap and uptime figures).

        ``power``, the board's power settings, labels each model's energy per inference: an
        estimate (idle_mw/active_mw model) is active_mw x the mean latency of every inference;
        a sensor's is the measured mean over the inferences run while power was measured.
        """
        source = power.get("source") if power else None
        models = {}
        for name in self.models:
            lat = self.models[name]
            m = lat.summary()
            e = self.energies.get(name)
            if source == "estimate" and lat.count:
                mw = power.get("active_mw") or 0
                m["energy"] = {
                    "mj": mw * lat.total / lat.count / 1000000,
                    "mw": mw,
                    "count": lat.count,
                    "source": source,
                    "estimated": True,
                }
            elif source and e:
                m["energy"] = {
                    "mj": e[0] / e[1] / 1000,
                    "mw": e[0] * 1000 / e[2] if e[2] else None,
                    "count": e[1],
                    "source": source,
                    "estimated": False,
                }
            models[name] = m
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "errors": dict(self.errors),
            "models": models,
        }
