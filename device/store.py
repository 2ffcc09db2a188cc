"""Model store on the device filesystem: streamed uploads, resume, atomic commit, a quota.

Layout under the store root::

    index.json          {"models": {name: entry}, "active": name}  (replaced atomically)
    blobs/<sha16>.bin   model files, named by content
    upload/<name>.part  the bytes received so far; <name>.json says what is expected

An upload never holds the model in RAM.  The index names only whole, checked blobs, so a crash
at any point leaves the previous model usable; leftover blobs are swept at start.

The upload half (``begin``, ``chunk``, ``commit``, ``abort``) lives in ``kpdev.device.upload``
and is imported by the first upload: a board that only runs models never holds it in RAM.
"""

import json

from kpdev.device import fsutil
from kpdev.protocol.compat import const, forget_modules
from kpdev.protocol.errors import DeviceError

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_E_NO_MODEL = const(16)


def _upload():
    from kpdev.device import upload  # see the module docstring

    return upload


class ModelStore:
    """Models on flash (or a directory standing in for it), under a byte quota."""

    def __init__(self, root, quota, io_chunk=4096):
        self.root = root
        self.quota = quota
        self.io_chunk = io_chunk
        self._blobs = fsutil.join(root, "blobs")
        self._uploads = fsutil.join(root, "upload")
        self._index_path = fsutil.join(root, "index.json")
        # (name, open file, declared size, sha256 so far) of the upload being written
        self._writing = None
        fsutil.makedirs(self._blobs)
        fsutil.makedirs(self._uploads)
        self._index = self._load_index()
        # Sweep what a crash left: a half-written index, uploads a commit left behind (before
        # the sweep: a blob may go back to its upload) and blobs no entry names.
        fsutil.remove(self._index_path + ".tmp")
        if fsutil.listdir(self._uploads):
            _upload().recover(self)
            forget_modules(("kpdev.device.upload",))  # needed again only by the next upload
        keep = {}
        for entry in self._index["models"].values():
            keep[entry["file"]] = True
        for fn in fsutil.listdir(self._blobs):
            if fn not in keep:
                fsutil.remove(self._blobs + "/" + fn)

    # -- index ---------------------------------------------------------------------------
    def _load_index(self):
        try:
            text = fsutil.read_atomic(self._index_path)
            if text is not None:
                return json.loads(text)
        except (OSError, ValueError):
            pass
        return {"models": {}, "active": None}

    def _save_index(self):
        fsutil.write_atomic(self._index_path, json.dumps(self._index))

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
                raise DeviceError("no active model: deploy one first", _E_NO_MODEL)
            raise DeviceError(
                "no model %r on this device (have: %s)"
                % (name, ", ".join(self.names()) or "none"),
                _E_NO_MODEL,
            )
        return e

    def describe(self, name):
        """A stored model's facts as MODEL_LIST and MODEL_INFO report them."""
        e = self.entry(name)
        return {
            "name": name,
            "format": e["format"],
            "size": e["size"],
            "sha256": e["sha256"],
            "meta": e["meta"],
            "active": name == self.active,
        }

    def path(self, name):
        """Filesystem path of a stored model."""
        return self._blobs + "/" + self.entry(name)["file"]

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
        base = self._uploads + "/" + name
        return base + ".part", base + ".json"

    def _read_upload(self, name):
        try:
            with open(self._upload_paths(name)[1]) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def begin(self, name, fmt, size, sha256, meta=None):
        """Start or resume an upload; returns the offset the device already holds."""
        return _upload().begin(self, name, fmt, size, sha256, meta)

    def chunk(self, name, offset, data):
        """Write ``data`` at ``offset``; returns the new offset.  Repeats of held bytes are ok."""
        return _upload().chunk(self, name, offset, data)

    def commit(self, name, activate=True):
        """Check the upload's sha256 and make it the stored model of that name, atomically."""
        return _upload().commit(self, name, activate)

    def abort(self, name):
        """Forget an upload in progress (no error when there is none)."""
        _upload().abort(self, name)

    # -- management ----------------------------------------------------------------------
    def _remove_blob_if_unused(self, blob):
        for e in self._index["models"].values():
            if e["file"] == blob:
                return
        fsutil.remove(self._blobs + "/" + blob)

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
        if self._writing:
            self._writing[1].close()
            self._writing = None
