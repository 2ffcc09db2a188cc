"""Counters and latency figures the STATS operation reports."""

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
            lat = self.models[model] = Latency()
        lat.add(us)

    def summary(self):
        """Plain dict for the wire (the agent adds link, heap and uptime figures)."""
        models = {}
        for name in self.models:
            models[name] = self.models[name].summary()
        errors = {}
        for code in self.errors:
            errors[code] = self.errors[code]
        return {
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "errors": errors,
            "models": models,
        }
