"""The device agent: answers framed requests on a link, one handler per operation.

At the REPL (MicroPython or Python) the same agent works without a link::

    >>> from kpdev.device import agent
    >>> agent.models()
    >>> agent.infer("demo", [0] * 16)
    >>> agent.stats()
"""

import os
import sys

from kpdev import __version__, accelerators
from kpdev.device import sysinfo
from kpdev.device.links import LinkClosed
from kpdev.device.stats import Stats
from kpdev.device.store import ModelStore
from kpdev.protocol import cbor, ops
from kpdev.protocol.errors import DeviceError, KpdevError
from kpdev.protocol.framing import DEFAULT_MAX_PAYLOAD, FrameParser, FrameWriter
from kpdev.protocol.tensors import Tensor, decode_tensor, encode_tensor

_RESPONSE = ops.FLAG_RESPONSE
_ERROR_FLAGS = ops.FLAG_RESPONSE | ops.FLAG_ERROR
_IDLE_RESYNC_MS = 1000  # a partial frame this stale is given up on

if sysinfo.MICROPYTHON:
    DEFAULT_AGENT_MAX_PAYLOAD = 2048
    DEFAULT_WINDOW = 2
    _MAX_LOADED = 1
else:
    DEFAULT_AGENT_MAX_PAYLOAD = 256 * 1024
    DEFAULT_WINDOW = 8
    _MAX_LOADED = 4

_ERROR_TEXT = {
    ops.E_BAD_CRC: "payload CRC mismatch: frame dropped, send it again",
    ops.E_TOO_LARGE: "frame payload larger than the negotiated maximum",
    ops.E_AUTH: "frame failed authentication (wrong or missing key)",
    ops.E_REPLAY: "frame counter not above the last one: replay dropped",
    ops.E_BAD_REQUEST: "unsupported protocol version",
}


def _field(body, key, kind, required=True, default=None):
    v = body.get(key, default)
    if v is None:
        if required:
            raise DeviceError("request needs field %r" % key, ops.E_BAD_REQUEST)
        return default
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise DeviceError("field %r has the wrong type" % key, ops.E_BAD_REQUEST)
    return v


def _formats():
    offered = accelerators.available()
    out = {}
    for fmt in accelerators.FORMATS:
        names = [n for n in accelerators.FORMATS[fmt] if n in offered]
        if names:
            out[fmt] = names
    return out


def _tensors(x):
    items = x if isinstance(x, list) else [x]
    return [decode_tensor(t) for t in items]


