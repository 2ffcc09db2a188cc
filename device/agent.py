"""The device agent: answers framed requests on a link.

The agent holds the serving loop, the dispatch from operation to handler, the replies and the
loaded models.  The handlers live in one module per group of operations, imported the first time
a request needs them.  Each group's codes lie in one range of protocol/ops.py, and ``_group``
routes a code to its group by range; the group's ``HANDLERS`` table (code -> function) is the
one place that says which codes the agent answers.  A code no table has is refused with
UNKNOWN_OP, or NOT_IMPLEMENTED in a reserved range (``refusals.unknown_operation``)::

    kpdev.device.agent      0x03        PING
    kpdev.device.op_status  0x00-0x0F   HELLO, INFO, STATS, REBOOT
    kpdev.device.op_upload  0x10-0x13   MODEL_BEGIN, MODEL_CHUNK, MODEL_COMMIT, MODEL_ABORT
    kpdev.device.op_models  0x14-0x1F   MODEL_LIST, MODEL_INFO, MODEL_ACTIVATE, MODEL_DELETE
    kpdev.device.op_infer   0x20-0x2F   INFER, INFER_BATCH, INFER_INPUT
    kpdev.device.op_learn   0x30-0x3F   LEARN_INFO, LEARN, LEARN_ENABLE, LEARN_ADD_CLASSES,
                                        LEARN_RESET, LEARN_SAVE, LEARN_EXPORT
    kpdev.device.op_power   0x40-0x4F   POWER_ENABLE, POWER_READ, POWER_FLOOR, CLOCK_GET,
                                        CLOCK_SET
    kpdev.device.op_pack    0x50-0x6F   PROFILE_RUN, PACK_SET, PACK_GET, PACK_CLEAR, CLASSIFY,
                                        STREAM_START, STREAM_PUSH, STREAM_STOP

Adding an operation (tests/test_dispatch.py fails until the device half agrees):
1. protocol/ops.py: its code, in its group's range (names.py derives the name from it);
2. its group's module (device/op_*.py): ``_NAME = const(code)``, the handler function and its
   ``HANDLERS`` entry (a new group: a new op_*.py and a range in ``_group`` here);
3. the host client's method for it (host/client/client.py);
4. docs/protocol.md: its row in the operations table and its section.
The fuzz test (tests/test_fuzz.py) sends every operation of ops.py; give it a request template
there if random bodies rarely reach the handler's interesting paths.

RAM: MicroPython keeps imported code (even precompiled .mpy) in the heap, and a small board has
too little heap to hold every handler at once.  So on MicroPython the groups are overlays: loading
one first drops the previous one and every module its import brought in, and the heap holds this
core plus one group.  On CPython groups stay loaded.  The budget, measured on sim-mcu-64k (unix
port, 64-bit: pointers and heap blocks twice a 32-bit board's): the core takes ~36 KB, ~10 KB of
it the interned names (qstrs) of every module ever imported, which are never freed; a group
takes 1-9 KB more; an upload's 1 KB frames pass through ~8 KB of garbage, collected after each
request (see sysinfo.settle).  The startup code is dropped once serving starts (__main__).

``kpdev.device.repl`` offers the same operations at the REPL, without a link.
"""

import sys

from kpdev.device import sysinfo
from kpdev.device.links.base import LinkClosed
from kpdev.device.stats import Stats
from kpdev.device.store import ModelStore
from kpdev.protocol import cbor
from kpdev.protocol.compat import const, forget_modules
from kpdev.protocol.errors import DeviceError, KpdevError
from kpdev.protocol.framing import DEFAULT_MAX_PAYLOAD, FrameParser, FrameWriter, crc32

# Protocol numbers of kpdev.protocol.ops as compile-time constants: importing ops would keep
# its whole table in a board's heap.  stage_lib checks that these still match ops.py.
_FLAG_RESPONSE = const(0x01)
_FLAG_ERROR = const(0x02)
_FLAG_EVENT = const(0x04)
_HELLO = const(0x01)
_PING = const(0x03)
_INFO = const(0x02)
# The first code of each handler group's range (see _group).
_MODEL_BEGIN = const(0x10)
_MODEL_LIST = const(0x14)
_INFER = const(0x20)
_LEARN_FIRST = const(0x30)
_POWER_FIRST = const(0x40)
_PROFILE_FIRST = const(0x50)
_PACK_LAST = const(0x6F)
_LOG = const(0x70)
_ERROR = const(0x7F)
_E_TOO_LARGE = const(2)
_E_MALFORMED = const(3)
_E_BAD_REQUEST = const(5)
_E_INTERNAL = const(32)
_E_MODEL_LOAD = const(23)

