"""A class-incremental few-shot learner with bounded memory: nearest stored samples or class means.

Device code (MicroPython and CPython).  The edge-learning feature uses it on boards without an
NPU: it learns new classes, and new examples of known ones, from a few labelled vectors (the
pack pipeline's output or a model's embedding), and classifies vectors by the nearest of them.

``MemoryLearner(n, dtype="int8", per_class=16, k=1, metric="l1", mode="knn", max_classes=32,
labels=None)``

- ``n``: vector length; ``dtype``: "int8", "uint8" or "float32" (vectors of any other dtype,
  or of another element count, are refused: E_BAD_DTYPE, E_BAD_SHAPE; float32 values must be
  finite);
- ``per_class``: sample slots a class holds; when they are full, a new sample replaces the
  oldest one (a FIFO ring per class);
- ``k``: how many nearest samples vote in knn mode (1..255);
- ``metric``: "l1" (sum of absolute differences) or "l2" (sum of squared differences: the
  squared Euclidean distance, no square root);
- ``mode``: "knn" (the ``k`` nearest stored samples vote; a tie in votes goes to the class with
  the smaller summed distance of its votes, then to the lower class index; samples at equal
  distance rank by class index, then slot) or "prototype" (the nearest class mean of the
  stored samples; a tie goes to the lower class index);
- ``max_classes``: how many classes there may ever be; ``labels``: the initial classes.

Methods and attributes:

- ``labels``: the class labels, a list of str; a class's index is its position;
- ``add_class(label)`` -> the new class's index;
- ``learn(x, cls)`` stores one sample of class ``cls`` (an int index) and returns the class
  ``predict`` gave ``x`` just before (-1 when nothing was learned yet);
- ``predict(x)`` -> ``(class, distance)``: in knn mode the distance from ``x`` to the nearest
  of the winner's votes, in prototype mode to the winner's mean; ``(-1, None)`` when no sample
  is held;
- ``counts()``: samples held per class; ``samples()``: samples ever learned (held or evicted);
- ``reset(labels=None)`` forgets every sample, and the classes too unless ``labels`` are
  given (then they become the classes);
- ``to_bytes()`` / ``MemoryLearner.from_bytes(data)``: the whole state (format below);
- ``memory_bytes()``: bytes of sample memory allocated; ``info()``: plain data describing the
  learner (kind "memory", n, dtype, per_class, k, metric, mode, max_classes, labels, counts,
  samples, memory_bytes, kernels).

Errors are ``DeviceError``: E_BAD_VALUE for bad arguments, labels, class indices, learner
state bytes and a class whose slots do not fit in the free memory; E_BAD_DTYPE / E_BAD_SHAPE
for a vector that does not fit.  A refused call changes nothing, except a ``reset`` that
runs out of memory: it keeps the classes that fitted.

Memory: adding a class allocates its ``per_class * n * itemsize`` bytes of sample slots (and in
prototype mode ``4 * n`` bytes of sums or means, which ``memory_bytes`` counts too); nothing
grows after that and no Python object is kept per sample.  A prediction allocates a few small
objects whatever the number of samples (float32: the vector's values as floats).  A knn sum
stops as soon as it reaches the k-th nearest distance so far: that sample cannot get in.

Results are the same on CPython and MicroPython.  int8 and uint8 distances are integers; the
prototype comparison is exact (a class's distance to its mean times ``count`` (l1) or
``count ** 2`` (l2) is an integer, and classes are compared by cross-multiplying), and the
distance reported is that integer divided by ``count`` (or ``count ** 2``).  float32 sums run
in the same order everywhere (per element, slot 0 first), in the runtime's float: a board whose
MicroPython has single-precision floats only approaches the host's float32 results.  On
MicroPython the int8 / uint8 distance loops are viper code from learner_viper.py, chosen once
at import; where that module does not import (CPython, a MicroPython without the native
emitter, a board whose agent was compiled without an ``mpy_march``) the plain loops here run,
and so does a learner whose largest possible sum would not fit the 32-bit results (a 32-bit
machine word for prototype sums).  Both give the same integers; ``info()["kernels"]`` says
which ran.  The plain loops (``_knn_l1``, ``_knn_l2``, ``_proto_l1``, ``_proto_l2``) and
learner_viper.py are deliberate twins: tests/test_learner.py
``test_same_on_cpython_and_micropython`` keeps them identical (plain on CPython, viper on the
micropython binary, the same scenarios and answers).

State format (``to_bytes``, version 1; integers little-endian)::

    offset  size  field
    0       4     magic b"KPLM"
    4       1     version (1)
    5       1     dtype: 0 int8, 1 uint8, 2 float32
    6       1     metric: 0 l1, 1 l2
    7       1     mode: 0 knn, 1 prototype
    8       4     n (u32)
    12      2     per_class (u16)
    14      2     k (u16)
    16      2     max_classes (u16)
    18      2     classes (u16)
    20      8     samples ever learned (u64)
    28            per class, in index order:
                    1     label length L in bytes (u8, 1..255)
                    L     label, UTF-8
                    2     count: samples held (u16, <= per_class)
                    2     next slot to write (u16; equal to count until the ring is full)
                    count * n * itemsize   the held samples, slot 0 first, each the vector's
                          little-endian bytes as the tensor carried them
    end     4     CRC-32 of every byte before it (u32)

Slots fill from 0, so the held samples are always slots 0..count-1; the next-slot field says
which of them is the oldest once the ring is full.  Prototype sums and means are not stored:
``from_bytes`` recomputes them from the samples, exactly as learning does.
"""

