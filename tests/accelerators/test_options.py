"""The load options declared per backend (accelerators/options.py) are the ones its code reads.

The host refuses any other option before an upload, so an option a backend reads but does not
declare could never be given, and one declared but never read would be accepted silently.
"""

import re
from pathlib import Path

from kpdev import accelerators
from kpdev.accelerators.options import OPTIONS

# How backend code reads a load option: meta.get("key" ...), meta["key"], (meta or {}).get("key".
# Keys with a leading underscore are the agent's own hand-over to a backend (the model area),
# never a load option: the host cannot send them, the device refuses them at MODEL_BEGIN.
_READS = re.compile(r"""meta(?: or \{\}\))?(?:\.get\(|\[)\s*["']([a-z][a-z0-9_]*)["']""")


def _reads(name):
    source = Path(accelerators.__file__).with_name(name + ".py").read_text()
    return set(_READS.findall(source))


def test_every_option_a_backend_reads_is_declared_and_no_other():
    assert set(OPTIONS) == set(accelerators.BACKENDS)
    for name, options in OPTIONS.items():
        assert _reads(name), name  # the pattern still finds this backend's reads
        assert set(options) == _reads(name), name


def test_the_pattern_finds_the_forms_backends_use():
    text = 'meta.get("a", 1); meta["b"]; (meta or {}).get("c"); other.get("d")'
    assert set(_READS.findall(text)) == {"a", "b", "c"}
