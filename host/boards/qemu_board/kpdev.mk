# What kpdev's emulated boards add to MicroPython's ports/qemu (included by each board's
# mpconfigboard.mk after it set KPDEV_PSRAM_ADDR).  Built by `kpdev firmware build`.

# The PSRAM is the board's flash (kpdev.host.boards.qemu has the layout): a ROMFS partition at
# its start, which MicroPython mounts at /rom; littlefs further on, mounted by kpdev_boot.
MICROPY_HW_ROMFS_PART0_START = $(KPDEV_PSRAM_ADDR)
MICROPY_HW_ROMFS_PART0_SIZE = 0x00200000
MICROPY_VFS_LFS2 = 1

# Where the host loads the agent's options (SSRAM2, which the firmware does not use).
KPDEV_ARGS_ADDR = 0x20000000

CFLAGS += -DKPDEV_ARGS_ADDR=$(KPDEV_ARGS_ADDR) -DKPDEV_PSRAM_ADDR=$(KPDEV_PSRAM_ADDR)
# os.urandom, for the agent's session nonces (kpdev_board.c seeds it from the host).
CFLAGS += -DMICROPY_PY_OS_URANDOM=1
CFLAGS += -include $(BOARD_DIR)/../kpdev_config.h
SRC_C += $(BOARD_DIR)/../kpdev_board.c
LDFLAGS += --wrap=pyexec_friendly_repl --wrap=ticks_us --wrap=mp_hal_get_random
LDFLAGS += --wrap=uart_rx_chr
FROZEN_MANIFEST = $(BOARD_DIR)/../manifest.py
