"""Counters, latency and energy figures the STATS operation reports."""


class Stats:
    """Everything the agent counts since start or the last reset."""

    # The parser counters of the sessions that ended (in Session.counters' order), set by the
    # agent: STATS adds those of the open sessions for the counts since start.
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
        self.duplicates = 0  # requests sent again, answered from the agent's reply cache
        self.models = {}
        self.energies = {}  # model -> [µJ, inferences, µs] measured by the power source
        # pack -> [classifications, pipeline µs, models µs, µJ, classifications, µs measured],
        # counted by kpdev.device.packrun
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

    def summary(self, power=None):
        """Plain dict for the wire (the agent adds link, heap and uptime figures).

        ``power``, the board's power settings, labels the energy per run of each model (INFER's
        span) and of each pack (CLASSIFY's: pipeline + models): an estimate (idle_mw/active_mw
        model) is active_mw x the mean time of every run; a sensor's is the measured mean over
        the runs made while power was measured.
        """
        models = packs = None
        if self.models or self.packs:
            from kpdev.device.latency import summarize  # imported by the first inference

            models, packs = summarize(self, power)
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "errors": dict(self.errors),
            "duplicates": self.duplicates,
            "models": models or {},
            "packs": packs or {},
        }