import struct
from array import array

from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError
from kpdev.protocol.framing import crc32

_E_BAD_SHAPE = const(18)
_E_BAD_DTYPE = const(19)
_E_BAD_VALUE = const(25)

_VERSION = const(1)
_MAGIC = b"KPLM"
_HEADER = "<4sBBBBIHHHHQ"
_HEADER_SIZE = const(28)
_CRC_SIZE = const(4)
_U16_MAX = const(65535)
_LABEL_MAX = const(255)
_K_MAX = const(255)
_INF = float("inf")

# Names by their code in the state bytes; item sizes by dtype code.
_DTYPES = ("int8", "uint8", "float32")
_ITEMSIZE = (1, 1, 4)
_METRICS = ("l1", "l2")
_MODES = ("knn", "prototype")


def _bad(message):
    return DeviceError(message, _E_BAD_VALUE)


def _is_int(v):
    # bool is an int on CPython but not on MicroPython: refuse it on both.
    return isinstance(v, int) and not isinstance(v, bool)


def _index(name, value, choices, code=_E_BAD_VALUE):
    for i in range(len(choices)):
        if choices[i] == value:
            return i
    raise DeviceError("%s must be one of %s, not %r" % (name, ", ".join(choices), value), code)


def _check_int(name, value, lo, hi):
    if not _is_int(value) or value < lo or value > hi:
        raise _bad("%s must be an int in %d..%d, not %r" % (name, lo, hi, value))


# -- distance loops ------------------------------------------------------------------------------
# Stored int8 / uint8 vectors stay the tensor's bytes; ``sgn`` is 128 for int8, 0 for uint8:
# ``b ^ 128`` maps an int8 byte to its value + 128, so differences are the int8 differences.


def _insert(top, k, m, d, c):
    # Put (d, c) among the k nearest so far (top[0:m] distances, top[k:k + m] classes,
    # nearest first; an equal distance goes after the ones there).  Returns the new fill.
    if m == k:
        m -= 1
    p = m
    while p > 0 and top[p - 1] > d:
        top[p] = top[p - 1]
        top[k + p] = top[k + p - 1]
        p -= 1
    top[p] = d
    top[k + p] = c
    return m + 1


# The knn loops: the ``count`` slots of class ``c`` against ``q`` (flipped), merged into the
# k nearest so far; ``m`` entries are filled, the new fill is returned.  A slot must be strictly
# nearer than the k-th to get in, so its sum stops as soon as it reaches the k-th's distance.


def _knn_l1(mem, q, n, count, sgn, c, top, k, m):
    j = 0
    for _ in range(count):
        lim = top[k - 1] if m == k else n * 255 + 1
        acc = 0
        for i in range(n):
            d = (mem[j + i] ^ sgn) - q[i]
            acc += d if d >= 0 else -d
            if acc >= lim:
                break
        if acc < lim:
            m = _insert(top, k, m, acc, c)
        j += n
    return m


def _knn_l2(mem, q, n, count, sgn, c, top, k, m):
    j = 0
    for _ in range(count):
        lim = top[k - 1] if m == k else n * 65025 + 1
        acc = 0
        for i in range(n):
            d = (mem[j + i] ^ sgn) - q[i]
            acc += d * d
            if acc >= lim:
                break
        if acc < lim:
            m = _insert(top, k, m, acc, c)
        j += n
    return m