# Operations that change nothing (STATS too, without "reset"): a reply of theirs too large for
# the host is refused with TOO_LARGE.  Any other operation's is replaced by {"trimmed": N}
# (docs/protocol.md §6), as an ERROR reply always means nothing changed.
_READ_ONLY = b"\x02\x03\x14\x15\x20\x21\x30\x36\x41\x42\x48\x50\x61\x63"
_STATS = const(0x04)

_READ_MS = const(200)  # how long a read waits while no frame is under way
# While a partial frame is held the agent looks at the link this often: a quiet moment with
# another frame's header inside the partial one gives it up at once (FrameParser.resync).
_QUIET_MS = const(20)
# A partial frame is given up after the link has been quiet for its ``gap_ms``, the longest pause
# it may leave inside a frame (serial links: a few character times plus USB and OS latency).
# Links without one (pipes, TCP: a lost segment is sent again after 200 ms or more) use this.
_GAP_MS = const(300)
# A connection this long without a whole valid frame but HELLO (with a key: authenticated in its
# session) is closed if it never sent one, or else when another connection waits for its turn
# (MicroPython serves one at a time; one that never sent one gives way after _READ_MS).
_IDLE_CLOSE_MS = const(3000)
# Two Ctrl-C, sent alone outside any frame, end the agent loop: the console goes back
# to the board's REPL.  Only on a console link (stdio, a tty, a UART; never TCP; not a
# supervisor's pipes) and only when no key guards the agent: two bytes must not stop it remotely.
_CTRL_C = const(0x03)

# CPython agents answer the common INFER request in kpdev.device.fastinfer; boards do not have it.
_FAST_INFER = not sysinfo.MICROPYTHON

if sysinfo.MICROPYTHON:
    DEFAULT_AGENT_MAX_PAYLOAD = 2048
    DEFAULT_WINDOW = 2
    _MAX_LOADED = 1
    _IO_CHUNK = 1024  # the store's file buffer (sha256 of an upload): heap is scarce
else:
    DEFAULT_AGENT_MAX_PAYLOAD = 256 * 1024
    DEFAULT_WINDOW = 8
    _MAX_LOADED = 4
    _IO_CHUNK = 64 * 1024


def _group(op):
    """The module under kpdev.device whose HANDLERS table may answer ``op``, or None.

    Each group's codes lie in one range of protocol/ops.py, so an operation added in a group's
    range needs no change here: its group's HANDLERS table is the one place that says which
    codes the agent answers.  tests/test_dispatch.py checks that every operation of ops.py
    routes to the table that has it.
    """
    if op == _PING:
        return "agent"
    if op < _MODEL_BEGIN:
        return "op_status"
    if op < _MODEL_LIST:
        return "op_upload"
    if op < _INFER:
        return "op_models"
    if op < _LEARN_FIRST:
        return "op_infer"
    if op < _POWER_FIRST:
        return "op_learn"
    if op < _PROFILE_FIRST:
        return "op_power"
    if op <= _PACK_LAST:
        return "op_pack"  # PROFILE_RUN and the PACK operations
    return None


def field(body, key, kind, required=True, default=None):
    """``body[key]``, checked to be a ``kind``: E_BAD_REQUEST when missing (if required) or not."""
    v = body.get(key, default)
    if v is None:
        if required:
            raise DeviceError("request needs field %r" % key, _E_BAD_REQUEST)
        return default
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise DeviceError("field %r has the wrong type" % key, _E_BAD_REQUEST)
    return v


def ping(agent, body):
    """PING: echo the data, with the uptime."""
    return {"data": body.get("data"), "uptime_ms": sysinfo.uptime_ms()}


HANDLERS = {_PING: ping}  # this module is the group of the one operation always at hand


