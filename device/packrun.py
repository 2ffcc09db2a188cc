"""The Knowledge Pack a device runs: its feature pipeline, its model graph, kept across restarts.

The host sends a compact description of a pack (PACK_SET, built by ``kpdev.host.packs.pack``)::

    {"name": str, "version": str, "root": id, "pipeline": spec | None,
     "models": [{"id": str, "model": stored model name, "sha256": hex, "classes": [label, ...],
                 "results": {parent class index: child id}, "output": output index}]}

Classifying one input runs the pipeline (raw window -> model input), the root model, and while
the class a model picks is listed in its ``results``, the child model named there on the same
model input.  The description is saved atomically under the agent's state directory, so a
restart keeps the pack; the model files themselves are in the model store.

Imported by the first request that needs it rather than with a handler group: the agent keeps
its ``PackRunner`` between requests, so this code must not be dropped with an overlay.
"""

import json
import struct

from kpdev.device import fsutil, sysinfo
from kpdev.protocol.compat import const
from kpdev.protocol.errors import DeviceError

_E_BAD_REQUEST = const(5)
_E_NO_MODEL = const(16)
_E_CHECKSUM = const(21)
_E_BAD_VALUE = const(25)

_FILE = "/pack.json"
_MAX_DEPTH = const(8)  # longest parent -> child chain a pack may route through

_UNPACK = {"int8": "b", "uint8": "B", "int16": "h", "int32": "i", "float32": "f"}


def _need(cond, message, code=_E_BAD_VALUE):
    if not cond:
        raise DeviceError(message, code)


def _check(spec):
    # The shape of a pack description; model presence is checked against the store separately.
    _need(isinstance(spec, dict), "pack must be a map", _E_BAD_REQUEST)
    for key in ("name", "version"):
        _need(isinstance(spec.get(key), str), "pack needs a string %r" % key, _E_BAD_REQUEST)
    _need(
        isinstance(spec.get("root"), str) or (spec.get("root") is None and not spec.get("models")),
        "pack needs a string 'root'",
        _E_BAD_REQUEST,
    )
    learning = spec.get("learning")
    models = spec.get("models")
    _need(
        isinstance(models, list) and (models or learning is not None),
        "pack needs a list of models (or a learner)",
        _E_BAD_REQUEST,
    )
    ids = {}
    for m in models:
        _need(isinstance(m, dict), "each pack model must be a map", _E_BAD_REQUEST)
        for key in ("id", "model", "sha256"):
            _need(isinstance(m.get(key), str), "pack model needs a string %r" % key)
        _need(m["id"] not in ids, "pack model id %r appears twice" % m["id"])
        classes = m.get("classes")
        _need(
            isinstance(classes, list) and classes,
            "pack model %r needs its list of classes" % m["id"],
        )
        results = {}
        got = m.get("results") or {}
        _need(
            isinstance(got, dict),
            "pack model %r: 'results' must be a map" % m["id"],
            _E_BAD_REQUEST,
        )
        for k, v in got.items():
            # JSON (the saved copy) turns the int keys into strings.
            if isinstance(k, str) and k.isdigit():
                k = int(k)
            _need(
                isinstance(k, int) and not isinstance(k, bool) and isinstance(v, str),
                "pack model %r: 'results' maps class indexes to model ids, not %r: %r"
                % (m["id"], k, v),
                _E_BAD_REQUEST,
            )
            results[k] = v
        m["results"] = results
        m["output"] = m.get("output") or 0
        ids[m["id"]] = m
    _need(not ids or spec["root"] in ids, "pack root %r is not one of its models" % spec["root"])
    if learning is not None:
        from kpdev.device.learnrun import check_spec

        check_spec(learning, ids)
    for m in models:
        for k in m["results"]:
            child = m["results"][k]
            _need(
                child in ids, "model %r routes class %d to unknown model %r" % (m["id"], k, child)
            )
            _need(
                0 <= k < len(m["classes"]),
                "model %r routes class %d but has %d classes" % (m["id"], k, len(m["classes"])),
            )
    return ids


