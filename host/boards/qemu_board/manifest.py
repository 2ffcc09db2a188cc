# Frozen into kpdev's emulated-board firmware: the boot code only (the agent is in ROMFS).
freeze("$(BOARD_DIR)/..", "kpdev_boot.py")  # noqa: F821  (makemanifest.py defines it)
