// kpdev's settings for MicroPython's ports/qemu, included before every C file (kpdev.mk).

// Where MicroPython waits for an event: sleep until the next interrupt (SysTick, at most a
// millisecond) once the UART has been quiet for a while, as a board's firmware does, so that
// an idle agent leaves the host's CPU alone; while bytes stream in, keep polling (the UART
// holds one byte and raises no interrupt the port handles, so a sleep per byte would cap the
// link at a byte a millisecond).  kpdev_board.c.
void kpdev_idle_wait(void);
#define MICROPY_INTERNAL_WFE(TIMEOUT_MS) kpdev_idle_wait()
