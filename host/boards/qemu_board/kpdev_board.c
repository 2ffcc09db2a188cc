// kpdev's additions to MicroPython's ports/qemu for its emulated Cortex-M boards.
//
// Written for kpdev (MIT, as the rest of kpdev); linked into the stock port through the board
// directory and the linker's --wrap, so that no upstream file is changed:
// - at boot, before the REPL, run the frozen module kpdev_boot (starts the agent, as a board's
//   main.py does);
// - ticks_us that never goes backwards (the stock one reads the millisecond counter and SysTick
//   apart, so a SysTick wrap between the two reads loses a millisecond);
// - mp_hal_time_ns, which littlefs needs to link;
// - a wait that sleeps (WFI) once the UART has been quiet (kpdev_config.h);
// - os.urandom from a seed the host loads with each start (the stock port's generator starts
//   from the same state at every boot, so a session nonce would repeat after a reset);
// - a small `kpdev_board` module: exit(status) ends QEMU with that status (semihosting
//   SYS_EXIT_EXTENDED), log(text) writes to QEMU's stderr (semihosting SYS_WRITE0), so the
//   host's log gets the agent's messages and the UART carries frames only.

#include <stdbool.h>
#include <stdint.h>

#include "py/mphal.h"
#include "py/runtime.h"
#include "shared/runtime/pyexec.h"
#include "lib/crypto-algorithms/sha256.h"

#define SYSTICK_RVR (*(volatile uint32_t *)(0xE000E014))
#define SYSTICK_CVR (*(volatile uint32_t *)(0xE000E018))

#define SEMIHOSTING_SYS_WRITE0 (0x04)
#define SEMIHOSTING_SYS_EXIT (0x18)
#define SEMIHOSTING_SYS_EXIT_EXTENDED (0x20)
#define ADP_STOPPED_APPLICATION_EXIT (0x20026)

uintptr_t ticks_ms(void);
int __real_pyexec_friendly_repl(void);

static uint32_t semihosting_call(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__ ("r0") = op;
    register const void *r1 __asm__ ("r1") = arg;
    __asm__ volatile ("bkpt 0xab" : "+r" (r0) : "r" (r1) : "memory");
    return r0;
}

// -- boot ------------------------------------------------------------------------------------

static bool booted;

int __wrap_pyexec_friendly_repl(void) {
    if (!booted) {
        booted = true;
        // Returns when the agent ends (or no agent was configured): the REPL follows, as on a
        // board whose main.py returns.
        pyexec_frozen_module("kpdev_boot.py", false);
    }
    return __real_pyexec_friendly_repl();
}

// -- time ------------------------------------------------------------------------------------

static uint32_t last_us;

uintptr_t __wrap_ticks_us(void) {
    uint32_t ms, cvr, reload;
    // Read the millisecond count and SysTick's down-counter until no SysTick interrupt came
    // between the two reads, so that both belong to the same millisecond.
    do {
        ms = ticks_ms();
        cvr = SYSTICK_CVR;
        reload = SYSTICK_RVR;
    } while (ms != ticks_ms());
    uint32_t us = ms * 1000u + (uint32_t)(((uint64_t)(reload - cvr) * 1000u) / (reload + 1u));
    // A wrap the interrupt has not counted yet (interrupts off) still reads as a small
    // down-counter value: never report less than before.
    if ((int32_t)(us - last_us) < 0) {
        us = last_us;
    }
    last_us = us;
    return us;
}

// -- waiting -------------------------------------------------------------------------------

#define QUIET_MS (20)

int __real_uart_rx_chr(void);
static uint32_t last_rx_ms;

int __wrap_uart_rx_chr(void) {
    int c = __real_uart_rx_chr();
    if (c >= 0) {
        last_rx_ms = ticks_ms();
    }
    return c;
}

void kpdev_idle_wait(void) {
    if ((uint32_t)(ticks_ms() - last_rx_ms) > QUIET_MS) {
        __asm__ volatile ("wfi");
    }
}

uint64_t mp_hal_time_ns(void) {
    // No real-time clock on the board: time since power-on.
    return (uint64_t)__wrap_ticks_us() * 1000u;
}

// -- random bytes ----------------------------------------------------------------------------

// 32 random bytes from the host after the magic "KPDS" (kpdev.host.boards.qemu writes them).
#define SEED_ADDR (KPDEV_ARGS_ADDR + 0x1000)

static uint32_t random_block;

void __wrap_mp_hal_get_random(size_t n, uint8_t *buf) {
    // SHA-256 of (seed, block number, SysTick) in counter mode.
    const uint8_t *seed = (const uint8_t *)SEED_ADDR;
    while (n) {
        CRYAL_SHA256_CTX ctx;
        uint8_t out[SHA256_BLOCK_SIZE];
        uint32_t extra[2] = { random_block++, SYSTICK_CVR };
        sha256_init(&ctx);
        sha256_update(&ctx, seed, 36);
        sha256_update(&ctx, (const uint8_t *)extra, sizeof(extra));
        sha256_final(&ctx, out);
        size_t k = n < sizeof(out) ? n : sizeof(out);
        for (size_t i = 0; i < k; ++i) {
            *buf++ = out[i];
        }
        n -= k;
    }
}

// -- the kpdev_board module ------------------------------------------------------------------

static mp_obj_t kpdev_board_exit(mp_obj_t status_in) {
    mp_int_t status = mp_obj_get_int(status_in);
    uint32_t block[2] = { ADP_STOPPED_APPLICATION_EXIT, (uint32_t)status };
    semihosting_call(SEMIHOSTING_SYS_EXIT_EXTENDED, block);
    // A host without SYS_EXIT_EXTENDED: exit with what SYS_EXIT can say.
    semihosting_call(SEMIHOSTING_SYS_EXIT, (const void *)(status == 0 ? ADP_STOPPED_APPLICATION_EXIT : 1));
    for (;;) {
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(kpdev_board_exit_obj, kpdev_board_exit);

static mp_obj_t kpdev_board_log(mp_obj_t text_in) {
    size_t len;
    const char *text = mp_obj_str_get_data(text_in, &len);
    // SYS_WRITE0 takes a NUL-terminated string: send it in pieces through a small buffer.
    char buf[65];
    while (len) {
        size_t n = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;
        for (size_t i = 0; i < n; ++i) {
            buf[i] = text[i] ? text[i] : ' ';
        }
        buf[n] = 0;
        semihosting_call(SEMIHOSTING_SYS_WRITE0, buf);
        text += n;
        len -= n;
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(kpdev_board_log_obj, kpdev_board_log);

static const mp_rom_map_elem_t kpdev_board_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_kpdev_board) },
    { MP_ROM_QSTR(MP_QSTR_exit), MP_ROM_PTR(&kpdev_board_exit_obj) },
    { MP_ROM_QSTR(MP_QSTR_log), MP_ROM_PTR(&kpdev_board_log_obj) },
    { MP_ROM_QSTR(MP_QSTR_ARGS_ADDR), MP_ROM_INT(KPDEV_ARGS_ADDR) },
    { MP_ROM_QSTR(MP_QSTR_PSRAM_ADDR), MP_ROM_INT(KPDEV_PSRAM_ADDR) },
};
static MP_DEFINE_CONST_DICT(kpdev_board_globals, kpdev_board_globals_table);

const mp_obj_module_t kpdev_board_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&kpdev_board_globals,
};

MP_REGISTER_MODULE(MP_QSTR_kpdev_board, kpdev_board_module);