class Agent:
    """Model store, backends and statistics behind the operation table."""

    def __init__(
        self,
        state,
        board="unknown",
        quota=1 << 20,
        max_payload=None,
        window=None,
        key=None,
    ):
        self.state = state
        self.board = board
        self.store = ModelStore(state + "/models", quota)
        self.stats = Stats()
        self.max_payload = max_payload or DEFAULT_AGENT_MAX_PAYLOAD
        self.window = window or DEFAULT_WINDOW
        self.key = key
        self._peer_max = DEFAULT_MAX_PAYLOAD
        self._loaded = {}  # name -> (sha256, LoadedModel)
        self._link = None
        self._parser = None
        self._writer = None
        self._running = False
        self._after_reply = None
        self._handlers = {
            ops.HELLO: self.op_hello,
            ops.INFO: self.op_info,
            ops.PING: self.op_ping,
            ops.STATS: self.op_stats,
            ops.REBOOT: self.op_reboot,
            ops.MODEL_BEGIN: self.op_model_begin,
            ops.MODEL_CHUNK: self.op_model_chunk,
            ops.MODEL_COMMIT: self.op_model_commit,
            ops.MODEL_ABORT: self.op_model_abort,
            ops.MODEL_LIST: self.op_model_list,
            ops.MODEL_INFO: self.op_model_info,
            ops.MODEL_ACTIVATE: self.op_model_activate,
            ops.MODEL_DELETE: self.op_model_delete,
            ops.INFER: self.op_infer,
            ops.INFER_BATCH: self.op_infer_batch,
        }

    # -- serving -------------------------------------------------------------------------
    def serve(self, link):
        """Answer frames on ``link`` until it closes; every failure becomes an ERROR frame."""
        self._link = link
        self._parser = FrameParser(self.max_payload, self.key)
        self._writer = FrameWriter(self.key)
        if hasattr(link, "on_connect"):
            link.on_connect = self._on_connect
        self._running = True
        read_size = self.max_payload + 64
        idle = 0
        while self._running:
            try:
                data = link.read(read_size, 200)
            except LinkClosed:
                break
            if not data:
                idle += 200
                if idle >= _IDLE_RESYNC_MS and self._parser.pending():
                    self._dispatch_all(self._parser.resync())
                    idle = 0
                continue
            idle = 0
            self.stats.bytes_in += len(data)
            self._dispatch_all(self._parser.feed(data))
        self.close()

    def _on_connect(self):
        # A new TCP client: forget half a frame from the last one; the auth counter stays.
        last = self._parser.last_counter
        self._parser = FrameParser(self.max_payload, self.key)
        self._parser.last_counter = last
        self._peer_max = DEFAULT_MAX_PAYLOAD

    def _dispatch_all(self, frames):
        for frame in frames:
            self.stats.frames_in += 1
            try:
                self.handle(frame)
            except Exception as e:  # never let a traceback reach the framed stream
                self._log_exception(e)
            if self._after_reply:
                action, self._after_reply = self._after_reply, None
                action()

    def handle(self, frame):
        """Answer one frame from the parser."""
        if frame.error:
            self.send_error(
                frame.rid, frame.op, frame.error, _ERROR_TEXT.get(frame.error, "bad frame")
            )
            return
        if frame.flags & (ops.FLAG_RESPONSE | ops.FLAG_EVENT):
            return  # the host sends requests only; ignore anything else
        handler = self._handlers.get(frame.op)
        if handler is None:
            name = ops.op_name(frame.op)
            if name.endswith("(reserved)"):
                self.send_error(
                    frame.rid,
                    frame.op,
                    ops.E_NOT_IMPLEMENTED,
                    "%s operations are reserved for a later protocol revision" % name[:-10],
                )
            else:
                self.send_error(
                    frame.rid, frame.op, ops.E_UNKNOWN_OP, "unknown operation %s" % name
                )
            return
        try:
            body = cbor.loads(frame.payload) if frame.payload else {}
            if not isinstance(body, dict):
                raise DeviceError("request payload must be a CBOR map", ops.E_MALFORMED)
            result = handler(body)
            payload = cbor.dumps(result)
        except KpdevError as e:
            self.send_error(frame.rid, frame.op, e.code, e.message)
            return
        except MemoryError:
            sysinfo.collect()
            self.send_error(frame.rid, frame.op, ops.E_INTERNAL, "out of memory")
            return
        except Exception as e:
            self.send_error(frame.rid, frame.op, ops.E_INTERNAL, "%s: %s" % (type(e).__name__, e))
            return
        if len(payload) > self._peer_max:
            self.send_error(
                frame.rid,
                frame.op,
                ops.E_TOO_LARGE,
                "reply of %d bytes exceeds the host's maximum of %d; send smaller batches"
                % (len(payload), self._peer_max),
            )
            return
        self._send(frame.op, frame.rid, payload, _RESPONSE)

    def _send(self, op, rid, payload, flags):
        data = self._writer.pack(op, rid, payload, flags)
        self.stats.frames_out += 1
        self.stats.bytes_out += len(data)
        self._link.write(data)

    def send_error(self, rid, op, code, message):
        """Answer request ``rid`` with an ERROR frame."""
        self.stats.error(code)
        self._send(
            ops.ERROR, rid, cbor.dumps({"code": code, "msg": message, "op": op}), _ERROR_FLAGS
        )

    def log(self, level, message):
        """Send a LOG event to the host (when connected) and to stderr."""
        try:
            sys.stderr.write("kpdev-agent %s: %s\n" % (level, message))
        except Exception:
            pass
        if self._link is not None and self._writer is not None:
            self._send(ops.LOG, 0, cbor.dumps({"lvl": level, "msg": message}), ops.FLAG_EVENT)

    def _log_exception(self, e):
        try:
            self.log("error", "%s: %s" % (type(e).__name__, e))
        except Exception:
            pass

    def close(self):
        """Release models and files."""
        self._running = False
        for name in list(self._loaded):
            self._unload(name)
        self.store.close()

    # -- models --------------------------------------------------------------------------
    def _unload(self, name):
        item = self._loaded.pop(name, None)
        if item:
            try:
                item[1].close()
            except Exception:
                pass

    def model(self, name=None):
        """(name, LoadedModel) for ``name`` or the active model, loading it if needed."""
        if name is None:
            name = self.store.active
        entry = self.store.entry(name)
        item = self._loaded.get(name)
        if item and item[0] == entry["sha256"]:
            return name, item[1]
        self._unload(name)
        backend = accelerators.for_format(entry["format"], entry["meta"].get("backend"))
        while len(self._loaded) >= _MAX_LOADED:
            self._unload(next(iter(self._loaded)))
        sysinfo.collect()
        loaded = backend.load(self.store.path(name), entry["meta"])
        loaded.backend_name = backend.name
        self._loaded[name] = (entry["sha256"], loaded)
        return name, loaded

    def run(self, name, inputs):
        """Run one inference; returns (name, outputs, microseconds)."""
        name, loaded = self.model(name)
        t0 = sysinfo.ticks_us()
        outputs = loaded.run(inputs)
        us = sysinfo.ticks_diff(sysinfo.ticks_us(), t0)
        self.stats.inference(name, us)
        return name, outputs, us

    # -- operations ----------------------------------------------------------------------
    def info(self):
        """HELLO/INFO body."""
        used = self.store.used()
        return {
            "agent": __version__,
            "proto": ops.PROTOCOL_VERSION,
            "runtime": sysinfo.RUNTIME,
            "runtime_version": sysinfo.runtime_version(),
            "platform": sys.platform,
            "board": self.board,
            "backends": accelerators.available(),
            "formats": _formats(),
            "memory": sysinfo.memory(),
            "storage": {
                "quota": self.store.quota,
                "used": used,
                "free": max(0, self.store.quota - used),
            },
            "max_payload": self.max_payload,
            "window": self.window,
            "auth": bool(self.key),
            "uptime_ms": sysinfo.uptime_ms(),
        }

    def op_hello(self, body):
        host_max = _field(body, "max_payload", int, False, DEFAULT_MAX_PAYLOAD)
        self._peer_max = max(64, host_max)
        return self.info()

    def op_info(self, body):
        return self.info()

    def op_ping(self, body):
        return {"data": body.get("data"), "uptime_ms": sysinfo.uptime_ms()}

    def op_stats(self, body):
        out = self.stats.summary()
        p = self._parser
        if p is not None:
            out["link"] = {
                "garbage_bytes": p.garbage,
                "header_errors": p.header_errors,
                "crc_errors": p.crc_errors,
                "oversize": p.oversize,
                "auth_failures": p.auth_failures,
                "replays": p.replays,
            }
        out["memory"] = sysinfo.memory()
        out["uptime_ms"] = sysinfo.uptime_ms()
        if body.get("reset"):
            self.stats.reset()
            if p is not None:
                p.garbage = p.header_errors = p.crc_errors = p.oversize = 0
                p.auth_failures = p.replays = 0
        return out

    def op_reboot(self, body):
        self._after_reply = self.reboot
        return {"rebooting": True}

    def reboot(self):
        """Restart: a hard reset on a board, a fresh agent state on unix and Linux."""
        try:
            import machine

            if sys.platform not in ("linux", "darwin"):
                machine.reset()
        except ImportError:
            pass
        for name in list(self._loaded):
            self._unload(name)
        self.store.close()
        self.store = ModelStore(self.state + "/models", self.store.quota)
        self.stats.reset()

    def op_model_begin(self, body):
        # The stored model of that name stays loaded and valid until commit.
        offset = self.store.begin(
            _field(body, "name", str),
            _field(body, "format", str),
            _field(body, "size", int),
            _field(body, "sha256", bytes),
            _field(body, "meta", dict, False, {}),
        )
        return {"offset": offset}

    def op_model_chunk(self, body):
        offset = self.store.chunk(
            _field(body, "name", str), _field(body, "offset", int), _field(body, "data", bytes)
        )
        return {"offset": offset}

    def op_model_commit(self, body):
        name = _field(body, "name", str)
        entry = self.store.commit(name, _field(body, "activate", bool, False, True))
        self._unload(name)
        return self._describe(name, entry)

    def op_model_abort(self, body):
        self.store.abort(_field(body, "name", str))
        return {}

    def _describe(self, name, entry):
        return {
            "name": name,
            "format": entry["format"],
            "size": entry["size"],
            "sha256": entry["sha256"],
            "meta": entry["meta"],
            "active": name == self.store.active,
        }

    def op_model_list(self, body):
        models = []
        for name in self.store.names():
            models.append(self._describe(name, self.store.entry(name)))
        return {"models": models, "active": self.store.active}

    def op_model_info(self, body):
        name = _field(body, "name", str, False, self.store.active)
        out = self._describe(name, self.store.entry(name))
        try:
            name, loaded = self.model(name)
        except KpdevError as e:
            out["backend"] = None
            out["load_error"] = {"code": e.code, "msg": e.message}
            return out
        out["backend"] = loaded.backend_name
        out["io"] = loaded.io_spec()
        out["details"] = loaded.info()
        return out

    def op_model_activate(self, body):
        name = _field(body, "name", str)
        self.store.activate(name)
        return {"active": name}

    def op_model_delete(self, body):
        name = _field(body, "name", str)
        self._unload(name)
        self.store.delete(name)
        return {"deleted": name}

    def op_infer(self, body):
        name, outputs, us = self.run(_field(body, "m", str, False), _tensors(body.get("x")))
        return {"y": [encode_tensor(t) for t in outputs], "t": us}

    def op_infer_batch(self, body):
        name = _field(body, "m", str, False)
        xs = _field(body, "xs", list)
        ys = []
        times = []
        for x in xs:
            name, outputs, us = self.run(name, _tensors(x))
            ys.append([encode_tensor(t) for t in outputs])
            times.append(us)
        return {"ys": ys, "t": times}


