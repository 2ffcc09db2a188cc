"""``python -m kpdev.host.cli``: the ``kpdev`` command."""

from kpdev.host.cli.app import main

main()