class PackRunner:
    """A checked pack description with its pipeline, ready to classify."""

    def __init__(self, agent, spec):
        self.models = _check(spec)
        self.spec = spec
        self.root = spec["root"]
        for m in spec["models"]:
            entry = agent.store.entry(m["model"])  # E_NO_MODEL when it is not stored
            if entry["sha256"] != m["sha256"]:
                raise DeviceError(
                    "stored model %r is not the one pack %s was built with (sha256 %s..., pack "
                    "has %s...); deploy the pack again"
                    % (m["model"], spec["name"], entry["sha256"][:12], m["sha256"][:12]),
                    _E_CHECKSUM,
                )
        self.pipeline = None
        if spec.get("pipeline"):
            from kpdev.device.pipeline import Pipeline

            self.pipeline = Pipeline(spec["pipeline"])
        self.segmenter = None
        self.window_index = 0
        self.learn = None  # the learning session (kpdev.device.learnrun), made on first use

    def describe(self):
        """What PACK_GET and PACK_SET report."""
        p = self.pipeline
        return {
            "name": self.spec["name"],
            "version": self.spec["version"],
            "root": self.root,
            "models": [m["id"] for m in self.spec["models"]],
            "window": [p.size, p.stride] if p else None,
            "axes": p.n_axes if p else None,
            "dtype": p.input_dtype if p else None,
            "features": p.n_features if p else None,
            "learner": (self.spec.get("learning") or {}).get("learner"),
        }

    def classify(self, agent, x, timings=None, with_input=False):
        """Classify one input (a raw window, or the model input when there is no pipeline).

        Returns ``{"c": class, "l": label, "s": score, "m": final model id, "p": [[id, class],
        ...], "tf": pipeline µs, "tm": models µs}``.  ``timings``, a list, gets one
        ``(stage, µs)`` per pipeline stage and model; ``with_input`` adds ``"x"``, the model
        input the pipeline made (to check it against the host's).
        """
        tf = 0
        if self.pipeline is not None:
            t0 = sysinfo.ticks_us()
            x = self.pipeline.transform(x, timings)
            tf = sysinfo.ticks_diff(sysinfo.ticks_us(), t0)
        if self.spec.get("learning") is not None:
            return self._learned(agent, x, tf, timings, with_input)
        mid = self.root
        path = []
        tm = 0
        for _ in range(_MAX_DEPTH):
            m = self.models[mid]
            name, outputs, us = agent.run(m["model"], [x])
            tm += us
            if timings is not None:
                timings.append(("model:" + mid, us))
            _, loaded = agent.model(name)
            c, score = _top(outputs[m["output"]], loaded.io_spec()["outputs"][m["output"]])
            path.append([mid, c])
            child = m["results"].get(c)
            if child is None:
                break
            mid = child
        classes = m["classes"]
        label = classes[c] if c < len(classes) else str(c)
        out = {"c": c, "l": label, "s": score, "m": mid, "p": path, "tf": tf, "tm": tm}
        self._spent(agent, tf, tm)
        if with_input:
            from kpdev.protocol.tensors import encode_tensor

            out["x"] = encode_tensor(x)
        return out

    def _spent(self, agent, tf, tm):
        # STATS counts the whole classification, the span its latency (tf + tm) covers; a
        # measuring power source gives its energy over that span.
        c = agent.stats.packs.get(self.spec["name"])
        if c is None:
            c = agent.stats.packs[self.spec["name"]] = [0, 0, 0, 0, 0, 0]
        c[0] += 1
        c[1] += tf
        c[2] += tm
        if agent.on_inference is not None:
            uj = agent.power.span(tf + tm)
            if uj is not None:
                c[3] += uj
                c[4] += 1
                c[5] += tf + tm

    def _learned(self, agent, x, tf, timings, with_input):
        # A learning pack: the learner answers (class -1, label None before it learned any).
        from kpdev.device.learnrun import session

        c, score, us = session(agent).classify(agent, x)
        if timings is not None:
            timings.append(("learner", us))
        labels = self.learn.adapter.labels()
        label = labels[c] if 0 <= c < len(labels) else None
        out = {"c": c, "l": label, "s": score, "m": "learner", "p": [["learner", c]]}
        out["tf"] = tf
        out["tm"] = us
        self._spent(agent, tf, us)
        if with_input:
            from kpdev.protocol.tensors import encode_tensor

            out["x"] = encode_tensor(x)
        return out

    def start_stream(self):
        """Begin a stream of raw samples: windows are cut from here on."""
        _need(
            self.pipeline is not None, "pack %s has no pipeline to stream into" % self.spec["name"]
        )
        from kpdev.device.pipeline import Segmenter

        p = self.pipeline
        dtype = self.spec["pipeline"].get("input_dtype") or "float32"
        self.segmenter = Segmenter(p.size, p.stride, p.n_axes, dtype)
        self.window_index = 0


def _top(t, spec):
    # The highest output and its dequantized score.  Quantization keeps the order (scale > 0).
    fmt = _UNPACK.get(t.dtype)
    _need(fmt is not None, "cannot classify an output of dtype %s" % t.dtype)
    n = len(t.data) // struct.calcsize(fmt)
    values = struct.unpack("<%d%s" % (n, fmt), t.data)
    best = 0
    for i in range(1, n):
        if values[i] > values[best]:
            best = i
    score = values[best]
    scale = spec.get("scale")
    if isinstance(scale, float) or isinstance(scale, int):
        score = (score - (spec.get("zero_point") or 0)) * scale
    return best, float(score)


def _path(agent):
    return agent.state + _FILE


def load(agent):
    """The saved pack as a ``PackRunner`` (None when there is none), kept on ``agent.pack``."""
    if agent.pack is None:
        text = fsutil.read_atomic(_path(agent))
        if text is not None:
            agent.pack = PackRunner(agent, json.loads(text))
    return agent.pack


def install(agent, spec):
    """Check ``spec`` against the store, save it atomically and make it the agent's pack."""
    runner = PackRunner(agent, spec)
    old = agent.pack
    if old is not None and old.learn is not None and old.spec == runner.spec:
        runner.learn = old.learn  # the same pack again: what it learned and not saved stays
    elif spec.get("learning") is not None:
        # The learner is set up now, so a pack whose learner cannot start is refused before
        # it replaces the active one.
        from kpdev.device.learnrun import LearnSession

        runner.learn = LearnSession(agent, runner)
    fsutil.write_atomic(_path(agent), json.dumps(spec))
    agent.pack = runner
    return runner


def clear(agent):
    """Forget the pack (its models stay in the store)."""
    fsutil.remove(_path(agent))
    fsutil.remove(_path(agent) + ".tmp")
    agent.pack = None


def active(agent):
    """The agent's pack, or DeviceError(E_NO_MODEL) saying how to get one."""
    runner = load(agent)
    if runner is None:
        raise DeviceError("no Knowledge Pack on this device: kpdev deploy PACK.kp", _E_NO_MODEL)
    return runner