def _knn_float(mem, q, n, count, l2, c, top, k, m):
    # float32 slots (an array('f')) against q (floats); sums in element order.
    j = 0
    for _ in range(count):
        lim = top[k - 1] if m == k else _INF
        acc = 0.0
        for i in range(n):
            d = mem[j + i] - q[i]
            if l2:
                acc += d * d
            else:
                acc += d if d >= 0.0 else -d
            if acc >= lim:
                break
        if acc < lim:
            m = _insert(top, k, m, acc, c)
        j += n
    return m


def _proto_l1(sums, q, n, cnt):
    # cnt * (L1 distance from q (already ^ sgn) to the mean sums / cnt).
    acc = 0
    for i in range(n):
        d = cnt * q[i] - sums[i]
        if d < 0:
            d = -d
        acc += d
    return acc


def _proto_l2(sums, q, n, cnt):
    acc = 0
    for i in range(n):
        d = cnt * q[i] - sums[i]
        acc += d * d
    return acc


# The viper loops, where this MicroPython has the native emitter (and the agent tree holds the
# module: a board without an mpy-cross -march gets bytecode only); else the plain loops above.
try:
    from kpdev.accelerators import learner_viper as _viper
except (ImportError, SyntaxError, ValueError, AttributeError, NotImplementedError):
    _viper = None


# -- the learner ---------------------------------------------------------------------------------


