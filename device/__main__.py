"""Start the agent: ``python -m kpdev.device`` or ``micropython -m kpdev.device``.

``--help`` lists the options (``kpdev.device.startup`` reads them).
"""

import gc
import sys

# Collect between the agent's imports: what one import leaves behind is freed before the next
# allocates its code, so a small heap does not start out fragmented.
gc.collect()
from kpdev.protocol.errors import KpdevError  # noqa: E402  (LinkError derives from it)

gc.collect()
from kpdev.device import agent  # noqa: E402, F401  (imported first: see above)
from kpdev.protocol.compat import forget_modules  # noqa: E402

gc.collect()


def _start():
    # In a function of its own, so that no stale reference to the startup code outlives it.
    from kpdev.device import startup

    gc.collect()
    return startup.start(sys.argv[1:])


try:
    server, link = _start()
    # Serving never needs the startup code again: let the collector have it.
    forget_modules(("kpdev.device.startup", "kpdev.device.links"))
    gc.collect()
    server.serve(link)
except (KpdevError, ValueError, OSError) as e:
    sys.stderr.write("kpdev-agent: %s\n" % e)
    sys.exit(2)
except KeyboardInterrupt:
    pass
