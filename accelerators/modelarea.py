"""A model area: memory-mapped storage where loaded models' bytes live, read in place.

Device code (MicroPython and CPython).  A board's flash partition (or file-backed PSRAM on the
emulated Cortex-M boards) for models, as an embedded runtime has one: the model store keeps the
durable copy of every model on the filesystem (its atomic uploads are unchanged); a load
places the model's bytes here, and the interpreter reads every constant tensor through
``memoryview`` slices of the area, so no weight is copied into the heap.

Layout (little-endian)::

    0    b"KPMA", u16 version, u16 record count, u32 area size, u32 zero
    16   records of 48 bytes: u32 offset, u32 length, u32 state (1: bytes whole), u32 zero,
         32 bytes sha256 of the bytes
    ...  data, 16-byte aligned, first-fit

A record is written after its bytes, so a reset half-way through a copy leaves no record of
them.  Records survive a restart: a load after a reboot whose sha256 and length match a record
takes the bytes already there.  Which records loaded models hold is known to this process only:
unloading frees a record's space for the next allocation, but its bytes stay (and can be
reused) until another model needs the room.

``open_area(spec)`` makes an area from the agent's ``--model-area`` option:
``mem:ADDR:SIZE`` (MicroPython: ``uctypes.bytearray_at``, memory-mapped flash or PSRAM) or
``file:PATH:SIZE`` (CPython: a shared mmap of a file, for Linux boards and tests).
"""

import struct

from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError, KpdevError

_E_STORAGE_FULL = const(20)
_E_MODEL_LOAD = const(23)

_MAGIC = b"KPMA"
_VERSION = const(1)
_RECORDS = const(8)
_HEADER = const(16)
_RECORD = const(48)
_ALIGN = const(16)
_WHOLE = const(1)
_DATA = const(400)  # _HEADER + _RECORDS * _RECORD, a multiple of _ALIGN
_COPY = const(1024)  # bytes a copy into the area moves at a time


def _align(n):
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class ModelArea:
    """Models' bytes in a writable buffer outside the heap, first-fit, by sha256."""

    def __init__(self, buf, name=""):
        self.buf = memoryview(buf)
        self.size = len(self.buf)
        self.name = name
        if self.size < _DATA + _ALIGN:
            raise KpdevError("a model area needs at least %d bytes" % (_DATA + _ALIGN))
        self._held = {}  # record index -> number of loads holding it (this process only)
        if bytes(self.buf[0:4]) != _MAGIC or struct.unpack_from("<HHI", self.buf, 4) != (
            _VERSION,
            _RECORDS,
            self.size,
        ):
            self.format()

    # -- records ------------------------------------------------------------------------
    def format(self):
        """Forget every record (the bytes are left as they are)."""
        b = self.buf
        b[0:_DATA] = bytes(_DATA)
        struct.pack_into("<HHII", b, 4, _VERSION, _RECORDS, self.size, 0)
        b[0:4] = _MAGIC
        self._held = {}

    def _record(self, k):
        # (offset, length, state, sha256 bytes) of record k.
        at = _HEADER + k * _RECORD
        off, n, state = struct.unpack_from("<III", self.buf, at)
        return off, n, state, bytes(self.buf[at + 16 : at + 48])

    def _write_record(self, k, off, n, state, sha):
        at = _HEADER + k * _RECORD
        self.buf[at + 16 : at + 48] = sha
        struct.pack_into("<IIII", self.buf, at, off, n, state, 0)

    def _valid(self):
        # [(k, offset, length, sha)] of the records whose bytes are whole and inside the area.
        out = []
        for k in range(_RECORDS):
            off, n, state, sha = self._record(k)
            if state == _WHOLE and off >= _DATA and off + n <= self.size:
                out.append((k, off, n, sha))
        return out

    # -- queries ------------------------------------------------------------------------
    def capacity(self):
        """Bytes models can take (the area less its header)."""
        return self.size - _DATA

    def used(self):
        """Bytes held by loaded models (aligned)."""
        total = 0
        for k, _off, n, _sha in self._valid():
            if k in self._held:
                total += _align(n)
        return total

    def describe(self):
        """The area's facts, as INFO and MODEL_INFO report them."""
        cached = 0
        valid = self._valid()
        for k, _off, n, _sha in valid:
            if k not in self._held:
                cached += n
        used = self.used()
        return {
            "where": self.name,
            "size": self.size,
            "capacity": self.capacity(),
            "used": used,
            "free": self.capacity() - used,
            "cached_bytes": cached,
            "records": len(valid),
        }

    # -- placing ------------------------------------------------------------------------
    def _fit(self, n, taken):
        # The lowest aligned offset where n bytes overlap no (offset, length) of taken.
        off = _DATA
        for o, m in sorted(taken):
            if off + n <= o:
                break
            end = _align(o + m)
            if end > off:
                off = end
        return off if off + n <= self.size else -1

    def place(self, sha, n, fill):
        """Hold ``n`` bytes identified by ``sha`` (32 bytes); returns (record, memoryview, reused).

        Bytes already there under the same sha256 and length are reused; otherwise the first
        gap that fits takes them (a record no loaded model holds gives its room up if needed)
        and ``fill(view)`` writes them.  A model that does not fit raises ``DeviceError``
        (STORAGE_FULL) and nothing changes.
        """
        sha = bytes(sha)
        valid = self._valid()
        for k, off, m, s in valid:
            if s == sha and m == n:
                self._held[k] = self._held.get(k, 0) + 1
                return k, self.buf[off : off + n], True
        held = [(off, m) for k, off, m, s in valid if k in self._held]
        off = self._fit(n, [(o, m) for k, o, m, s in valid])
        evict = []
        if off < 0:
            off = self._fit(n, held)
            if off < 0:
                raise DeviceError(
                    "model area full: a %d-byte model does not fit in %s (%d of %d bytes free "
                    "while loaded models hold the rest)"
                    % (n, self.name or "the area", self.capacity() - self.used(), self.capacity()),
                    _E_STORAGE_FULL,
                )
            evict = [
                k for k, o, m, s in valid if k not in self._held and o < off + n and off < o + m
            ]
        slot = self._free_slot(valid, evict)
        if slot < 0:
            raise DeviceError(
                "model area full: all %d records are held by loaded models" % _RECORDS,
                _E_STORAGE_FULL,
            )
        for k in evict:
            self._write_record(k, 0, 0, 0, bytes(32))
        # The record is written only once the bytes are whole (see the module docstring).
        self._write_record(slot, 0, 0, 0, bytes(32))
        view = self.buf[off : off + n]
        fill(view)
        self._write_record(slot, off, n, _WHOLE, sha)
        self.flush()
        self._held[slot] = 1
        return slot, view, False

    def _free_slot(self, valid, evict):
        used = {}
        for k, _o, _m, _s in valid:
            if k not in evict:
                used[k] = True
        for k in range(_RECORDS):
            if k not in used:
                return k
        for k, _o, _m, _s in valid:  # every record holds bytes: give up one no model holds
            if k not in self._held:
                return k
        return -1

    def release(self, k):
        """A loaded model lets go of record ``k``: its room is free, its bytes stay for reuse."""
        left = self._held.get(k, 0) - 1
        if left > 0:
            self._held[k] = left
        else:
            self._held.pop(k, None)

    def flush(self):
        """Make what was written durable where the memory is a mapped file."""
        f = getattr(self, "_mmap", None)
        if f is not None:
            f.flush()


