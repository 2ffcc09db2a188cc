"""Uploads into the model store: streamed to a part file, resumable, checked, committed atomically.

The upload half of ``ModelStore`` (whose ``begin``/``chunk``/``commit``/``abort`` call these),
kept apart so that it is in RAM only while models are being uploaded.
"""

import hashlib
import json

try:
    from binascii import hexlify
except ImportError:
    from ubinascii import hexlify

from kpdev.device import fsutil
from kpdev.protocol.compat import const, forget_modules
from kpdev.protocol.errors import DeviceError, KpdevError

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_E_BAD_REQUEST = const(5)
_E_CHECKSUM = const(21)
_E_STORAGE_FULL = const(20)
_E_UPLOAD_STATE = const(22)


_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
MAX_NAME = 48


def check_name(name):
    """Raise unless ``name`` is a safe model name (letters, digits, ``_-.``, at most 48)."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or name[0] == ".":
        raise DeviceError("bad model name %r" % (name,), _E_BAD_REQUEST)
    for ch in name:
        if ch not in _NAME_CHARS:
            raise DeviceError(
                "bad model name %r: use letters, digits, '_', '-', '.'" % name, _E_BAD_REQUEST
            )


def _hex(b):
    return hexlify(b).decode()


def _check_meta(v, depth):
    # Metadata is stored as JSON: refuse what JSON cannot hold exactly (bytes, tags, NaN).
    if depth > 8:
        raise DeviceError("model meta is nested too deeply", _E_BAD_REQUEST)
    if isinstance(v, dict):
        for k in v:
            if not isinstance(k, str):
                raise DeviceError("model meta keys must be text", _E_BAD_REQUEST)
            _check_meta(v[k], depth + 1)
    elif isinstance(v, list):
        for item in v:
            _check_meta(item, depth + 1)
    elif isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise DeviceError("model meta numbers must be finite", _E_BAD_REQUEST)
    elif not (v is None or isinstance(v, (str, int, bool))):
        raise DeviceError(
            "model meta holds text, numbers, booleans, null, lists and maps only, not %s"
            % type(v).__name__,
            _E_BAD_REQUEST,
        )


def _check_options(fmt, meta):
    # A load option the backend does not read would be ignored silently: refuse it.  The table
    # (accelerators/options.py, the host's too) is in RAM only while it is read.
    from kpdev import accelerators
    from kpdev.accelerators.options import OPTIONS

    try:  # the backend a load will use, found without loading
        names = (accelerators.for_format(fmt, meta.get("backend"), False),)
    except KpdevError:  # none here reads fmt: what any backend of the format reads
        names = accelerators.FORMATS.get(fmt, ())
    known = []
    for n in names:
        known += OPTIONS[n]
    forget_modules(("kpdev.accelerators.options",))
    for key in meta:
        if key != "backend" and key not in known:
            raise DeviceError(
                "%s takes no load option %r; it takes: %s"
                % (", ".join(names) or "a ." + fmt + " model", key, ", ".join(known) or "none"),
                _E_BAD_REQUEST,
            )


def begin(store, name, fmt, size, sha256, meta=None):
    """Start or resume an upload; returns the offset the device already holds."""
    check_name(name)
    if not isinstance(fmt, str) or not fmt:
        raise DeviceError("upload needs a model format such as 'tflite'", _E_BAD_REQUEST)
    if not isinstance(size, int) or size <= 0:
        raise DeviceError("upload size must be a positive int", _E_BAD_REQUEST)
    if not isinstance(sha256, (bytes, bytearray)) or len(sha256) != 32:
        raise DeviceError("upload sha256 must be 32 bytes", _E_BAD_REQUEST)
    if meta:
        _check_meta(meta, 0)
        for key in meta:
            if key != "backend":  # an option: the table is read only then
                _check_options(fmt, meta)
                break
    part, desc_path = store._upload_paths(name)
    desc = store._read_upload(name)
    sha_hex = _hex(sha256)
    if desc and desc["sha256"] == sha_hex and desc["size"] == size:
        held = fsutil.size(part)
        if held <= size:
            return held
    abort(store, name)
    free = store.free()
    if size > free:
        raise DeviceError(
            "model needs %d bytes but only %d of the %d-byte store are free; "
            "delete a model first" % (size, free, store.quota),
            _E_STORAGE_FULL,
        )
    disk = fsutil.statvfs_free(store.root)
    if disk is not None and size > disk:
        raise DeviceError(
            "model needs %d bytes but the filesystem has %d free" % (size, disk),
            _E_STORAGE_FULL,
        )
    desc = {"name": name, "format": fmt, "size": size, "sha256": sha_hex, "meta": meta or {}}
    # No fsync: a descriptor lost with the power loses only the point an upload resumes from
    # (recover sweeps its part).  An upload syncs at commit: the model's bytes, then the index.
    with open(desc_path, "w") as f:
        json.dump(desc, f)
    with open(part, "wb"):
        pass
    return 0


def chunk(store, name, offset, data):
    """Write ``data`` at ``offset``; returns the new offset.  Repeats of held bytes are ok."""
    check_name(name)
    writing = store._writing
    if writing and writing[0] == name:
        # Writing this upload already: its declared size is at hand, no need to read the
        # descriptor again for every chunk (a file opened and parsed: time and heap).
        held = writing[1].tell()
        size = writing[2]
    else:
        desc = store._read_upload(name)
        if desc is None:
            raise DeviceError(
                "no upload of %r in progress: begin it first" % name, _E_UPLOAD_STATE
            )
        held = fsutil.size(store._upload_paths(name)[0])
        size = desc["size"]
    if not isinstance(offset, int) or offset < 0:
        raise DeviceError("chunk offset must be a non-negative int", _E_BAD_REQUEST)
    end = offset + len(data)
    if end > size:
        raise DeviceError(
            "chunk ends at %d, past the declared size %d" % (end, size), _E_UPLOAD_STATE
        )
    if end <= held:
        return held  # a retry of bytes already written
    if offset != held:
        raise DeviceError(
            "chunk at offset %d but the device holds %d bytes" % (offset, held),
            _E_UPLOAD_STATE,
        )
    if not (writing and writing[0] == name):
        store.close()
        path = store._upload_paths(name)[0]
        # The sha256 grows with every chunk written, so commit reads nothing back.  Resuming
        # (this agent did not write the bytes held), they are read once here.
        h = hashlib.sha256()
        if held:
            _hash_file(path, h, store.io_chunk)
        writing = store._writing = (name, open(path, "ab"), size, h)
    f = writing[1]
    try:
        f.write(data)
        f.flush()
    except Exception:
        store.close()  # how much went out is unknown: the next chunk starts from the file
        raise
    writing[3].update(data)
    return end


def commit(store, name, activate=True):
    """Check the upload's sha256 and make it the stored model of that name, atomically."""
    check_name(name)
    desc = store._read_upload(name)
    if desc is None:
        raise DeviceError("no upload of %r in progress" % name, _E_UPLOAD_STATE)
    part, desc_path = store._upload_paths(name)
    writing = store._writing
    h = None
    if writing and writing[0] == name and writing[1].tell() == desc["size"]:
        h = writing[3]  # written whole by this agent: its sha256 grew as the chunks came
        # The model's bytes reach storage before the index names them: a power cut after the
        # index's save must not leave it naming a blob whose bytes never got there.
        fsutil.fsync_file(writing[1])
    store.close()
    held = fsutil.size(part)
    if held != desc["size"]:
        raise DeviceError(
            "upload of %r holds %d of %d bytes" % (name, held, desc["size"]),
            _E_UPLOAD_STATE,
        )
    if h is None:  # written before a restart: read back once, and synced as above
        h = hashlib.sha256()
        _hash_file(part, h, store.io_chunk, sync=True)
    digest = _hex(h.digest())
    if digest != desc["sha256"]:
        abort(store, name)
        raise DeviceError(
            "sha256 mismatch for %r: got %s, expected %s; upload it again"
            % (name, digest, desc["sha256"]),
            _E_CHECKSUM,
        )
    blob = digest[:16] + ".bin"
    blob_path = fsutil.join(store._blobs, blob)
    if fsutil.exists(blob_path):
        fsutil.remove(part)
    else:
        fsutil.replace(part, blob_path)
    models = store._index["models"]
    old = models.get(name)
    entry = {
        "file": blob,
        "format": desc["format"],
        "size": desc["size"],
        "sha256": digest,
        "meta": desc["meta"],
    }
    models[name] = entry
    if activate:
        store._index["active"] = name
    store._save_index()
    fsutil.remove(desc_path)
    if old and old["file"] != blob:
        store._remove_blob_if_unused(old["file"])
    return entry


