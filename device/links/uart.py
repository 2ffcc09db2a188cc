"""A microcontroller UART as a link."""

try:
    import select
except ImportError:
    import uselect as select


class UartLink:
    """``machine.UART`` on a microcontroller."""

    def __init__(self, uart_id, baud=115200):
        import machine

        self.name = "uart:%s" % uart_id
        self.gap_ms = 50 + 40000 // baud  # the longest pause inside a frame (device/agent.py)
        self._uart = machine.UART(uart_id, baud, timeout=0, rxbuf=2048)
        self._poll = select.poll()
        self._poll.register(self._uart, select.POLLIN)
        self._buf = bytearray(0)
        self._mv = memoryview(self._buf)

    def read(self, n, timeout_ms=1000):
        """Up to ``n`` bytes; empty when nothing arrived within the timeout."""
        for _ in self._poll.ipoll(timeout_ms):
            break
        else:
            return b""
        # What has arrived, into one buffer allocated at the first read (``read(n)`` would
        # allocate n bytes per call).
        uart = self._uart
        k = uart.any() if hasattr(uart, "any") else n
        if len(self._buf) < n:
            self._buf = bytearray(n)
            self._mv = memoryview(self._buf)
        got = uart.readinto(self._mv[: min(k, n) or 1])
        return bytes(self._mv[:got]) if got else b""

    def write(self, data):
        """Write all of ``data``."""
        mv = memoryview(data)
        while mv:
            n = self._uart.write(mv)
            mv = mv[n or 0 :]

    def close(self):
        """Release the UART."""
        self._uart.deinit()
