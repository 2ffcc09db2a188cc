"""Fleets: one command on many boards at once (selection, named fleets, the concurrent runner)."""