def copy_file(path, view):
    """Fill ``view`` with the file's bytes, a small buffer at a time (no copy in the heap)."""
    buf = bytearray(_COPY)
    done = 0
    n = len(view)
    with open(path, "rb") as f:
        while done < n:
            got = f.readinto(buf)
            if not got:
                raise DeviceError(
                    "model file %s is shorter than its %d bytes" % (path, n), _E_MODEL_LOAD
                )
            if got > n - done:
                got = n - done
            view[done : done + got] = memoryview(buf)[:got]
            done += got


def file_sha256(path):
    """sha256 of a file, read a small buffer at a time."""
    try:
        import hashlib
    except ImportError:
        import uhashlib as hashlib
    h = hashlib.sha256()
    buf = bytearray(_COPY)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            got = f.readinto(buf)
            if not got:
                break
            h.update(mv[:got])
    return h.digest()


def open_area(spec):
    """A ``ModelArea`` for the ``--model-area`` option: ``mem:ADDR:SIZE`` or ``file:PATH:SIZE``."""
    first = spec.find(":")
    last = spec.rfind(":")
    kind = spec[:first]
    where = spec[first + 1 : last]
    try:
        size = int(spec[last + 1 :], 0)
    except ValueError:
        size = -1
    if first < 0 or last <= first or not where or size <= 0:
        raise KpdevError(
            "--model-area takes mem:ADDR:SIZE or file:PATH:SIZE (e.g. mem:0x21000000:1048576), "
            "not %r" % spec
        )
    if kind == "mem":
        try:
            import uctypes
        except ImportError:
            raise KpdevError("--model-area mem: needs MicroPython's uctypes; use file:PATH:SIZE")
        return ModelArea(uctypes.bytearray_at(int(where, 0), size), spec)
    if kind == "file":
        try:
            import mmap
        except ImportError:
            raise KpdevError("--model-area file: needs mmap (CPython); use mem:ADDR:SIZE")
        import os

        fd = os.open(where, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            m = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        area = ModelArea(m, spec)
        area._mmap = m
        return area
    raise KpdevError("--model-area kind must be mem or file, not %r" % kind)
