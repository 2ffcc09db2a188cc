# kpdev's emulated Cortex-M3 board: an ARM MPS2 with the AN385 FPGA image, as QEMU models it.
QEMU_ARCH = arm
QEMU_MACHINE = mps2-an385

CFLAGS += -mthumb -mcpu=cortex-m3 -mfloat-abi=soft
CFLAGS += -DQEMU_SOC_MPS2
CFLAGS += -DMICROPY_HW_MCU_NAME='"Cortex-M3"'

LDSCRIPT = mcu/arm/mps2.ld
SRC_BOARD_O = shared/runtime/gchelper_native.o shared/runtime/gchelper_thumb2.o
MPY_CROSS_FLAGS += -march=armv7m

# The 16 MB PSRAM (QEMU's main RAM on this machine, which a host file can back).
KPDEV_PSRAM_ADDR = 0x21000000
include $(BOARD_DIR)/../kpdev.mk