class MemoryLearner:
    """Few-shot classes learned from stored samples: k nearest neighbours or class means."""

    def __init__(
        self,
        n,
        dtype="int8",
        per_class=16,
        k=1,
        metric="l1",
        mode="knn",
        max_classes=32,
        labels=None,
    ):
        _check_int("n", n, 1, 0xFFFFFFFF)
        self._dt = _index("dtype", dtype, _DTYPES, _E_BAD_DTYPE)
        _check_int("per_class", per_class, 1, _U16_MAX)
        _check_int("k", k, 1, _K_MAX)
        self._l2 = _index("metric", metric, _METRICS)
        self._proto = _index("mode", mode, _MODES)
        _check_int("max_classes", max_classes, 1, _U16_MAX)
        self.n = n
        self.dtype = dtype
        self.per_class = per_class
        self.k = k
        self.metric = metric
        self.mode = mode
        self.max_classes = max_classes
        self._isize = _ITEMSIZE[self._dt]
        self._float = self._dt == 2
        self._sgn = 128 if self._dt == 0 else 0
        self._fast = (
            _viper is not None
            and not self._float
            and _viper.fits(n, per_class, self._l2, self._proto)
        )
        # Per-prediction scratch, allocated once: the k nearest (distances, then classes; an
        # int32 array for the viper loops, a list where sums may outgrow it), and the query
        # flipped to offset form for the plain loops.
        if self._fast:
            self._top = array("i", bytes(8 * k))
        else:
            self._top = [0] * (2 * k)
            self._q = bytearray(n)
        self._set_classes(labels or [])

    # -- classes ---------------------------------------------------------------------------

    def _set_classes(self, labels):
        if not isinstance(labels, (list, tuple)):
            raise _bad("labels must be a list of str, not %r" % (labels,))
        self._check_labels(labels, [])
        self.labels = []
        self._mem = []  # per class: the slots (bytearray, or array('f') for float32)
        self._sums = []  # per class, prototype mode: int32 sums or float32 means
        self._count = []
        self._next = []
        self._total = 0
        for label in labels:
            self._append(label)

    def _check_labels(self, new, have):
        if len(have) + len(new) > self.max_classes:
            raise _bad(
                "at most %d classes (max_classes); %d more would make %d"
                % (self.max_classes, len(new), len(have) + len(new))
            )
        seen = list(have)
        for label in new:
            if not isinstance(label, str) or not label:
                raise _bad("a class label must be a non-empty str, not %r" % (label,))
            if len(label.encode()) > _LABEL_MAX:
                raise _bad("class label %r is over %d bytes of UTF-8" % (label, _LABEL_MAX))
            if label in seen:
                raise _bad("class %r already exists (index %d)" % (label, seen.index(label)))
            seen.append(label)

    def _alloc(self):
        # One class's slots, zeroed.
        size = self.per_class * self.n * self._isize
        try:
            if self._float:
                return array("f", bytes(size))  # for a moment twice the size
            return bytearray(size)
        except MemoryError:
            raise _bad("%d bytes for a class's samples do not fit in the free memory" % size)

    def _append(self, label):
        mem = self._alloc()  # first: a class that does not fit is not half added
        if self._proto:
            size = 4 * self.n
            try:
                sums = array("f" if self._float else "i", bytes(size))
            except MemoryError:
                raise _bad("%d bytes for a class's sums do not fit in the free memory" % size)
            self._sums.append(sums)
        self.labels.append(label)
        self._mem.append(mem)
        self._count.append(0)
        self._next.append(0)

    def add_class(self, label):
        """Add a class labelled ``label``; returns its index."""
        self._check_labels([label], self.labels)
        self._append(label)
        return len(self.labels) - 1

    def reset(self, labels=None):
        """Forget every sample, and the classes too unless ``labels`` (the new ones) are given."""
        self._set_classes(labels or [])

    # -- vectors ---------------------------------------------------------------------------

    def _data(self, x):
        # The vector's bytes, after checking its dtype and element count.
        dtype = getattr(x, "dtype", None)
        if dtype != self.dtype:
            raise DeviceError(
                "learner vectors are %s, got %s" % (self.dtype, dtype or type(x).__name__),
                _E_BAD_DTYPE,
            )
        count = x.count()
        if count != self.n:
            raise DeviceError(
                "learner vectors hold %d values, got shape %r (%d values)"
                % (self.n, tuple(x.shape), count),
                _E_BAD_SHAPE,
            )
        data = x.data
        if len(data) != self.n * self._isize:
            raise DeviceError(
                "a %d-value %s vector is %d bytes, got %d"
                % (self.n, self.dtype, self.n * self._isize, len(data)),
                _E_BAD_SHAPE,
            )
        return data

    def _floats(self, data):
        v = struct.unpack("<%df" % self.n, data)
        for i in range(self.n):
            if v[i] - v[i] != 0.0:  # NaN or infinity: it would poison every comparison
                raise _bad("vector value %d is %r; learner values must be finite" % (i, v[i]))
        return v

    def _check_class(self, cls):
        nc = len(self.labels)
        if not _is_int(cls) or cls < 0 or cls >= nc:
            if nc == 0:
                raise _bad("class %r: there are no classes yet (0 classes)" % (cls,))
            raise _bad("class must be an int in 0..%d (%d classes), not %r" % (nc - 1, nc, cls))

    # -- learning ----------------------------------------------------------------------------

    def learn(self, x, cls):
        """Store ``x`` as a sample of class ``cls``; returns the class predicted before."""
        data = self._data(x)
        self._check_class(cls)
        q = self._query(data)
        before = self._predict(q)[0]
        n = self.n
        slot = self._next[cls]
        mem = self._mem[cls]
        base = slot * n
        if self._float:
            for i in range(n):
                mem[base + i] = q[i]
        else:
            mem[base : base + n] = data
        self._next[cls] = slot + 1 if slot + 1 < self.per_class else 0
        if self._count[cls] < self.per_class:
            self._count[cls] += 1
        self._total += 1
        if self._proto:
            self._refresh(cls)
        return before

    def _refresh(self, c):
        # Prototype mode: the class's sums (int) or means (float32) over its held slots,
        # slot 0 first.
        n = self.n
        cnt = self._count[c]
        mem = self._mem[c]
        sums = self._sums[c]
        if self._float:
            for i in range(n):
                s = 0.0
                j = i
                for _ in range(cnt):
                    s += mem[j]
                    j += n
                sums[i] = s / cnt if cnt else 0.0
        else:
            sgn = self._sgn
            for i in range(n):
                s = 0
                j = i
                for _ in range(cnt):
                    s += mem[j] ^ sgn
                    j += n
                sums[i] = s

    # -- prediction --------------------------------------------------------------------------

    def predict(self, x):
        """``(class, distance)`` of ``x``; ``(-1, None)`` while no sample is held."""
        return self._predict(self._query(self._data(x)))

    def _query(self, data):
        # What the distance loops take: float32 values, the bytes as they came (viper), or
        # the bytes flipped to offset form (plain loops; the buffer is reused).
        if self._float:
            return self._floats(data)
        if self._fast:
            return data
        q = self._q
        sgn = self._sgn
        for i in range(self.n):
            q[i] = data[i] ^ sgn
        return q

    def _predict(self, q):
        if self._proto:
            return self._nearest_mean(q)
        return self._vote(self._neighbours(q))

    def _neighbours(self, q):
        # The k nearest samples: fills self._top, returns how many there are (< k when fewer
        # samples are held).
        n = self.n
        k = self.k
        top = self._top
        m = 0
        for c in range(len(self.labels)):
            cnt = self._count[c]
            if not cnt:
                continue
            mem = self._mem[c]
            if self._float:
                m = _knn_float(mem, q, n, cnt, self._l2, c, top, k, m)
            elif self._fast:
                m = _viper.knn(mem, q, n, cnt, self._sgn, self._l2, c, top, k, m)
            elif self._l2:
                m = _knn_l2(mem, q, n, cnt, self._sgn, c, top, k, m)
            else:
                m = _knn_l1(mem, q, n, cnt, self._sgn, c, top, k, m)
        return m

    def _vote(self, m):
        # Majority of the m nearest (top[0:m] distances, top[k:k + m] classes), then the
        # smaller summed distance, then the lower class.
        if not m:
            return -1, None
        top = self._top
        k = self.k
        best = -1
        best_votes = 0
        best_sum = 0
        best_near = 0
        for a in range(m):
            c = top[k + a]
            seen = False
            for b in range(a):
                if top[k + b] == c:
                    seen = True  # counted with its first (nearest) vote
                    break
            if seen:
                continue
            votes = 0
            total = 0
            for b in range(a, m):
                if top[k + b] == c:
                    votes += 1
                    total += top[b]
            if (
                best < 0
                or votes > best_votes
                or (votes == best_votes and (total < best_sum or (total == best_sum and c < best)))
            ):
                best, best_votes, best_sum, best_near = c, votes, total, top[a]
        return best, float(best_near)

    def _nearest_mean(self, q):
        n = self.n
        best = -1
        best_d = None
        best_w = 1
        for c in range(len(self.labels)):
            cnt = self._count[c]
            if not cnt:
                continue
            sums = self._sums[c]
            if self._float:
                d = 0.0
                for i in range(n):
                    e = q[i] - sums[i]
                    if self._l2:
                        d += e * e
                    else:
                        d += e if e >= 0.0 else -e
                w = 1
            else:
                if self._fast:
                    d = _viper.proto(sums, q, n, cnt, self._sgn, self._l2)
                elif self._l2:
                    d = _proto_l2(sums, q, n, cnt)
                else:
                    d = _proto_l1(sums, q, n, cnt)
                # d is the distance times w: compare d / w exactly by cross-multiplying.
                w = cnt * cnt if self._l2 else cnt
            if best < 0 or d * best_w < best_d * w:
                best, best_d, best_w = c, d, w
        if best < 0:
            return -1, None
        return best, best_d / best_w

    # -- state -------------------------------------------------------------------------------

    def counts(self):
        """Samples held per class, by class index."""
        return list(self._count)

    def samples(self):
        """Samples learned since the learner started (or was reset), evicted ones included."""
        return self._total

    def memory_bytes(self):
        """Bytes allocated for samples (and the prototype sums or means)."""
        per = self.per_class * self.n * self._isize
        if self._proto:
            per += 4 * self.n
        return per * len(self.labels)

    def info(self):
        """What the learner is and holds, as plain data."""
        return {
            "kind": "memory",
            "n": self.n,
            "dtype": self.dtype,
            "per_class": self.per_class,
            "k": self.k,
            "metric": self.metric,
            "mode": self.mode,
            "max_classes": self.max_classes,
            "labels": list(self.labels),
            "counts": self.counts(),
            "samples": self._total,
            "memory_bytes": self.memory_bytes(),
            "kernels": "viper" if self._fast else "plain",
        }

    def to_bytes(self):
        """The whole state in the versioned format of the module docstring."""
        nc = len(self.labels)
        parts = [
            struct.pack(
                _HEADER,
                _MAGIC,
                _VERSION,
                self._dt,
                self._l2,
                self._proto,
                self.n,
                self.per_class,
                self.k,
                self.max_classes,
                nc,
                self._total,
            )
        ]
        vec = self.n * self._isize
        for c in range(nc):
            label = self.labels[c].encode()
            parts.append(struct.pack("<B", len(label)))
            parts.append(label)
            cnt = self._count[c]
            parts.append(struct.pack("<HH", cnt, self._next[c]))
            mem = self._mem[c]
            if self._float:
                mem = bytes(mem)  # array('f') holds little-endian float32 on every target
            parts.append(mem[0 : cnt * vec])
        data = b"".join(parts)
        return data + struct.pack("<I", crc32(data) & 0xFFFFFFFF)

    @staticmethod
    def from_bytes(data):
        """A learner from ``to_bytes`` output; DeviceError(E_BAD_VALUE) naming what is wrong."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise _bad("learner state must be bytes, not %s" % type(data).__name__)
        data = bytes(data)
        size = len(data)
        if size < _HEADER_SIZE + _CRC_SIZE:
            raise _bad(
                "learner state is truncated: %d bytes, the header alone needs %d"
                % (size, _HEADER_SIZE + _CRC_SIZE)
            )
        head = struct.unpack_from(_HEADER, data, 0)
        if head[0] != _MAGIC:
            raise _bad("not learner state: magic %r, expected %r" % (head[0], _MAGIC))
        if head[1] != _VERSION:
            raise _bad(
                "learner state version %d; this learner reads version %d" % (head[1], _VERSION)
            )
        dt, l2, proto, n, per_class, k, max_classes, nc, total = head[2:11]
        for name, value, choices in (
            ("dtype", dt, _DTYPES),
            ("metric", l2, _METRICS),
            ("mode", proto, _MODES),
        ):
            if value >= len(choices):
                raise _bad(
                    "learner state has %s code %d (of 0..%d)" % (name, value, len(choices) - 1)
                )
        if n < 1 or per_class < 1 or k < 1 or max_classes < 1 or nc > max_classes:
            raise _bad(
                "learner state has n %d, per_class %d, k %d, %d classes of max_classes %d"
                % (n, per_class, k, nc, max_classes)
            )
        # Walk the class records before allocating anything.
        vec = n * _ITEMSIZE[dt]
        end = size - _CRC_SIZE
        pos = _HEADER_SIZE
        records = []
        for c in range(nc):
            if pos + 1 > end:
                raise _bad("learner state is truncated in class %d of %d" % (c, nc))
            ln = data[pos]
            if pos + 1 + ln + 4 > end:
                raise _bad("learner state is truncated in class %d of %d" % (c, nc))
            label = data[pos + 1 : pos + 1 + ln]
            cnt, nxt = struct.unpack_from("<HH", data, pos + 1 + ln)
            if cnt > per_class or nxt >= per_class or (cnt < per_class and nxt != cnt):
                raise _bad(
                    "learner state class %d holds %d samples, next slot %d, of %d slots"
                    % (c, cnt, nxt, per_class)
                )
            pos += 1 + ln + 4
            if pos + cnt * vec > end:
                raise _bad(
                    "learner state is truncated: class %d needs %d sample bytes, %d left"
                    % (c, cnt * vec, max(end - pos, 0))
                )
            records.append((label, cnt, nxt, pos))
            pos += cnt * vec
        if pos != end:
            raise _bad(
                "learner state has %d bytes after its %d classes" % (end - pos, nc)
                if pos < end
                else "learner state is truncated"
            )
        want = struct.unpack_from("<I", data, end)[0]
        if crc32(memoryview(data)[0:end]) & 0xFFFFFFFF != want:
            raise _bad("learner state is corrupt: CRC-32 mismatch")
        labels = []
        for r in records:
            try:
                labels.append(str(r[0], "utf-8"))
            except Exception:  # UnicodeError (ValueError on CPython)
                raise _bad("learner state has a class label that is not UTF-8: %r" % (r[0],))
        if total < sum(r[1] for r in records):
            raise _bad("learner state counts %d samples learned but holds more" % total)
        lr = MemoryLearner(
            n, _DTYPES[dt], per_class, k, _METRICS[l2], _MODES[proto], max_classes, labels
        )
        fmt = "<%df" % n
        for c in range(nc):
            cnt = records[c][1]
            start = records[c][3]
            mem = lr._mem[c]
            if lr._float:
                for s in range(cnt):
                    v = struct.unpack_from(fmt, data, start + s * vec)
                    for i in range(n):
                        mem[s * n + i] = v[i]
            else:
                mem[0 : cnt * vec] = memoryview(data)[start : start + cnt * vec]
            lr._count[c] = cnt
            lr._next[c] = records[c][2]
            if lr._proto:
                lr._refresh(c)
        lr._total = total
        return lr
