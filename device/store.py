"""Model store on the device filesystem: streamed uploads, resume, atomic commit, a quota.

Layout under the store root::

    index.json          {"models": {name: entry}, "active": name}  (replaced atomically)
    blobs/<sha16>.bin   model files, named by content
    upload/<name>.part  the bytes received so far; <name>.json says what is expected

An upload never holds the model in RAM.  The index names only whole, checked blobs, so a crash
at any point leaves the previous model usable; leftover blobs are swept at start.
"""

import hashlib
import json

try:
    from binascii import hexlify
except ImportError:
    from ubinascii import hexlify

from kpdev.device import fsutil
from kpdev.protocol import ops
from kpdev.protocol.errors import DeviceError

_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
MAX_NAME = 48


def check_name(name):
    """Raise unless ``name`` is a safe model name (letters, digits, ``_-.``, at most 48)."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or name[0] == ".":
        raise DeviceError("bad model name %r" % (name,), ops.E_BAD_REQUEST)
    for ch in name:
        if ch not in _NAME_CHARS:
            raise DeviceError(
                "bad model name %r: use letters, digits, '_', '-', '.'" % name, ops.E_BAD_REQUEST
            )


def _hex(b):
    return hexlify(b).decode()


class ModelStore:
    """Models on flash (or a directory standing in for it), under a byte quota."""

    def __init__(self, root, quota, io_chunk=4096):
        self.root = root
        self.quota = quota
        self.io_chunk = io_chunk
        self._blobs = fsutil.join(root, "blobs")
        self._uploads = fsutil.join(root, "upload")
        self._index_path = fsutil.join(root, "index.json")
        self._writing = None  # (name, open file) of the upload being written
        fsutil.makedirs(self._blobs)
        fsutil.makedirs(self._uploads)
        self._index = self._load_index()
        self._sweep()

    # -- index ---------------------------------------------------------------------------
    def _load_index(self):
        tmp = self._index_path + ".tmp"
        for path in (self._index_path, tmp):
            try:
                with open(path) as f:
                    index = json.load(f)
                if path == tmp:  # only left by a replace() that removed the target first
                    fsutil.replace(tmp, self._index_path)
                return index
            except (OSError, ValueError):
                continue
        return {"models": {}, "active": None}

    def _save_index(self):
        tmp = self._index_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self._index, f)
            fsutil.fsync_file(f)
        fsutil.replace(tmp, self._index_path)

    def _sweep(self):
        fsutil.remove(self._index_path + ".tmp")
        keep = {}
        for entry in self._index["models"].values():
            keep[entry["file"]] = True
        for fn in fsutil.listdir(self._blobs):
            if fn not in keep:
                fsutil.remove(fsutil.join(self._blobs, fn))

    # -- queries -------------------------------------------------------------------------
    def names(self):
        """Model names, sorted."""
        return sorted(self._index["models"])

    @property
    def active(self):
        """Name of the active model, or None."""
        return self._index.get("active")

    def entry(self, name):
        """Index entry of a model; ``DeviceError(E_NO_MODEL)`` when there is none."""
        e = self._index["models"].get(name)
        if e is None:
            if name is None:
                raise DeviceError("no active model: deploy one first", ops.E_NO_MODEL)
            raise DeviceError(
                "no model %r on this device (have: %s)"
                % (name, ", ".join(self.names()) or "none"),
                ops.E_NO_MODEL,
            )
        return e

    def path(self, name):
        """Filesystem path of a stored model."""
        return fsutil.join(self._blobs, self.entry(name)["file"])

    def used(self):
        """Bytes taken by stored models and by uploads in progress (declared sizes)."""
        total = 0
        for e in self._index["models"].values():
            total += e["size"]
        for fn in fsutil.listdir(self._uploads):
            if fn.endswith(".json"):
                d = self._read_upload(fn[:-5])
                if d:
                    total += d["size"]
        return total

    def free(self):
        """Bytes of quota still free."""
        return max(0, self.quota - self.used())

    # -- uploads -------------------------------------------------------------------------
    def _upload_paths(self, name):
        base = fsutil.join(self._uploads, name)
        return base + ".part", base + ".json"

    def _read_upload(self, name):
        try:
            with open(self._upload_paths(name)[1]) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def _close_writer(self):
        if self._writing:
            self._writing[1].close()
            self._writing = None

    def begin(self, name, fmt, size, sha256, meta=None):
        """Start or resume an upload; returns the offset the device already holds."""
        check_name(name)
        if not isinstance(fmt, str) or not fmt:
            raise DeviceError("upload needs a model format such as 'tflite'", ops.E_BAD_REQUEST)
        if not isinstance(size, int) or size <= 0:
            raise DeviceError("upload size must be a positive int", ops.E_BAD_REQUEST)
        if not isinstance(sha256, (bytes, bytearray)) or len(sha256) != 32:
            raise DeviceError("upload sha256 must be 32 bytes", ops.E_BAD_REQUEST)
        part, desc_path = self._upload_paths(name)
        desc = self._read_upload(name)
        sha_hex = _hex(sha256)
        if desc and desc["sha256"] == sha_hex and desc["size"] == size:
            held = fsutil.size(part)
            if held <= size:
                return held
        self.abort(name)
        free = self.free()
        if size > free:
            raise DeviceError(
                "model needs %d bytes but only %d of the %d-byte store are free; "
                "delete a model first" % (size, free, self.quota),
                ops.E_STORAGE_FULL,
            )
        disk = fsutil.statvfs_free(self.root)
        if disk is not None and size > disk:
            raise DeviceError(
                "model needs %d bytes but the filesystem has %d free" % (size, disk),
                ops.E_STORAGE_FULL,
            )
        desc = {"name": name, "format": fmt, "size": size, "sha256": sha_hex, "meta": meta or {}}
        with open(desc_path, "w") as f:
            json.dump(desc, f)
            fsutil.fsync_file(f)
        with open(part, "wb"):
            pass
        return 0

    def chunk(self, name, offset, data):
        """Write ``data`` at ``offset``; returns the new offset.  Repeats of held bytes are ok."""
        check_name(name)
        desc = self._read_upload(name)
        if desc is None:
            raise DeviceError(
                "no upload of %r in progress: begin it first" % name, ops.E_UPLOAD_STATE
            )
        part = self._upload_paths(name)[0]
        if self._writing and self._writing[0] == name:
            held = self._writing[1].tell()
        else:
            held = fsutil.size(part)
        if not isinstance(offset, int) or offset < 0:
            raise DeviceError("chunk offset must be a non-negative int", ops.E_BAD_REQUEST)
        end = offset + len(data)
        if end > desc["size"]:
            raise DeviceError(
                "chunk ends at %d, past the declared size %d" % (end, desc["size"]),
                ops.E_UPLOAD_STATE,
            )
        if end <= held:
            return held  # a retry of bytes already written
        if offset != held:
            raise DeviceError(
                "chunk at offset %d but the device holds %d bytes" % (offset, held),
                ops.E_UPLOAD_STATE,
            )
        if not (self._writing and self._writing[0] == name):
            self._close_writer()
            self._writing = (name, open(part, "ab"))
        f = self._writing[1]
        f.write(data)
        f.flush()
        return end

    def commit(self, name, activate=True):
        """Check the upload's sha256 and make it the stored model of that name, atomically."""
        check_name(name)
        desc = self._read_upload(name)
        if desc is None:
            raise DeviceError("no upload of %r in progress" % name, ops.E_UPLOAD_STATE)
        self._close_writer()
        part, desc_path = self._upload_paths(name)
        held = fsutil.size(part)
        if held != desc["size"]:
            raise DeviceError(
                "upload of %r holds %d of %d bytes" % (name, held, desc["size"]),
                ops.E_UPLOAD_STATE,
            )
        h = hashlib.sha256()
        buf = bytearray(self.io_chunk)
        with open(part, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(memoryview(buf)[:n])
        digest = _hex(h.digest())
        if digest != desc["sha256"]:
            self.abort(name)
            raise DeviceError(
                "sha256 mismatch for %r: got %s, expected %s; upload it again"
                % (name, digest, desc["sha256"]),
                ops.E_CHECKSUM,
            )
        blob = digest[:16] + ".bin"
        blob_path = fsutil.join(self._blobs, blob)
        if fsutil.exists(blob_path):
            fsutil.remove(part)
        else:
            fsutil.replace(part, blob_path)
        old = self._index["models"].get(name)
        entry = {
            "file": blob,
            "format": desc["format"],
            "size": desc["size"],
            "sha256": digest,
            "meta": desc["meta"],
        }
        self._index["models"][name] = entry
        if activate or not self._index.get("active"):
            self._index["active"] = name
        self._save_index()
        fsutil.remove(desc_path)
        if old and old["file"] != blob:
            self._remove_blob_if_unused(old["file"])
        return entry

    def abort(self, name):
        """Forget an upload in progress (no error when there is none)."""
        check_name(name)
        if self._writing and self._writing[0] == name:
            self._close_writer()
        part, desc_path = self._upload_paths(name)
        fsutil.remove(desc_path)
        fsutil.remove(part)

    def _remove_blob_if_unused(self, blob):
        for e in self._index["models"].values():
            if e["file"] == blob:
                return
        fsutil.remove(fsutil.join(self._blobs, blob))

    # -- management ----------------------------------------------------------------------
    def activate(self, name):
        """Make ``name`` the model INFER uses when none is named."""
        self.entry(name)
        self._index["active"] = name
        self._save_index()

    def delete(self, name):
        """Delete a stored model."""
        e = self.entry(name)
        del self._index["models"][name]
        if self._index.get("active") == name:
            self._index["active"] = None
        self._save_index()
        self._remove_blob_if_unused(e["file"])

    def close(self):
        """Close the upload file held open between chunks."""
        self._close_writer()
