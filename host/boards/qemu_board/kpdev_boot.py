# Boot code of kpdev's emulated Cortex-M boards, frozen into their MicroPython firmware.
#
# Runs once at power-on, before the REPL (kpdev_board.c), as a board's main.py does:
# - the agent's options come from a block the host loads into RAM at kpdev_board.ARGS_ADDR:
#   b"KPDA", a little-endian u32 length, then the options separated by NUL bytes.  None there
#   (the firmware run by hand): straight to the REPL.
# - the PSRAM is the board's flash: a ROMFS image at its start (MicroPython mounts it at /rom,
#   /rom/lib holds the agent), a raw model area, then a littlefs filesystem, mounted at /flash,
#   for the agent's --state (models and state survive a restart of QEMU).
# - the agent serves on the UART (stdin/stdout); its exit status ends QEMU with the same
#   status, so a supervisor on the host sees REBOOT (75) and errors; machine.reset() ends QEMU
#   with 0, which the host turns into a fresh start of the same board.
# Layout constants: kpdev.host.boards.qemu (the host writes the images, this reads them).

import sys

import kpdev_board
import micropython
import uctypes
import vfs

_LFS_OFFSET = micropython.const(6 * 1024 * 1024)
_LFS_SIZE = micropython.const(10 * 1024 * 1024)
_BLOCK = micropython.const(4096)


def _options():
    head = uctypes.bytearray_at(kpdev_board.ARGS_ADDR, 8)
    if bytes(head[:4]) != b"KPDA":
        return None
    n = head[4] | head[5] << 8 | head[6] << 16 | head[7] << 24
    text = bytes(uctypes.bytearray_at(kpdev_board.ARGS_ADDR + 8, n)).decode()
    return text.split("\0") if text else []


class _Blocks:
    # A littlefs block device over memory: the file-backed PSRAM, so it costs no heap.
    def __init__(self, addr, size):
        self.mem = memoryview(uctypes.bytearray_at(addr, size))
        self.count = size // _BLOCK

    def readblocks(self, num, buf, off=0):
        start = num * _BLOCK + off
        buf[:] = self.mem[start : start + len(buf)]

    def writeblocks(self, num, buf, off=None):
        if off is None:
            off = 0
        start = num * _BLOCK + off
        self.mem[start : start + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.count
        if op == 5:  # block size
            return _BLOCK
        if op == 6:  # erase: nothing to do in RAM
            return 0
        return None


def _mount():
    blocks = _Blocks(kpdev_board.PSRAM_ADDR + _LFS_OFFSET, _LFS_SIZE)
    try:
        vfs.mount(vfs.VfsLfs2(blocks), "/flash")
    except OSError:
        # A blank flash: format it, as a board's firmware does on first boot.
        vfs.VfsLfs2.mkfs(blocks)
        vfs.mount(vfs.VfsLfs2(blocks), "/flash")
    import os

    os.chdir("/flash")


def _run(argv):
    sys.argv.clear()
    sys.argv.extend(["kpdev"] + argv)
    micropython.kbd_intr(-1)  # Ctrl-C is data on the agent's link
    status = 0
    try:
        import kpdev.device.__main__  # noqa: F401  (serves until the agent ends)
    except SystemExit as e:
        status = e.args[0] if e.args and isinstance(e.args[0], int) else 1
    except Exception as e:  # noqa: BLE001  (anything else is the agent's bug: report, stop)
        kpdev_board.log("kpdev-boot: %s: %s\n" % (type(e).__name__, e))
        status = 70
    finally:
        micropython.kbd_intr(3)
    if status:
        kpdev_board.exit(status)


def main():
    argv = _options()
    if argv is None:
        return
    try:
        _mount()
    except OSError as e:
        kpdev_board.log("kpdev-boot: cannot mount the flash filesystem: %s\n" % e)
        kpdev_board.exit(71)
    _run(argv)


main()
