"""The power event ring: one case "[capacity, [pushes before each take]]" a line in (JSON), what
each take gave out.  Runs unchanged under CPython and MicroPython (tests/device/test_power.py).
"""

import json
import sys

from kpdev.device.power import Ring


def handle(line):
    capacity, pushes = json.loads(line)
    ring = Ring(capacity)
    takes = []
    for n in pushes:
        for i in range(n):
            ring.push((i, None, None, i * 10))
        events, dropped = ring.take()
        takes.append([[list(e) for e in events], dropped])
    return json.dumps(takes)


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        line = line.strip()
        if line:
            print(handle(line))


if __name__ == "__main__":
    main()
