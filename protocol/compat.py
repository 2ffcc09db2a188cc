"""What differs between MicroPython and CPython: one place for protocol/, device/, accelerators/.

``RUNTIME`` and ``MICROPYTHON`` say which runtime this is; ``const`` is MicroPython's own or,
on CPython, the identity; ``forget_modules`` lets MicroPython free the code of modules no longer
needed.  It lives in protocol/ because protocol/ imports nothing else of kpdev.

MicroPython's compiler folds ``_NAME = const(N)`` on the identifier ``const`` alone, wherever it
was imported from: ``from kpdev.protocol.compat import const`` keeps ``_NAME`` out of a module's
globals as ``from micropython import const`` does (tests/test_device_shims.py checks this on the
micropython binary).
"""

import sys

RUNTIME = sys.implementation.name  # "micropython" or "cpython"
MICROPYTHON = RUNTIME == "micropython"

try:
    from micropython import const
except ImportError:

    def const(x):
        """CPython: the value itself."""
        return x


def forget_modules(names):
    """On MicroPython, drop modules from ``sys.modules`` and from their package.

    The collector then frees their code once nothing else refers to it (a collection is the
    caller's to run).  CPython keeps every module.
    """
    if not MICROPYTHON:
        return
    for name in names:
        sys.modules.pop(name, None)
        dot = name.rfind(".")
        package = sys.modules.get(name[:dot])
        if package is not None and hasattr(package, name[dot + 1 :]):
            delattr(package, name[dot + 1 :])
