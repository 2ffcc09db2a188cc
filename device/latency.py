"""Inference latencies of one model, as the STATS operation reports them."""

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
