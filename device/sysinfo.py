"""What the runtime says about itself: name, version, memory, clock."""

import sys
import time

from kpdev.protocol.compat import MICROPYTHON, RUNTIME  # noqa: F401  (RUNTIME: sysinfo.RUNTIME)

if MICROPYTHON:
    import gc

    # The board's own tick functions, bound rather than wrapped: no code of ours to hold in RAM.
    ticks_us = time.ticks_us  # microsecond tick counter (wraps; use ticks_diff)
    ticks_diff = time.ticks_diff  # a - b for tick values
    if sys.platform in ("linux", "darwin"):
        # The unix port's ticks count from the host's boot, not from this process's start.
        _T0 = time.ticks_ms()

        def uptime_ms():
            """Milliseconds since the agent started (the unix port's ticks start at boot)."""
            return time.ticks_diff(time.ticks_ms(), _T0)

    else:
        # ms since the board started (wraps after ~12 days)
        uptime_ms = time.ticks_ms

    # High-water marks of the heap in bytes (see memory()).  ``micropython.mem_peak()`` cannot
    # stand in: on the unix port it counts every byte ever allocated, 31 MB within minutes.
    _peak = 0
    _live_peak = 0

    def collect():
        """Collect garbage now; returns the heap still in use (live objects)."""
        global _live_peak
        gc.collect()
        used = gc.mem_alloc()
        if used > _live_peak:
            _live_peak = used
        return used

    def settle():
        """After a request: note the heap in use, garbage and all, then collect on a small heap.

        A heap of up to 512 KB is collected after every request (a few ms on such a board), so
        each request starts on a clean heap and the figure noted is what it took at its highest.
        A bigger heap is collected once more than half of it is in use: a collection takes time
        in proportion to the heap.
        """
        global _peak
        used = gc.mem_alloc()
        if used > _peak:
            _peak = used
        free = gc.mem_free()
        if free < used or free + used <= 512 * 1024:
            collect()

    def memory(reset_peaks=False):
        """Heap figures in bytes, taken after a collection.

        ``heap_used``, ``heap_free``, ``heap_total``: live objects now, what is free, the heap's
        size.  ``heap_peak``: the most heap found in use when a request had been answered,
        counting the garbage not yet collected; an upper bound of the heap the requests needed
        (loose on a big heap, which is seldom collected), except that a request which fills the
        heap makes MicroPython collect on its own and may go unseen.  ``heap_live_peak``: the
        most heap found in use right after one of the agent's collections, live objects only: a
        lower bound.  ``reset_peaks`` restarts both from the heap in use now, after reporting.
        """
        global _peak, _live_peak
        used = gc.mem_alloc()
        if used > _peak:
            _peak = used
        used = collect()
        free = gc.mem_free()
        out = {
            "heap_free": free,
            "heap_used": used,
            "heap_total": free + used,
            "heap_peak": _peak,
            "heap_live_peak": _live_peak,
        }
        if reset_peaks:
            _peak = _live_peak = used
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

    def collect():
        """Nothing to do: CPython frees memory as it goes."""

    def settle():
        """Nothing to do: CPython frees memory as it goes."""

    def memory(reset_peaks=False):
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