# -- REPL use: the same operations without a link --------------------------------------------
_default = None


def _getenv(name, default=None):
    try:
        v = os.getenv(name)
    except AttributeError:  # boards have no environment
        v = None
    return v if v else default


def default_agent():
    """The agent the REPL helpers use: state in $KPDEV_STATE (default ./kpdev-state)."""
    global _default
    if _default is None:
        _default = Agent(
            _getenv("KPDEV_STATE", "kpdev-state"),
            board=_getenv("KPDEV_BOARD", "repl"),
            quota=int(_getenv("KPDEV_QUOTA", str(1 << 20))),
        )
    return _default


def models():
    """Stored models: a list of dicts (name, format, size, sha256, active)."""
    return default_agent().op_model_list({})["models"]


def load(name=None):
    """Load a stored model (default: the active one); returns its io spec."""
    return default_agent().model(name)[1].io_spec()


def infer(name, x):
    """Run a model on ``x``: a Tensor, raw bytes, or a flat list of numbers for its one input.

    Returns the output tensors; ``t.tolist()`` gives their numbers.
    """
    agent = default_agent()
    if not isinstance(x, Tensor):
        spec = agent.model(name)[1].io_spec()["inputs"][0]
        if isinstance(x, (bytes, bytearray)):
            x = Tensor(spec["dtype"], spec["shape"], bytes(x))
        else:
            x = Tensor.from_list(spec["dtype"], spec["shape"], list(x))
    return agent.run(name, [x])[1]


def stats():
    """Inference counts and latencies, memory and uptime, as a dict."""
    return default_agent().op_stats({})
