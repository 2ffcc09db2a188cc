"""Fleets: one command on many boards at once.

- ``select``: which boards a command runs on: catalog boards, instances of a simulated board
  (``sim-mcu*3``, ``sim-mcu#2``), ports, labgrid places; ``opened`` acquires places for a run.
- ``store``: named fleets in fleets.json beside the user's config.
- ``runner``: work on every member at once (a thread a member), failures with their reason, and
  the ``ShardQueue`` a sharded run draws its chunks from.
- ``evaluate``: ``kpdev eval`` --each and --shard on a fleet, the fleet measurements document.
- ``status``: each member's state for ``kpdev fleet list``.
- ``labgrid``: acquiring and releasing labgrid places (imported only when a selection names one).
"""
