# kpdev's emulated Cortex-M7 board: an ARM MPS2 with the AN500 FPGA image, as QEMU models it.
QEMU_ARCH = arm
QEMU_MACHINE = mps2-an500

CFLAGS += -mthumb -mcpu=cortex-m7 -mfloat-abi=hard -mfpu=fpv5-d16
CFLAGS += -DQEMU_SOC_MPS2
CFLAGS += -DMICROPY_HW_MCU_NAME='"Cortex-M7"'

LDSCRIPT = mcu/arm/mps2.ld
SRC_BOARD_O = shared/runtime/gchelper_native.o shared/runtime/gchelper_thumb2.o
MPY_CROSS_FLAGS += -march=armv7emdp

MICROPY_FLOAT_IMPL = double
SUPPORTS_HARDWARE_FP_DOUBLE = 1

# The 16 MB PSRAM (QEMU's main RAM on this machine, which a host file can back).
KPDEV_PSRAM_ADDR = 0x60000000
include $(BOARD_DIR)/../kpdev.mk
