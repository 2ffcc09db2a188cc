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

    def readinto(self, buf, timeout_ms=1000):
        """What has arrived, up to ``len(buf)`` bytes, into ``buf``; 0 after the timeout."""
        for _ in self._poll.ipoll(timeout_ms):
            break
        else:
            return 0
        # With timeout=0 the UART hands over what its receive buffer holds, up to len(buf).
        return self._uart.readinto(buf) or 0

    def write(self, data):
        """Write all of ``data``."""
        mv = memoryview(data)
        while mv:
            n = self._uart.write(mv)
            mv = mv[n or 0 :]

    def close(self):
        """Release the UART."""
        self._uart.deinit()
