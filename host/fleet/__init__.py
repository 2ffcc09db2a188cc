"""Fleets: many boards at once, on this machine and across a lab (labgrid places)."""
