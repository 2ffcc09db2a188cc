"""Small filesystem helpers that work on MicroPython (no os.path, no os.makedirs)."""

import os


def join(*parts):
    """Join path parts with '/'."""
    out = []
    for i in range(len(parts)):
        if parts[i]:
            out.append(parts[i].rstrip("/") if i == 0 else parts[i].strip("/"))
    return "/".join(out)


def exists(path):
    """True when the path exists."""
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def size(path):
    """File size in bytes, 0 when absent."""
    try:
        return os.stat(path)[6]
    except OSError:
        return 0


def makedirs(path):
    """Create a directory and its parents, ignoring those that exist."""
    cur = ""
    for part in path.split("/"):
        if not part:
            cur = "/" if not cur else cur
            continue
        cur = part if not cur else (cur + part if cur.endswith("/") else cur + "/" + part)
        if not exists(cur):
            os.mkdir(cur)


def remove(path):
    """Remove a file if present."""
    try:
        os.remove(path)
    except OSError:
        pass


def listdir(path):
    """Names in a directory, empty when it is absent."""
    try:
        return os.listdir(path)
    except OSError:
        return []


def replace(src, dst):
    """Rename ``src`` over ``dst`` atomically where the filesystem allows it.

    POSIX and littlefs replace in one step; FAT refuses to rename over a file, so the target is
    removed first there (a crash in between leaves ``src`` for recovery to pick up).
    """
    try:
        os.rename(src, dst)
    except OSError:
        remove(dst)
        os.rename(src, dst)


def fsync_file(f):
    """Flush a file to storage as far as the runtime allows."""
    f.flush()
    try:
        os.fsync(f.fileno())
    except (AttributeError, OSError):
        pass


def statvfs_free(path):
    """Free bytes on the filesystem holding ``path``, or None where statvfs is missing."""
    try:
        st = os.statvfs(path)
        return st[0] * st[4]
    except (AttributeError, OSError):
        return None


def write_atomic(path, text):
    """Replace the file ``path`` with ``text`` (str, or bytes for a binary file): whole or not
    at all.

    The text goes to ``path.tmp``, is flushed to storage, then renamed over ``path``; a crash
    before the rename leaves the old file as it was (``read_atomic`` ignores a stray ``.tmp``
    unless the rename had already removed the target).  A failed write (storage full) removes
    the ``.tmp`` and raises: the old file stands.
    """
    tmp = path + ".tmp"
    mode = "w" if isinstance(text, str) else "wb"
    try:
        f = open(tmp, mode)
        try:
            f.write(text)
            fsync_file(f)
        finally:
            f.close()
    except OSError:
        remove(tmp)
        raise
    replace(tmp, path)


def read_atomic(path, binary=False):
    """The text (bytes when ``binary``) ``write_atomic`` last completed at ``path``, or None
    when there is none."""
    tmp = path + ".tmp"
    mode = "rb" if binary else "r"
    if exists(path):
        remove(tmp)  # a save that did not reach its rename: the old file stands
        with open(path, mode) as f:
            return f.read()
    if exists(tmp):  # a FAT rename removed the target first, then stopped: finish it
        replace(tmp, path)
        with open(path, mode) as f:
            return f.read()
    return None
