"""The device framing (FrameParser, FrameWriter): one command a line in, one answer a line out.

Runs unchanged under CPython and MicroPython (tests/protocol/test_framing.py).
"""

import sys

from kpdev.protocol.framing import FrameParser, FrameWriter

parser = None


def describe(f):
    payload = "-" if f.payload is None else bytes(f.payload).hex()
    return "%d,%d,%d,%s,%d,%d" % (f.op, f.rid, f.flags, payload, f.counter, f.error)


def frames_text(frames):
    return " ".join([describe(f) for f in frames]) or "none"


def feed(data):
    """Feed ``data`` as the agent does: copied into ``space()``, then ``filled(n)``."""
    frames = []
    i = 0
    while i < len(data):
        room = parser.space()
        k = min(len(room), len(data) - i)
        room[:k] = memoryview(data)[i : i + k]
        i += k
        frames += parser.filled(k)
    return frames


def key_of(text):
    return None if text == "-" else bytes.fromhex(text)


def handle(line):
    global parser
    parts = line.split(" ")
    cmd = parts[0]
    if cmd == "parser":  # parser MAX_PAYLOAD KEY|-
        parser = FrameParser(int(parts[1]), key_of(parts[2]))
        return "ok"
    if cmd == "feed":  # feed HEX...: each part fed as one piece
        frames = []
        for h in parts[1:]:
            frames += feed(bytes.fromhex(h))
        return frames_text(frames)
    if cmd == "bytewise":  # bytewise HEX: fed one byte at a time
        frames = []
        data = bytes.fromhex(parts[1])
        for i in range(len(data)):
            frames += feed(data[i : i + 1])
        return frames_text(frames)
    if cmd == "resync":  # quiet for too long: give up on a partial frame
        return frames_text(parser.resync(True))
    if cmd == "quiet":  # quiet a moment: give up a partial frame only if it hides a header
        return frames_text(parser.resync(False))
    if cmd == "counters":
        p = parser
        return "garbage=%d header=%d crc=%d oversize=%d auth=%d replay=%d pending=%d last=%d" % (
            p.garbage,
            p.header_errors,
            p.crc_errors,
            p.oversize,
            p.auth_failures,
            p.replays,
            p.pending(),
            p.last_counter,
        )
    if cmd == "pack":  # pack KEY|- COUNTER OP RID FLAGS PAYLOAD_HEX|. ...: frames from one writer
        w = FrameWriter(key_of(parts[1]), int(parts[2]))
        out = []
        for h in parts[6:]:
            payload = b"" if h == "." else bytes.fromhex(h)
            out.append(w.pack(int(parts[3]), int(parts[4]), payload, int(parts[5])).hex())
        return " ".join(out) + " counter=%d" % w.counter
    return "BUG unknown command " + cmd


def main():
    while True:
        line = sys.stdin.readline()
        if not line:
            break
        line = line.strip()
        if line:
            try:
                print(handle(line))
            except Exception as e:
                print("BUG %s %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()
