"""The active pack's learner: learns labelled samples on the device, keeps them, hands them back.

A pack with a ``learning`` section (PACK_SET; made by ``kpdev.host.packs.pack.device_pack``) names
its learner::

    {"learner": "memory" | "akida", "classes": [label, ...], "max_classes": int,
     "model": pack model id | None, "output": output index,
     "per_class": int, "k": int, "metric": "l1" | "l2", "mode": "knn" | "prototype",
     "state": stored file name | None, "state_sha256": hex | None}

- ``memory`` (``kpdev.accelerators.learner.MemoryLearner``, any board): learns the vectors the
  pipeline makes, or with ``model`` that model's output ``output`` (an embedding); its
  initial memory, when the pack brings one, is the stored file ``state``.
- ``akida``: the pack model ``model`` is an Akida model whose last layer is compiled for
  learning; akida's own learning (``fit``, ``add_classes``) runs on the Akida device when
  there is one, in akida's software engine otherwise.

LEARN_SAVE writes the learner's state atomically to ``STATE/learn.bin``::

    b"KPL1" | header length (u32 little-endian) | header (JSON) | payload

The header names the pack (name, version, and ``base``: the sha256 of the state the pack
started from), the learner, its class labels, the samples learned, the last host session and
the payload's length and sha256; the payload is the memory learner's ``to_bytes()`` or the
Akida model with its learned weights (``.fbz``).  A restart restores the saved state when it
belongs to the active pack and its payload is whole; otherwise the learner starts from the
pack (and LEARN_INFO says why).  LEARN_EXPORT hands the same bytes to the host.

Imported by the first request that needs it and kept (the agent holds the session on its
``PackRunner``), like ``kpdev.device.packrun``.
"""

import hashlib
import json
import struct

from kpdev.device import fsutil, sysinfo
from kpdev.protocol.errors import DeviceError

try:
    from binascii import hexlify
except ImportError:  # MicroPython builds without binascii have ubinascii
    from ubinascii import hexlify

from kpdev.protocol.compat import const

_E_BAD_REQUEST = const(5)
_E_BAD_DTYPE = const(19)
_E_BAD_VALUE = const(25)
_E_LEARN = const(27)

_FILE = "/learn.bin"
_MAGIC = b"KPL1"
_MAX_CLASSES = const(32)
_MAX_LABEL = const(64)
LEARNERS = ("memory", "akida")


def _hex(b):
    return hexlify(b).decode()


def sha256_hex(data):
    return _hex(hashlib.sha256(data).digest())


def _need(cond, message, code=_E_LEARN):
    if not cond:
        raise DeviceError(message, code)


def check_spec(spec, models):
    """Check a pack's learning section (``models``: pack model id -> model entry)."""
    _need(isinstance(spec, dict), "pack learning must be a map", _E_BAD_REQUEST)
    kind = spec.get("learner")
    _need(
        kind in LEARNERS,
        "pack learning: unknown learner %r (this agent has %s)" % (kind, ", ".join(LEARNERS)),
        _E_BAD_REQUEST,
    )
    classes = spec.get("classes")
    _need(isinstance(classes, list), "pack learning needs its list of classes", _E_BAD_REQUEST)
    for label in classes:
        _need(isinstance(label, str) and label, "pack learning: class labels are text")
    mid = spec.get("model")
    if mid is not None:
        _need(mid in models, "pack learning: model %r is not one of the pack's models" % mid)
    _need(
        kind != "akida" or mid is not None,
        "pack learning: an akida learner needs the pack model it learns with",
        _E_BAD_REQUEST,
    )
    max_classes = spec.get("max_classes") or _MAX_CLASSES
    _need(
        isinstance(max_classes, int) and len(classes) <= max_classes,
        "pack learning: %d classes but at most %r" % (len(classes), max_classes),
        _E_BAD_REQUEST,
    )
    return kind


def _check_labels(labels, known, max_classes):
    _need(
        isinstance(labels, list) and labels,
        "labels must be a non-empty list of class names",
        _E_BAD_REQUEST,
    )
    seen = list(known)
    for label in labels:
        _need(
            isinstance(label, str) and 0 < len(label) <= _MAX_LABEL,
            "class labels are text of 1..%d characters, not %r" % (_MAX_LABEL, label),
            _E_BAD_VALUE,
        )
        _need(label not in seen, "class %r is already known" % label, _E_BAD_VALUE)
        seen.append(label)
    _need(
        len(seen) <= max_classes,
        "%d classes would be more than the %d this learner holds" % (len(seen), max_classes),
        _E_BAD_VALUE,
    )


def _check_classes(ys, n_classes):
    # Every label of a batch is checked before any sample is learned: a bad batch learns nothing.
    for i in range(len(ys)):
        y = ys[i]
        _need(
            isinstance(y, int) and not isinstance(y, bool),
            "label %d is a %s; labels are int class indices" % (i, type(y).__name__),
            _E_BAD_DTYPE,
        )
        _need(
            0 <= y < n_classes,
            "label %d is class %d, but the learner has classes 0..%d (%d classes; add new "
            "classes first)" % (i, y, n_classes - 1, n_classes),
            _E_BAD_VALUE,
        )


