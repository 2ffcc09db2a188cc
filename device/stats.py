"""Counters and latency figures the STATS operation reports."""


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

    def summary(self):
        """Plain dict for the wire (the agent adds link, heap and uptime figures)."""
        models = {}
        for name in self.models:
            models[name] = self.models[name].summary()
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "errors": dict(self.errors),
            "models": models,
        }
