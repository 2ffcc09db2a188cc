"""The clock or performance mode behind CLOCK_GET and CLOCK_SET, one kind per board.

    akida         the Akida SoC's clock modes (a board whose power source is akida)
    machine.freq  the CPU frequency on MicroPython, in Hz (modes: the ``freqs`` setting)
    cpufreq       the Linux cpufreq governor of every CPU, under ``cpufreq_root`` (default
                  /sys/devices/system/cpu): cpu*/cpufreq/scaling_governor

Each control answers ``clock_get()`` and ``clock_set(mode)`` with the same map: ``kind``,
``mode``, ``modes``, ``writable`` and ``freq_hz``.  Where there is no clock to control the
request is refused with E_NOT_IMPLEMENTED; where the system will not let it be set, E_POWER.
"""

import os
import sys

from kpdev.device import sysinfo
from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_E_NOT_IMPLEMENTED = const(9)
_E_BAD_VALUE = const(25)
_E_POWER = const(26)

CPUFREQ_ROOT = "/sys/devices/system/cpu"


class MachineFreq:
    """machine.freq(): the CPU frequency of a MicroPython board, modes in Hz."""

    kind = "machine.freq"

    def __init__(self, freqs):
        try:
            import machine
        except ImportError:
            machine = None
        if machine is None or not hasattr(machine, "freq"):
            raise DeviceError(
                "the clock cannot be read or set here: this MicroPython port (%s) has no "
                "machine.freq()" % sys.platform,
                _E_NOT_IMPLEMENTED,
            )
        self.machine = machine
        self.freqs = freqs or []

    def _hz(self):
        hz = self.machine.freq()
        return hz[0] if isinstance(hz, tuple) else hz  # stm32: (sysclk, hclk, pclk1, pclk2)

    def clock_get(self):
        """The CPU frequency now."""
        hz = self._hz()
        modes = [str(f) for f in self.freqs] or [str(hz)]
        out = {"kind": self.kind, "mode": str(hz), "modes": modes, "writable": True}
        out["freq_hz"] = hz
        return out

    def clock_set(self, mode):
        """Set the CPU frequency to ``mode`` Hz (one of the ``freqs`` setting, when given)."""
        try:
            hz = int(mode)
        except ValueError:
            raise DeviceError("clock mode %r is not a frequency in Hz" % mode, _E_BAD_VALUE)
        if self.freqs and hz not in self.freqs:
            raise DeviceError(
                "%d Hz is not one of this board's clock modes: %s"
                % (hz, ", ".join([str(f) for f in self.freqs])),
                _E_BAD_VALUE,
            )
        try:
            self.machine.freq(hz)
        except ValueError as e:
            raise DeviceError("machine.freq(%d) refused: %s" % (hz, e), _E_BAD_VALUE)
        return self.clock_get()


def _read(path):
    with open(path) as f:
        return f.read().strip()


class CpuFreq:
    """The cpufreq governor of every CPU under ``root`` (Linux sysfs)."""

    kind = "cpufreq"

    def __init__(self, root):
        self.root = root
        try:
            entries = os.listdir(root)
        except OSError:
            entries = []
        cpus = []
        for e in entries:
            path = "%s/%s/cpufreq/scaling_governor" % (root, e)
            if e.startswith("cpu") and e[3:].isdigit() and os.path.exists(path):
                cpus.append((int(e[3:]), path))
        if not cpus:
            raise DeviceError(
                "the clock cannot be read or set here: no cpufreq (nothing matches "
                "%s/cpu*/cpufreq/scaling_governor)" % root,
                _E_NOT_IMPLEMENTED,
            )
        cpus.sort()
        self.files = [path for _, path in cpus]

    def _writable(self, path):
        # Mode bits as well as access(): root may write any file, but the kernel refuses a
        # sysfs attribute that has no write bit.
        return bool(os.stat(path).st_mode & 0o222) and os.access(path, os.W_OK)

    def clock_get(self):
        """The governor now (None when the CPUs differ, then ``cpus`` lists them)."""
        try:
            governors = [_read(p) for p in self.files]
        except OSError as e:
            raise DeviceError("cannot read the cpufreq governor: %s" % e, _E_POWER)
        base = self.files[0][: -len("scaling_governor")]
        try:
            modes = _read(base + "scaling_available_governors").split()
        except OSError:
            modes = sorted(set(governors))
        try:
            freq_hz = int(_read(base + "scaling_cur_freq")) * 1000
        except (OSError, ValueError):
            freq_hz = None
        out = {
            "kind": self.kind,
            "mode": governors[0] if len(set(governors)) == 1 else None,
            "modes": modes,
            "writable": all(self._writable(p) for p in self.files),
            "freq_hz": freq_hz,
        }
        if out["mode"] is None:
            out["cpus"] = {}
            for i in range(len(self.files)):
                out["cpus"][self.files[i].split("/")[-3]] = governors[i]
        return out

    def clock_set(self, mode):
        """Set every CPU's governor to ``mode`` (one of scaling_available_governors)."""
        now = self.clock_get()
        if mode not in now["modes"]:
            raise DeviceError(
                "no cpufreq governor %r here; the governors are %s"
                % (mode, ", ".join(now["modes"])),
                _E_BAD_VALUE,
            )
        for path in self.files:
            if not self._writable(path):
                raise DeviceError(
                    "the cpufreq governor is read-only here (%s): run the agent as root on a "
                    "kernel that lets the governor be set" % path,
                    _E_POWER,
                )
        for path in self.files:
            try:
                with open(path, "w") as f:
                    f.write(mode)
            except OSError as e:
                raise DeviceError(
                    "cannot set the cpufreq governor: %s: %s" % (path, e.strerror or e), _E_POWER
                )
        return self.clock_get()


def control(agent):
    """The clock control of the agent's board."""
    settings = agent.power_config
    if settings.get("source") == "akida":
        from kpdev.device.power import meter_of

        return meter_of(agent).source
    if sysinfo.MICROPYTHON:
        return MachineFreq(settings.get("freqs"))
    return CpuFreq(settings.get("cpufreq_root") or CPUFREQ_ROOT)