def _hash_file(path, h, io_chunk, sync=False):
    # Feed the bytes of ``path`` to ``h``, through one buffer (``sync``: then flush the file to
    # storage, as far as the runtime allows).
    buf = bytearray(io_chunk)
    view = memoryview(buf)  # one view for all reads: a slice a read would be garbage each time
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view if n == len(buf) else view[:n])
        if sync:
            fsutil.fsync_file(f)


def abort(store, name):
    """Forget an upload in progress (no error when there is none)."""
    check_name(name)
    if store._writing and store._writing[0] == name:
        store.close()
    part, desc_path = store._upload_paths(name)
    fsutil.remove(desc_path)
    fsutil.remove(part)


def recover(store):
    """Start-up: reconcile the uploads with the index after a crash inside ``commit``.

    ``commit`` renames the part file to its blob, saves the index, then removes the descriptor.
    Killed after the index, a descriptor is left whose model is committed with its sha256: it is
    dropped, so the quota does not count the model twice.  Killed between the rename and the
    index, the part is the blob no entry names: it goes back, and the upload resumes whole.  A
    descriptor with no part and no such blob (or an unreadable one) holds nothing: dropped.
    """
    models = store._index["models"]
    named = {}
    for e in models.values():
        named[e["file"]] = True
    for fn in fsutil.listdir(store._uploads):
        if fn.endswith(".part") and not fsutil.exists(store._uploads + "/" + fn[:-5] + ".json"):
            # Its descriptor was never synced (begin) or went first (abort): nothing to resume.
            fsutil.remove(store._uploads + "/" + fn)
            continue
        if not fn.endswith(".json"):
            continue
        name = fn[:-5]
        part, desc_path = store._upload_paths(name)
        desc = store._read_upload(name)
        entry = models.get(name)
        if desc is not None and not (entry and entry["sha256"] == desc["sha256"]):
            if fsutil.exists(part):
                continue  # an upload cut short: it resumes
            blob = desc["sha256"][:16] + ".bin"
            if blob not in named and fsutil.exists(store._blobs + "/" + blob):
                fsutil.replace(store._blobs + "/" + blob, part)
                continue
        fsutil.remove(desc_path)
        fsutil.remove(part)