class Session:
    """One host's conversation on one link: parser, writer, reply limit and session nonce.

    With a key, the parser takes no authenticated frame but HELLO until HELLO starts the session
    with a fresh nonce (``op_status.hello``), so no frame of another session or boot is taken.
    """

    def __init__(self, link, max_payload, key):
        self.link = link
        self.parser = FrameParser(max_payload, key)
        if key:
            self.parser.nonce = None
        self.writer = FrameWriter(key)
        self.peer_max = DEFAULT_MAX_PAYLOAD  # the largest reply the host takes (HELLO sets it)
        self.outbox = None  # a list where a session thread collects its frames (CPython)
        self.trusted = False  # a whole valid (with a key: authenticated) frame came
        self.valid_at = sysinfo.uptime_ms()  # when the last one came, or the connection
        self.closing = False  # set to end the session (CPython: a full house takes its place)
        self.replies = []  # the last replies to state-changing requests (Agent._replying)
        # (host's nonce, session nonce) of the last keyed HELLO: the same HELLO sent again (its
        # reply was late, as from a slow-booting board) keeps the session it started.
        self.hello_nonces = None

    def counters(self):
        """The parser's counters, in the order STATS and ``Stats.link`` keep them."""
        p = self.parser
        return [p.garbage, p.header_errors, p.crc_errors, p.oversize, p.auth_failures, p.replays]


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
        power=None,
        exit_on_reboot=False,
        clock=None,
        model_area=None,
    ):
        self.state = state
        # What the board's time is when it is not measured: {"kind": "icount",
        # "ns_per_instruction": N} on an emulated board in deterministic mode (INFO, STATS).
        self.clock = clock
        # Where loaded models' bytes are read in place (kpdev.accelerators.modelarea), if any.
        self.model_area = None
        if model_area:
            from kpdev.accelerators.modelarea import open_area

            self.model_area = open_area(model_area)
        self.exit_on_reboot = exit_on_reboot  # REBOOT ends the process (status 75)
        self.board = board
        self.store = ModelStore(state + "/models", quota, _IO_CHUNK)
        self.stats = Stats()
        self.max_payload = max_payload or DEFAULT_AGENT_MAX_PAYLOAD
        self.window = window or DEFAULT_WINDOW
        self.key = key
        self.power_config = power or {}  # the board's power settings (kpdev.device.power)
        self.power = None  # its power meter, opened by the first POWER request
        self.pack = None  # the Knowledge Pack (kpdev.device.packrun), loaded when first needed
        # Called (agent, model, µs) after each inference while power is measured.
        self.on_inference = None
        self.session = None  # the Session whose frame is being answered
        self.sessions = []  # the open ones (STATS adds their link counters)
        self.after_reply = None  # called once the current reply is out (REBOOT, HELLO)
        self._loaded = {}  # name -> (sha256, LoadedModel)
        # Inputs INFER_INPUT put in place: [name, LoadedModel, [[Tensor, bytes so far] | None]]
        self.staged = None
        self._running = False
        self._overlay = ()  # modules the import of the last handler group brought in
        # Each session keeps its last replies to requests that change state (HELLO aside: run
        # again, it does the same), as (key, op, payload, flags), the key a CRC-32 of id, op and
        # payload: a request sent again with the same id (its reply was lost) is answered from
        # there, not carried out twice.  As many as the host may have in flight: the window.
        self._replying = None  # the key of the request being answered, while it is cached

    # -- serving -------------------------------------------------------------------------
    def serve(self, link):
        """Answer frames on ``link`` until it closes; every failure becomes an ERROR frame.

        A listening link (TCP) gives each connection a session of its own
        (``kpdev.device.sessions``: one at a time on MicroPython, several at once on CPython).
        """
        self._running = True
        if hasattr(link, "accept"):
            from kpdev.device.sessions import serve_listener  # only a TCP agent needs it

            serve_listener(self, link)
        else:
            self._serve_session(self.open_session(link))
        self.close()

    def open_session(self, link):
        """A new session on ``link`` (one host connection), counted among the open ones."""
        s = Session(link, self.max_payload, self.key)
        self.sessions.append(s)
        return s

    def _serve_session(self, s, listener=None, dispatch=None):
        # Frames of one session until its link closes, or on a listener's connection until it
        # idles out (_IDLE_CLOSE_MS).
        # ``dispatch(session, frames, bytes read)`` answers them (default: ``self.dispatch``).
        dispatch = dispatch or self.dispatch
        link = s.link
        parser = s.parser
        # A link served alone may be a console (stdio, a tty, a UART; never a TCP connection),
        # unless a supervisor runs the agent on its pipes (exit_on_reboot), and without a key.
        stop = listener is None and not self.exit_on_reboot and not self.key
        gap = getattr(link, "gap_ms", _GAP_MS)
        still = 0  # ms the link has been quiet with a partial frame held
        while self._running and not s.closing:
            held = parser.pending()
            # The link reads straight into the parser's buffer: no allocation per read.
            room = parser.space()
            try:
                n = link.readinto(room, _QUIET_MS if held else _READ_MS)
            except LinkClosed:
                break
            if listener is not None:
                quiet = sysinfo.ticks_diff(sysinfo.uptime_ms(), s.valid_at)
                # How long it may keep another connection waiting (MicroPython serves one).
                hold = _IDLE_CLOSE_MS if s.trusted else _READ_MS
                if (
                    quiet >= _IDLE_CLOSE_MS
                    and not s.trusted
                    or quiet >= hold
                    and listener.waiting()
                ):
                    break
            if not n:
                if held:
                    still += _QUIET_MS
                    dispatch(s, parser.resync(still >= gap), 0)
                continue
            still = 0
            if stop and n == 2 and not held and room[0] == _CTRL_C and room[1] == _CTRL_C:
                break  # Ctrl-C Ctrl-C alone, outside any frame: give the port back to the REPL
            room = None  # a view of the parser's buffer, which may be replaced
            dispatch(s, parser.filled(n), n)

    def dispatch(self, s, frames, nbytes=0):
        """Answer a session's frames, in order; ``nbytes``: the link bytes they came in."""
        self.stats.bytes_in += nbytes
        for f in frames:
            if not f.error and f.op != _HELLO:  # a replayed HELLO earns no trust
                s.trusted = True
                s.valid_at = sysinfo.uptime_ms()
        self.session = s
        self._dispatch_all(frames)

    def _dispatch_all(self, frames):
        while frames:
            frame = frames.pop(0)  # let each frame go as soon as it is answered
            self.stats.frames_in += 1
            try:
                self.handle(frame)
            except Exception as e:  # never let a traceback reach the framed stream
                self._log_exception(e)
            frame = None
            if self.after_reply:
                action, self.after_reply = self.after_reply, None
                action()
            sysinfo.settle()

    def handle(self, frame):
        """Answer one frame from the parser."""
        op = frame.op
        if frame.error:
            from kpdev.device.refusals import frame_error  # loaded by the first bad frame

            self.send_error(frame.rid, op, frame.error, frame_error(frame.error))
            return
        if frame.flags & (_FLAG_RESPONSE | _FLAG_EVENT):
            return  # the host sends requests only; ignore anything else
        if op != _HELLO and op not in _READ_ONLY:
            key = crc32(frame.payload or b"", frame.rid << 8 | op)
            for r in self.session.replies:  # request ids are this session's
                if r[0] == key:
                    self.stats.duplicates += 1
                    self._send(r[1], frame.rid, r[2], r[3])
                    return
            self._replying = key
        try:
            payload = None
            if op == _INFER and _FAST_INFER and frame.payload:
                # CPython: the common INFER request without the generic codec (its twin).
                from kpdev.device.fastinfer import infer_payload

                payload = infer_payload(self, frame.payload)
            if payload is None:
                handler = self._handler(op)
                body = cbor.loads(frame.payload) if frame.payload else {}
                if not isinstance(body, dict):
                    raise DeviceError("request payload must be a CBOR map", _E_MALFORMED)
                payload = cbor.dumps(handler(self, body))
        except KpdevError as e:
            self.send_error(frame.rid, op, e.code, e.message)
            return
        except MemoryError:
            sysinfo.collect()
            self.send_error(frame.rid, op, _E_INTERNAL, "out of memory")
            return
        except Exception as e:
            self.send_error(frame.rid, op, _E_INTERNAL, "%s: %s" % (type(e).__name__, e))
            return
        limit = self.session.peer_max
        if len(payload) > limit:
            if op in _READ_ONLY or (op == _STATS and not body.get("reset")):
                self.send_error(
                    frame.rid,
                    op,
                    _E_TOO_LARGE,
                    "reply of %d bytes exceeds the host's maximum of %d; send smaller batches"
                    % (len(payload), limit),
                )
                return
            # The request was carried out: an ERROR would say it was not.  Say so in a reply
            # that fits, with the size of the one the host could not take.
            payload = cbor.dumps({"trimmed": len(payload)})
        self._send(op, frame.rid, payload, _FLAG_RESPONSE)

    def request(self, op, body=None):
        """Run operation ``op`` on a request body (dict) and return the reply body.

        What a framed request does, minus the framing: failures raise ``KpdevError``.
        """
        return self._handler(op)(self, {} if body is None else body)

    def _handler(self, op):
        # The function answering ``op``, importing its group (and dropping the group loaded
        # last, with what it imported) when needed.  A code no HANDLERS table has is refused
        # with the project's error (UNKNOWN_OP, or NOT_IMPLEMENTED in a reserved range).
        group = _group(op)
        handler = None
        if group is not None:
            name = "kpdev.device." + group
            module = sys.modules.get(name)
            if module is None:
                forget_modules(self._overlay)
                sysinfo.collect()
                before = list(sys.modules)
                try:
                    __import__(name)
                finally:  # a failed import (out of memory) may still have loaded what it imported
                    self._overlay = [m for m in sys.modules if m not in before]
                module = sys.modules[name]
            handler = module.HANDLERS.get(op)
        if handler is None:
            from kpdev.device.refusals import unknown_operation

            raise unknown_operation(op)
        return handler

    def _send(self, op, rid, payload, flags):
        s = self.session
        if self._replying is not None and flags & _FLAG_RESPONSE:
            r = s.replies
            r.append((self._replying, op, payload, flags))
            if len(r) > self.window:
                r.pop(0)
            self._replying = None
        data = s.writer.pack(op, rid, payload, flags)
        self.stats.frames_out += 1
        self.stats.bytes_out += len(data)
        if s.outbox is not None:
            s.outbox.append(data)  # a session thread writes it once the lock is released
        else:
            s.link.write(data)

    def send_error(self, rid, op, code, message):
        """Answer request ``rid`` with an ERROR frame."""
        self.stats.error(code)
        self._send(
            _ERROR,
            rid,
            cbor.dumps({"code": code, "msg": message, "op": op}),
            _FLAG_RESPONSE | _FLAG_ERROR,
        )

    def log(self, level, message):
        """Send a LOG event to the host (when connected) and to stderr."""
        try:
            sys.stderr.write("kpdev-agent %s: %s\n" % (level, message))
        except Exception:
            pass
        self.event(_LOG, {"lvl": level, "msg": message})

    def event(self, op, body):
        """Send an unsolicited event frame to the host, when one is connected."""
        if self.session is not None:
            self._send(op, 0, cbor.dumps(body), _FLAG_EVENT)

    def _log_exception(self, e):
        try:
            self.log("error", "%s: %s" % (type(e).__name__, e))
        except Exception:
            pass

    def close(self):
        """Release models and files."""
        self._running = False
        self.unload()
        self.store.close()

    # -- models --------------------------------------------------------------------------
    def unload(self, name=None):
        """Release the loaded model ``name``, or every loaded model."""
        if self.staged is not None and (name is None or self.staged[0] == name):
            self.staged = None
        for n in [name] if name is not None else list(self._loaded):
            item = self._loaded.pop(n, None)
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
        self.unload(name)
        while len(self._loaded) >= _MAX_LOADED:
            self.unload(next(iter(self._loaded)))
        loaded = self.load(name, entry, self.store.path(name))
        self._loaded[name] = (entry["sha256"], loaded)
        return name, loaded

    def load(self, name, entry, path):
        """Load the model file ``path`` as ``entry`` (its format and meta) says; not kept."""
        from kpdev import accelerators

        sysinfo.collect()
        try:
            backend = accelerators.for_format(entry["format"], entry["meta"].get("backend"))
            meta = entry["meta"]
            if self.model_area is not None:
                # Not load options (those come from the host): what the agent hands the
                # backend, which may place the model in the area.
                meta = dict(meta)
                meta["_area"] = self.model_area
                meta["_sha256"] = entry["sha256"]
            loaded = backend.load(path, meta)
        except MemoryError:
            self._release()
            raise DeviceError(
                "not enough memory to load %s (%d bytes of heap free after the attempt)"
                % (name, sysinfo.memory().get("heap_free", 0)),
                _E_MODEL_LOAD,
            )
        except Exception:
            self._release()
            raise
        loaded.backend_name = backend.name
        return loaded

    def _release(self):
        # A failed load: with no model loaded, no backend code need stay in RAM.
        from kpdev import accelerators

        if not self._loaded:
            accelerators.release()
        sysinfo.collect()

    def run(self, name, inputs):
        """Run one inference; returns (name, outputs, microseconds)."""
        name, loaded = self.model(name)
        self.staged = None  # a run overwrites the inputs in place (INFER_INPUT)
        t0 = sysinfo.ticks_us()
        outputs = loaded.run(inputs)
        us = sysinfo.ticks_diff(sysinfo.ticks_us(), t0)
        self.stats.inference(name, us)
        if self.on_inference is not None:
            self.on_inference(self, name, us)
        return name, outputs, us

    def info(self):
        """HELLO/INFO body: agent, runtime, backends, memory, storage and limits."""
        return self.request(_INFO)
