"""The device's ModelStore on a real filesystem: one command a line in, one answer a line out.

Names and file contents travel as hex so any string (empty, with spaces or slashes) fits on a
line.  Runs unchanged under CPython and MicroPython (tests/device/test_store.py).
"""

import hashlib
import os
import sys

from kpdev.device.store import ModelStore
from kpdev.protocol.errors import DeviceError

store = None
root = None


def text(h):
    if h.startswith("int:"):
        return int(h[4:])
    return "" if h == "." else bytes.fromhex(h).decode()


def data(h):
    return b"" if h == "." else bytes.fromhex(h)


def listing(path):
    try:
        names = os.listdir(path)
    except OSError:
        return ""
    names.sort()
    return ",".join(names)


def file_sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.digest().hex()


def command(line):
    global store, root
    p = line.split(" ")
    cmd = p[0]
    if cmd == "open":  # open ROOT QUOTA: a fresh ModelStore, as after a restart
        if store is not None:
            store.close()
        root = p[1]
        store = ModelStore(root, int(p[2]))
        return "ok"
    if cmd == "begin":  # begin NAME FMT SIZE SHA
        return str(store.begin(text(p[1]), text(p[2]), int(p[3]), data(p[4])))
    if cmd == "chunk":  # chunk NAME OFFSET DATA
        return str(store.chunk(text(p[1]), int(p[2]), data(p[3])))
    if cmd == "commit":  # commit NAME 1|0
        e = store.commit(text(p[1]), p[2] == "1")
        return "%s %d %s" % (e["sha256"], e["size"], store.active)
    if cmd == "abort":
        store.abort(text(p[1]))
        return "ok"
    if cmd == "activate":
        store.activate(text(p[1]))
        return "ok"
    if cmd == "delete":
        store.delete(text(p[1]))
        return "ok"
    if cmd == "names":
        return ",".join(store.names()) + " active=" + str(store.active)
    if cmd == "entry":  # entry NAME -> sha size format; and the blob on disk hashed
        name = text(p[1])
        e = store.entry(name)
        disk = file_sha(store.path(name))
        return "%s %d %s disk=%s" % (e["sha256"], e["size"], e["format"], disk)
    if cmd == "used":
        return "used=%d free=%d" % (store.used(), store.free())
    if cmd == "files":  # what is on the "flash"
        return "blobs=%s upload=%s top=%s" % (
            listing(root + "/blobs"),
            listing(root + "/upload"),
            listing(root),
        )
    if cmd == "write":  # write RELPATH DATA: leave a file behind, as a crash would
        with open(root + "/" + p[1], "wb") as f:
            f.write(data(p[2]))
        return "ok"
    if cmd == "remove":
        os.remove(root + "/" + p[1])
        return "ok"
    return "BUG unknown command " + cmd


def handle(line):
    try:
        return command(line)
    except DeviceError as e:
        return "E%d" % e.code


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
