"""Host companion: board catalog, links, client, simulated boards and the ``kpdev`` CLI."""
