"""Boards: the catalog, and the simulated boards that stand in for real ones.

- ``catalog``: ``boards.yml`` (shipped) merged with the user's own; ``Board``, ``load_boards``,
  ``get_board``.
- ``sim``: a simulated board's state folder, its lock and the agent command line (MicroPython
  unix port or CPython).
- ``simserver``: one background server a board, holding its agent and lending it to one command
  at a time over a Unix socket; ``ensure_running``, ``stop``, ``status``.
- ``simbridge``: a running simulated board served on a pty or a TCP port, for programs that are
  not kpdev.
- ``qemu``: the emulated Cortex-M boards: MicroPython firmware built with kpdev's board files
  (``qemu_board/``) and run under qemu-system-arm, the agent on the board's UART
  (docs/qemu-boards.md).
"""