class _Memory:
    # The memory learner of a pack, over the pipeline's output or a model's embedding.

    def __init__(self, agent, runner, spec):
        self.spec = spec
        self.model = None
        if spec.get("model") is not None:
            self.model = runner.models[spec["model"]]["model"]
            _, loaded = agent.model(self.model)
            out = loaded.io_spec()["outputs"][spec.get("output") or 0]
            dtype, shape = out["dtype"], out["shape"]
        else:
            p = runner.pipeline
            _need(
                p is not None,
                "pack learning: a memory learner needs a pipeline or a model to learn from",
                _E_BAD_REQUEST,
            )
            dtype, shape = p.out_dtype, p.out_shape
        n = 1
        for d in shape[1:]:
            n *= d
        self.n = n
        self.dtype = dtype
        self.learner = None

    def start(self, agent, payload, labels):
        """Start from ``payload`` (MemoryLearner bytes) or, when None, empty with ``labels``."""
        from kpdev.accelerators.learner import MemoryLearner

        if payload is None:
            s = self.spec
            self.learner = MemoryLearner(
                self.n,
                self.dtype,
                s.get("per_class") or 16,
                s.get("k") or 1,
                s.get("metric") or "l1",
                s.get("mode") or "knn",
                s.get("max_classes") or _MAX_CLASSES,
                list(labels),
            )
        else:
            self.learner = MemoryLearner.from_bytes(payload)
            _need(
                self.learner.n == self.n and self.learner.dtype == self.dtype,
                "learned state holds %d %s values a sample, the pack makes %d %s"
                % (self.learner.n, self.learner.dtype, self.n, self.dtype),
            )

    def vector(self, agent, x):
        if self.model is None:
            return x
        _, outputs, _ = agent.run(self.model, [x])
        return outputs[self.spec.get("output") or 0]

    def labels(self):
        return self.learner.labels

    def predict(self, vectors):
        return [self.learner.predict(v) for v in vectors]

    def learn(self, vectors, ys):
        return [self.learner.learn(vectors[i], ys[i]) for i in range(len(ys))]

    def add_classes(self, labels):
        for label in labels:
            self.learner.add_class(label)

    def payload(self):
        return self.learner.to_bytes()

    def info(self):
        return self.learner.info()


