"""What the runtime says about itself: name, version, memory, clock."""

import sys
import time

RUNTIME = sys.implementation.name
MICROPYTHON = RUNTIME == "micropython"

if MICROPYTHON:
    import gc

    try:
        import micropython as _mp
    except ImportError:
        _mp = None

    def ticks_us():
        """Microsecond tick counter (wraps; use ticks_diff)."""
        return time.ticks_us()

    def ticks_diff(a, b):
        """a - b for tick values."""
        return time.ticks_diff(a, b)

    def uptime_ms():
        """Milliseconds since the runtime started (wraps on boards after ~12 days)."""
        return time.ticks_ms()

    def memory():
        """Heap figures in bytes, after a collection so they count live objects only."""
        gc.collect()
        free = gc.mem_free()
        alloc = gc.mem_alloc()
        out = {"heap_free": free, "heap_used": alloc, "heap_total": free + alloc}
        if _mp is not None and hasattr(_mp, "mem_peak"):
            out["heap_peak"] = _mp.mem_peak()
        return out

    def runtime_version():
        """MicroPython version string."""
        v = sys.implementation.version
        return "%d.%d.%d" % (v[0], v[1], v[2])

else:
    _T0 = time.monotonic_ns()

    def ticks_us():
        """Microsecond counter."""
        return time.perf_counter_ns() // 1000

    def ticks_diff(a, b):
        """a - b for tick values."""
        return a - b

    def uptime_ms():
        """Milliseconds since the agent started."""
        return (time.monotonic_ns() - _T0) // 1000000

    def memory():
        """Resident set size now and at its peak, in bytes (Linux /proc)."""
        out = {}
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out["rss"] = int(line.split()[1]) * 1024
                    elif line.startswith("VmHWM:"):
                        out["rss_peak"] = int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        out["ram_free"] = int(line.split()[1]) * 1024
        except OSError:
            pass
        return out

    def runtime_version():
        """CPython version string."""
        return "%d.%d.%d" % sys.version_info[:3]


def collect():
    """Free memory now (MicroPython); a no-op elsewhere."""
    if MICROPYTHON:
        gc.collect()
