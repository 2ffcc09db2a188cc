// kpdev's settings for MicroPython's ports/qemu, included before every C file (kpdev.mk).

// Wait for the next interrupt (SysTick: at most a millisecond) where MicroPython waits for an
// event, as a board's firmware does: an idle agent then leaves the host's CPU alone instead of
// spinning the emulated one.
#define MICROPY_INTERNAL_WFE(TIMEOUT_MS) __asm__ volatile ("wfi")
