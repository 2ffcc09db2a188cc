"""kpdev: put ML models on small devices and measure them there.

The repository root is the ``kpdev`` package: ``protocol/``, ``device/``, ``accelerators/`` and
``host/`` import as ``kpdev.protocol`` and so on (see ``pyproject.toml``).
"""

__version__ = "0.1.0"
