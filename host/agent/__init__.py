"""The agent as a MicroPython board holds it: its files, how they are made and put on a board.

- ``build``: the agent's file tree for a board (``.mpy`` for its CPU, only the backends it can
  run, a ``main.py`` that starts it at boot), and installing or stopping it with mpremote.
- ``romfs``: the same tree as a ROMFS image, so its code runs from flash.
- ``trial``: trial loads on this machine: the free heap a MicroPython board needs to load a
  model (``heap_to_load``), and whether a Linux board's runtime loads it (``load_here``).
- ``micropython``: the MicroPython tools (unix port, mpy-cross, mpremote) and staging the device
  code for them.
"""