class LearnSession:
    """The learner of the active pack with its settings, its saved state and its export."""

    def __init__(self, agent, runner):
        spec = runner.spec["learning"]
        self.spec = spec
        self.kind = spec["learner"]
        self.pack = [runner.spec["name"], runner.spec["version"]]
        self.base = spec.get("state_sha256") or ""
        if self.kind == "akida":
            self.base = runner.models[spec["model"]]["sha256"]
        self.max_classes = spec.get("max_classes") or _MAX_CLASSES
        if self.kind == "akida":
            # Akida learns on CPython boards only: a microcontroller never loads this code.
            from kpdev.device.learn_akida import AkidaAdapter as adapter
        else:
            adapter = _Memory
        self.adapter = adapter(agent, runner, spec)
        self.enabled = True
        self.session = None
        self.samples = 0  # learned since the pack's own state
        self.dirty = False
        self.restored = "pack"
        self.ignored = None  # why a saved state was not restored
        self._blob = None  # the serialized state, until the next change
        if not self._restore(agent):
            self._start_from_pack(agent)

    # -- state ----------------------------------------------------------------------------
    def _path(self, agent):
        return agent.state + _FILE

    def _start_from_pack(self, agent):
        payload = None
        state = self.spec.get("state")
        if state is not None:
            entry = agent.store.entry(state)  # E_NO_MODEL when it is not stored
            _need(
                entry["sha256"] == self.spec.get("state_sha256"),
                "stored learner state %r is not the one the pack was built with; deploy the "
                "pack again" % state,
            )
            with open(agent.store.path(state), "rb") as f:
                payload = f.read()
        self.adapter.start(agent, payload, self.spec["classes"])
        self.samples = 0
        self.session = None
        self.enabled = True
        self.dirty = False
        self.restored = "pack"
        self._blob = None

    def _restore(self, agent):
        # The saved state, when it is the active pack's and whole.
        try:
            data = fsutil.read_atomic(self._path(agent), True)
        except OSError:
            data = None
        if data is None:
            return False
        header, payload = _parse(data)
        if header is None:
            self.ignored = "the saved learner state is damaged (%s)" % payload
            return False
        if [header.get("pack"), header.get("version")] != self.pack or header.get(
            "base"
        ) != self.base:
            self.ignored = "the saved learner state is of pack %s %s" % (
                header.get("pack"),
                header.get("version"),
            )
            return False
        try:
            self.adapter.start(agent, payload, header["labels"])
        except DeviceError as e:
            self.ignored = "the saved learner state does not load: %s" % e.message
            return False
        self.samples = header.get("samples") or 0
        self.session = header.get("session")
        self.enabled = header.get("enabled", True)
        self.restored = "saved"
        self._blob = data
        return True

    def serialize(self):
        """The learner's state as LEARN_SAVE writes it (header and payload)."""
        if self._blob is None:
            payload = self.adapter.payload()
            header = json.dumps(
                {
                    "pack": self.pack[0],
                    "version": self.pack[1],
                    "base": self.base,
                    "learner": self.kind,
                    "labels": self.adapter.labels(),
                    "samples": self.samples,
                    "session": self.session,
                    "enabled": self.enabled,
                    "payload": len(payload),
                    "sha256": sha256_hex(payload),
                }
            ).encode()
            self._blob = _MAGIC + struct.pack("<I", len(header)) + header + payload
        return self._blob

    def _changed(self):
        self.dirty = True
        self._blob = None

    # -- operations -----------------------------------------------------------------------
    def classify(self, agent, x):
        """(class, score, µs) of one learner input (the pipeline's output); class -1 when the
        learner has learned nothing yet."""
        t0 = sysinfo.ticks_us()
        c, score = self.adapter.predict([self.adapter.vector(agent, x)])[0]
        return c, score, sysinfo.ticks_diff(sysinfo.ticks_us(), t0)

    def learn(self, agent, xs, ys, session=None):
        """Learn the model inputs ``xs`` with class indices ``ys``; the classes predicted for
        them before they were learned."""
        _need(self.enabled, "learning is disabled on this device: enable it (LEARN_ENABLE)")
        _need(len(xs) == len(ys), "%d samples but %d labels" % (len(xs), len(ys)), _E_BAD_VALUE)
        _check_classes(ys, len(self.adapter.labels()))
        vectors = [self.adapter.vector(agent, x) for x in xs]
        before = self.adapter.learn(vectors, ys)
        self.samples += len(ys)
        if session is not None:
            self.session = session
        self._changed()
        return before

    def add_classes(self, labels):
        """Add classes by label; their indices."""
        _check_labels(labels, self.adapter.labels(), self.max_classes)
        first = len(self.adapter.labels())
        self.adapter.add_classes(list(labels))
        self._changed()
        return list(range(first, first + len(labels)))

    def enable(self, on):
        """Switch learning on or off (classifying goes on either way)."""
        if on != self.enabled:
            self.enabled = on
            self._changed()

    def reset(self, agent):
        """Back to the pack's own state; the saved state is removed."""
        fsutil.remove(self._path(agent))
        fsutil.remove(self._path(agent) + ".tmp")
        self.ignored = None
        self._start_from_pack(agent)

    def save(self, agent):
        """Write the state atomically; its size and sha256."""
        data = self.serialize()
        try:
            fsutil.write_atomic(self._path(agent), data)
        except OSError as e:
            raise DeviceError(
                "cannot save the learner state (%d bytes): %s; the previous save stands"
                % (len(data), e),
                _E_LEARN,
            )
        self.dirty = False
        self.restored = "saved"
        return {"bytes": len(data), "sha256": sha256_hex(data), "samples": self.samples}

    def info(self, agent):
        """What LEARN_INFO reports."""
        out = {
            "learner": self.kind,
            "pack": self.pack,
            "enabled": self.enabled,
            "labels": self.adapter.labels(),
            "samples": self.samples,
            "session": self.session,
            "dirty": self.dirty,
            "saved": fsutil.exists(self._path(agent)),
            "restored": self.restored,
            "ignored": self.ignored,
            "state": self.adapter.info(),
        }
        return out


def _parse(data):
    # (header, payload) of a saved state, or (None, why) when it is not whole.
    if len(data) < 8 or data[:4] != _MAGIC:
        return None, "not a kpdev learner state"
    (n,) = struct.unpack("<I", data[4:8])
    if 8 + n > len(data):
        return None, "truncated header"
    try:
        header = json.loads(data[8 : 8 + n])
    except ValueError:
        return None, "unreadable header"
    if not isinstance(header, dict):
        return None, "unreadable header"
    payload = data[8 + n :]
    if len(payload) != header.get("payload") or sha256_hex(payload) != header.get("sha256"):
        return None, "payload does not match its sha256"
    return header, payload


def session(agent):
    """The active pack's learning session (created on first use), or DeviceError naming why
    there is none."""
    from kpdev.device import packrun

    runner = packrun.active(agent)
    _need(
        runner.spec.get("learning") is not None,
        "pack %s has no learner: build it with --learner memory or --learner akida"
        % runner.spec["name"],
    )
    if runner.learn is None:
        runner.learn = LearnSession(agent, runner)
    return runner.learn
