"""The host's protocol client: requests with ids, pipelining within the agent's window."""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import cbor2

from kpdev.host.client.tensors import from_wire, infer_payload, read_infer_reply, to_wire
from kpdev.host.errors import AuthError, LinkError, LinkTimeout, UsageError
from kpdev.protocol import names, ops
from kpdev.protocol.errors import DeviceError, KpdevError, ProtocolError
from kpdev.protocol.framing import DEFAULT_MAX_PAYLOAD, FrameParser, FrameWriter
from kpdev.protocol.tensors import DTYPES

if TYPE_CHECKING:  # numpy is imported where tensors are handled: a command that sends none
    import numpy as np  # (info, ping, models...) starts without it

HOST_MAX_PAYLOAD = 16 * 1024 * 1024
# Map keys and field framing around an upload chunk's bytes, with room to spare.
_CHUNK_OVERHEAD = 96
# Times a request the device received damaged (BAD_CRC) is sent again, the first at once, the
# next ones after a backoff that doubles from _BACKOFF_S up to _BACKOFF_MAX_S.
_RESENDS = 8
_BACKOFF_S = 0.01
_BACKOFF_MAX_S = 0.5
# The link is read in slices this short while replies are owed, so that a request whose reply
# is late is sent again in time.
_POLL_S = 0.02
# Per-request reply timeout (the retransmission timeout, RTO): smoothed round trip of the
# operation plus four deviations (RFC 6298), at least a floor; a first guess for an operation not
# timed yet (its first run may load a model or a pack).  It doubles with each retry of a request
# and stays below half the command's.  A retry that was not needed costs a read-only operation a
# second run on the device, hence its floors well above a clean round trip; the agent answers a
# state-changing one from its reply cache, so it may be retried sooner.
_RTO_MIN_S = 0.1
_RTO_FIRST_S = 1.0
_RTO_MIN_READ_ONLY_S = 0.5
_RTO_FIRST_READ_ONLY_S = 3.0
# Uploads: the smallest chunk, and how many clean chunk replies in a row double the chunk size
# again after errors halved it.
_MIN_CHUNK = 256
_GROW_AFTER = 8
# An upload gives up after this many rewinds in a row without a byte of progress; it backs off
# (waits before going on) from the _CALM_REWINDS-th on: noise alone rarely makes so many.
_MAX_REWINDS = 32
_CALM_REWINDS = 4
# Request ids answered lately: a second reply to one of them is a duplicate, dropped.
_RECENT = 256

Progress = Callable[[int, int], None]
_READ_ONLY = frozenset(ops.READ_ONLY)

# Why a device's frame failed our parser's authentication (its code) -> the AuthError's message.
# A frame with no AUTH trailer (KEY_REQUIRED, from our side) comes from a device without a key;
# one whose tag does not match ours (AUTH) from a device that signs with another key.
_AUTH_REFUSALS = {
    ops.E_KEY_REQUIRED: "a key was given but the device does not use a key: "
    "drop --key (and KPDEV_KEY)",
    ops.E_AUTH: "the device uses a different key: pass the key its agent was started with",
    ops.E_REPLAY: "the device sent a frame whose counter is not above the last one "
    "(a replayed frame): reconnect",
}


class Lost(LinkError):
    """A request sent with ``resend=False`` arrived damaged, or its reply did not come in time:
    the caller sends it again (an upload, in order, from the offset the device holds)."""


class _Pending:
    """A request sent and not yet answered: what it takes to send it again, and when to."""

    __slots__ = ("op", "payload", "tries", "sent", "due", "resend", "expect", "fast")

    def __init__(self, op: int, payload: bytes, resend: bool, expect: float, fast: bool = False):
        self.op = op
        self.payload = payload
        self.tries = 0  # times sent again, for any reason
        self.sent = 0.0  # time of the last send
        self.due = 0.0  # when to send it again unless answered
        self.resend = resend  # send it again when the device got it damaged (BAD_CRC)
        self.expect = expect  # seconds the caller expects the operation itself to take
        self.fast = fast  # an INFER of infer()/infer_many(): its reply read by read_infer_reply


class Client:
    """One conversation with one agent over one link.

    The client recovers from a noisy link by itself (docs/protocol.md §10): a request the device
    got damaged (ERROR 1 BAD_CRC) is sent again with backoff; a request whose reply does not come
    within its retransmission timeout (learned from the link's round trips) is sent again with
    the same id, which the agent answers from its cache of replies when the operation changes
    state; an upload goes back to the offset the device holds after a gap, in smaller chunks.
    ``retries``, ``resends`` and ``rewinds`` count what that took (``link_report``).
    """

    def __init__(self, link, key: bytes | None = None, timeout: float = 10.0, on_event=None):
        self.link = link
        self.key = key
        self.timeout = timeout
        self.on_event = on_event
        self.parser = FrameParser(HOST_MAX_PAYLOAD, key)
        # Counters start from the clock so a new session never reuses an old session's values.
        self.writer = FrameWriter(key, counter=time.time_ns() // 1000)
        # Request ids start anywhere below 0x8000: a late reply meant for an earlier client of
        # the same agent (one that gave up on a long request) cannot pass for one of ours.
        self._next_rid = int.from_bytes(os.urandom(2), "little") & 0x7FFF
        self._done: dict[int, Any] = {}
        self._sent: dict[int, _Pending] = {}
        self._answered: deque[int] = deque(maxlen=_RECENT)
        self._rtt: dict[int, list[float]] = {}  # op -> [smoothed round trip, its deviation]
        self._next_due = float("inf")  # no request is late before this (see _resend_late)
        self._chunk = 0  # the upload chunk size the line allowed last (0: the largest)
        self.device: dict[str, Any] = {}
        self.max_payload = DEFAULT_MAX_PAYLOAD
        self.window = 1
        self.bytes_out = 0
        self.bytes_in = 0
        self.retries = 0  # requests sent again (same id): no reply within their timeout
        self.resends = 0  # requests sent again: the device got them damaged (BAD_CRC)
        self.rewinds = 0  # uploads sent again from the offset the device holds, after a gap
        self.duplicates = 0  # second replies to a request already answered, dropped
        if hasattr(link, "set_timeout"):
            link.set_timeout(_POLL_S)

    # -- requests ------------------------------------------------------------------------
    def send(
        self,
        op: int,
        body: dict[str, Any] | None = None,
        *,
        resend: bool = True,
        expect: float = 0.0,
    ) -> int:
        """Send one request; returns its id.

        ``resend`` False: a BAD_CRC answer, or no reply in time, fails the request with
        ``Lost`` instead of sending it again (an upload sends its chunks again in order itself).
        ``expect``: seconds the operation itself may take, before which a missing reply is not
        yet late.
        """
        return self._send_payload(op, _encode(op, body), resend, expect)

    def _send_payload(
        self, op: int, payload: bytes, resend: bool, expect: float, fast: bool = False
    ) -> int:
        # Send a request body already encoded; returns its id.
        if len(payload) > self.max_payload:
            raise UsageError(
                f"{names.op_name(op)} request of {len(payload)} bytes exceeds the device's "
                f"maximum payload of {self.max_payload}; send less at once"
            )
        self._next_rid = (self._next_rid + 1) & 0xFFFF or 1
        self._done.pop(self._next_rid, None)
        pending = self._sent[self._next_rid] = _Pending(op, payload, resend, expect, fast)
        self._transmit(self._next_rid, pending)
        return self._next_rid

    def _transmit(self, rid: int, pending: _Pending) -> None:
        # (Re)send a request under its id; its reply is late after its retransmission timeout.
        now = time.monotonic()
        pending.sent = now
        pending.due = now + self._rto(pending)
        if pending.due < self._next_due:
            self._next_due = pending.due
        data = self.writer.pack(pending.op, rid, pending.payload)
        self.bytes_out += len(data)
        self.link.write(data)

    def _rto(self, pending: _Pending) -> float:
        """Seconds to wait for a reply to ``pending`` before sending it again."""
        est = self._rtt.get(pending.op)
        read_only = pending.op in _READ_ONLY
        if est is None:
            rto = _RTO_FIRST_READ_ONLY_S if read_only else _RTO_FIRST_S
        else:
            rto = max(_RTO_MIN_READ_ONLY_S if read_only else _RTO_MIN_S, est[0] + 4 * est[1])
        # A slow line: the bytes of the requests in flight take this long to go out at all.
        rate = getattr(self.link, "bytes_per_second", None)
        if rate:
            rto += sum(len(p.payload) + 64 for p in self._sent.values()) / rate
        rto = rto * (1 << min(pending.tries, 6)) + pending.expect
        return min(rto, max(_RTO_MIN_S, self.timeout / 2))

    def _timed(self, pending: _Pending, now: float) -> None:
        # One round trip of a request sent once (Karn: a retried one's reply could be either
        # copy's), smoothed per operation as TCP does (RFC 6298).
        if pending.tries:
            return
        rtt = max(0.0, now - pending.sent - pending.expect)
        est = self._rtt.get(pending.op)
        if est is None:
            self._rtt[pending.op] = [rtt, rtt / 2]
        else:
            est[1] = 0.75 * est[1] + 0.25 * abs(est[0] - rtt)
            est[0] = 0.875 * est[0] + 0.125 * rtt

    def _resend_late(self, now: float) -> None:
        # Requests whose reply is overdue (lost on the way there or back): send them again,
        # with the same id.  The agent answers a state-changing one from its reply cache.
        # Nothing is due before _next_due, the earliest due time (a reply read takes nothing
        # off): until then the requests in flight are not looked at.
        if now < self._next_due:
            return
        self._next_due = float("inf")
        for rid, pending in list(self._sent.items()):
            if rid not in self._done and now >= pending.due:
                if not pending.resend:
                    self._done[rid] = Lost(f"no reply to {names.op_name(pending.op)} in time")
                    continue
                if pending.due > pending.sent:  # not a BAD_CRC resend waiting for its backoff
                    self.retries += 1
                else:
                    self.resends += 1
                pending.tries += 1
                self._transmit(rid, pending)
            elif rid not in self._done and pending.due < self._next_due:
                self._next_due = pending.due

    def wait(self, rid: int, timeout: float | None = None) -> Any:
        """The decoded reply to request ``rid``; raises DeviceError for an ERROR reply."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while rid not in self._done:
            now = time.monotonic()
            if now > deadline:
                self._sent.pop(rid, None)  # given up: not sent again
                raise LinkTimeout(
                    f"no reply from the device within {limit:g} s "
                    f"(is an agent running on {getattr(self.link, 'url', 'the link')}?)"
                )
            self._resend_late(now)
            data = self.link.read(65536)
            if data:
                self.bytes_in += len(data)
                for frame in self.parser.feed(data):
                    self._accept(frame)
        result = self._done.pop(rid)
        self._sent.pop(rid, None)
        self._answered.append(rid)
        if isinstance(result, KpdevError):  # an ERROR reply, or a reply it cannot use
            raise result
        return result

    def forget(self, rids: Iterable[int]) -> None:
        """Stop waiting for these requests: their replies, if any come, are dropped."""
        for rid in rids:
            self._sent.pop(rid, None)
            self._done.pop(rid, None)

    def _accept(self, frame) -> None:
        if frame.error:
            if (
                frame.op == ops.HELLO
                and frame.flags & ops.FLAG_RESPONSE
                and frame.rid in self._answered
            ):
                # The reply to a HELLO sent twice (the first reply was late), tagged with the
                # HELLO's nonce, not the session's: the session it answers is the one we have.
                self.duplicates += 1
                return
            why = _AUTH_REFUSALS.get(frame.error)
            if why:
                raise AuthError(why)
            return  # a damaged frame; the request it answered is sent again when it is late
        if self.key is None and frame.flags & ops.FLAG_AUTH:
            raise AuthError(
                "the device requires a key and none was given: pass --key or set KPDEV_KEY"
            )
        pending = None if frame.flags & ops.FLAG_EVENT else self._sent.get(frame.rid)
        if not frame.flags & ops.FLAG_EVENT and (pending is None or frame.rid in self._done):
            if not frame.flags & ops.FLAG_ERROR and (
                frame.rid in self._answered or frame.rid in self._done
            ):
                self.duplicates += 1  # a retried request answered twice: the first counts
            return  # else not an answer to anything we asked: a stale reply to someone else
        body = None
        if pending is not None and pending.fast and not frame.flags & ops.FLAG_ERROR:
            # (outputs, µs) of the INFER replies infer() and infer_many() wait for
            body = read_infer_reply(frame.payload) if frame.payload else None
        try:
            if body is None:
                body = cbor2.loads(frame.payload) if frame.payload else None
        except (cbor2.CBORDecodeError, ValueError) as e:
            error = ProtocolError(f"the device sent a reply that is not valid CBOR: {e}")
            if pending is None:
                raise error from None
            self._done[frame.rid] = error  # the request's answer: a copy sent again is dropped
            return
        if frame.flags & ops.FLAG_EVENT:
            if self.on_event:
                self.on_event(frame.op, body)
            return
        if frame.flags & ops.FLAG_ERROR:
            code = body.get("code", ops.E_INTERNAL) if isinstance(body, dict) else ops.E_INTERNAL
            if code == ops.E_BAD_CRC and not pending.resend:
                self._done[frame.rid] = Lost(f"{names.op_name(pending.op)} arrived damaged")
                return
            if code == ops.E_BAD_CRC and pending.tries < _RESENDS:
                # The request was damaged on the way (a noisy line): send it again, at once the
                # first time, after a growing backoff the next ones.
                if pending.tries == 0:
                    self.resends += 1
                    pending.tries += 1
                    self._transmit(frame.rid, pending)
                else:
                    now = time.monotonic()
                    pending.sent = pending.due = now + min(
                        _BACKOFF_MAX_S, _BACKOFF_S * (1 << pending.tries)
                    )
                    self._next_due = min(self._next_due, pending.due)
                return
            msg = body.get("msg", "") if isinstance(body, dict) else ""
            op = body.get("op", frame.op) if isinstance(body, dict) else frame.op
            self._done[frame.rid] = DeviceError(
                f"{names.op_name(op)} failed: {msg} [{names.error_name(code)}]", code
            )
            return
        self._timed(pending, time.monotonic())
        if type(body) is dict and len(body) == 1 and "trimmed" in body:
            body = ProtocolError(
                f"the device carried out {names.op_name(pending.op)}, but its reply of "
                f"{body['trimmed']} bytes was over the limit this client announced at HELLO"
            )
        self._done[frame.rid] = body

    def link_report(self) -> dict[str, int]:
        """What getting through the link took: requests sent again and why, frames rejected."""
        p = self.parser
        return {
            "retries": self.retries,
            "resends": self.resends,
            "rewinds": self.rewinds,
            "duplicates": self.duplicates,
            "damaged_replies": p.crc_errors + p.header_errors,
            "garbage_bytes": p.garbage,
            "chunk": self._chunk or None,
        }

    def request(self, op: int, body: dict[str, Any] | None = None, timeout=None) -> Any:
        """Send one request and wait for its reply (a longer ``timeout`` than the client's says
        the operation takes that much longer: it is not sent again before)."""
        expect = max(0.0, timeout - self.timeout) if timeout is not None else 0.0
        return self.wait(self.send(op, body, expect=expect), timeout)

    def pipeline(
        self, requests: Iterable[tuple[int, dict]], window: int | None = None
    ) -> Iterator:
        """Replies to many requests, in order, keeping up to ``window`` of them in flight."""
        window = max(1, window or self.window)
        in_flight: list[int] = []
        for op, body in requests:
            if len(in_flight) >= window:
                yield self.wait(in_flight.pop(0))
            if type(body) is bytes:  # an INFER of infer_many, encoded already
                in_flight.append(self._send_payload(op, body, True, 0.0, True))
            else:
                in_flight.append(self.send(op, body))
        try:
            while in_flight:
                yield self.wait(in_flight.pop(0))
        finally:
            for rid in in_flight:  # an error ended the loop: drain what is still owed
                try:
                    self.wait(rid)
                except (DeviceError, ProtocolError):
                    pass

    # -- operations ----------------------------------------------------------------------
    def hello(self) -> dict[str, Any]:
        """Negotiate payload size and window; returns the device's INFO."""
        body: dict[str, Any] = {"max_payload": HOST_MAX_PAYLOAD}
        if self.key:
            # A new session: HELLO goes without a session nonce, and the agent tags its reply
            # with ours (so an old reply replayed at us fails); every later frame, both ways,
            # with the nonce the agent gives in it.
            body["nonce"] = os.urandom(16)
            self.writer.nonce = b""
            self.parser.nonce = body["nonce"]
        info = self.request(ops.HELLO, body)
        self.device = info
        self.max_payload = int(info.get("max_payload", DEFAULT_MAX_PAYLOAD))
        self.window = max(1, int(info.get("window", 1)))
        proto = info.get("proto", 1)
        if isinstance(proto, int) and proto > ops.PROTOCOL_VERSION:
            raise ProtocolError(
                f"the device's agent speaks protocol {proto}, this kpdev "
                f"{ops.PROTOCOL_VERSION}: update kpdev (pip install -U kpdev)"
            )
        if self.key:
            if not info.get("auth"):
                raise AuthError(_AUTH_REFUSALS[ops.E_KEY_REQUIRED])
            nonce = info.get("nonce")
            if not isinstance(nonce, bytes) or len(nonce) < 8:
                raise AuthError(
                    "the device's agent gives no session nonce (protocol "
                    f"{proto}): update its agent (kpdev agent install)"
                )
            self.writer.nonce = self.parser.nonce = nonce
        return info

    def info(self) -> dict[str, Any]:
        """Agent, runtime, backends, memory and storage."""
        return self.request(ops.INFO)

    def ping(self, data: bytes = b"") -> float:
        """Round-trip time in seconds."""
        t0 = time.perf_counter()
        reply = self.request(ops.PING, {"data": data})
        if reply.get("data") != data:
            raise ProtocolError("PING reply does not echo the data sent")
        return time.perf_counter() - t0

    def stats(self, reset: bool = False) -> dict[str, Any]:
        """Device statistics; ``reset`` zeroes them after reading."""
        return self.request(ops.STATS, {"reset": reset})

    def reboot(self) -> dict[str, Any]:
        """Ask the agent to restart."""
        return self.request(ops.REBOOT)

    def models(self) -> dict[str, Any]:
        """Stored models and which one is active."""
        return self.request(ops.MODEL_LIST)

    def model_info(self, name: str | None = None, upload: bool = False) -> dict[str, Any]:
        """A model's stored facts and, where a backend loads it, its io spec; ``upload``: those
        of the whole upload of that name, loaded before it is committed."""
        body: dict[str, Any] = {"name": name} if name else {}
        if upload:
            body["upload"] = True
        return self.request(ops.MODEL_INFO, body)

    def activate(self, name: str) -> dict[str, Any]:
        """Make a stored model the active one."""
        return self.request(ops.MODEL_ACTIVATE, {"name": name})

    def delete(self, name: str) -> dict[str, Any]:
        """Delete a stored model."""
        return self.request(ops.MODEL_DELETE, {"name": name})

    def upload(
        self,
        name: str,
        data: bytes,
        fmt: str,
        meta: dict[str, Any] | None = None,
        activate: bool = True,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Upload a model (resuming where the device left off) and commit it."""
        offset = self.send_model(name, data, fmt, meta, progress)
        result = self.commit(name, activate)
        result["resumed_from"] = offset
        return result

    def send_model(
        self,
        name: str,
        data: bytes,
        fmt: str,
        meta: dict[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Send a model's bytes (resuming where the device left off), not committed yet;
        returns the offset the upload resumed from."""
        sha = hashlib.sha256(data).digest()
        begin = {"name": name, "format": fmt, "size": len(data), "sha256": sha, "meta": meta or {}}
        held = start = int(self.request(ops.MODEL_BEGIN, begin)["offset"])
        total = len(data)
        if progress:
            progress(held, total)
        view = memoryview(data)
        largest = max(64, self.max_payload - _CHUNK_OVERHEAD - len(name.encode()))
        size = min(largest, self._chunk or largest)
        in_flight: deque[int] = deque()
        at = held
        clean = rewinds = 0
        errors = self.retries + self.resends
        try:
            while held < total:
                while at < total and len(in_flight) < self.window:
                    end = min(total, at + size)
                    part = bytes(view[at:end])
                    body = {"name": name, "offset": at, "data": part}
                    in_flight.append(self.send(ops.MODEL_CHUNK, body, resend=False))
                    at = end
                try:
                    held = max(held, int(self.wait(in_flight.popleft())["offset"]))
                except (Lost, DeviceError) as e:
                    if isinstance(e, DeviceError) and e.code != ops.E_UPLOAD_STATE:
                        raise
                    # A chunk came damaged, or not at all, or after a gap: the ones behind it
                    # are gaps too.  Go back to what the device holds and send on from there, in
                    # order, in smaller chunks, after a backoff if this keeps happening.
                    self.forget(in_flight)
                    in_flight.clear()
                    rewinds += 1
                    if rewinds > _MAX_REWINDS:
                        raise
                    self.rewinds += 1
                    if rewinds >= _CALM_REWINDS:
                        time.sleep(
                            min(_BACKOFF_MAX_S, _BACKOFF_S * (1 << rewinds - _CALM_REWINDS))
                        )
                    size = max(_MIN_CHUNK, min(size, total - held) // 2)
                    held = at = int(self.request(ops.MODEL_BEGIN, begin)["offset"])
                    clean = 0
                    continue
                rewinds = 0
                now = self.retries + self.resends
                if now != errors:  # the line is noisy: smaller chunks get through more often
                    size, clean, errors = max(_MIN_CHUNK, min(size, total - held) // 2), 0, now
                else:
                    clean += 1
                    if clean >= _GROW_AFTER and size < largest:
                        size, clean = min(largest, size * 2), 0
                if progress:
                    progress(held, total)
        finally:
            self.forget(in_flight)
            self._chunk = size
        return start

    def commit(self, name: str, activate: bool = True) -> dict[str, Any]:
        """Store the whole upload of ``name`` (checked against its sha256) as that model."""
        return self.request(ops.MODEL_COMMIT, {"name": name, "activate": activate})

    def abort_upload(self, name: str) -> None:
        """Drop a partial upload on the device."""
        self.request(ops.MODEL_ABORT, {"name": name})

    def infer(self, inputs, model: str | None = None) -> tuple[list[np.ndarray], int]:
        """One inference: inputs (an array or a list of arrays) -> (outputs, device µs).

        Inputs too large for one frame travel in pieces first (INFER_INPUT), when the agent
        takes them so."""
        payload = infer_payload(inputs, model) or _encode(ops.INFER, infer_body(inputs, model))
        if len(payload) > self.max_payload and self.device.get("staged_input"):
            payload = _encode(ops.INFER, self.stage_inputs(inputs, model))
        return _outputs(self.wait(self._send_payload(ops.INFER, payload, True, 0.0, True)))

    def stage_inputs(self, inputs, model: str | None = None) -> dict[str, Any]:
        """Send ``inputs`` to the device in pieces that fit its frames (INFER_INPUT, pipelined
        within the window); returns the body of the INFER that runs on them."""
        arrays = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        for _ in self.pipeline(input_pieces(arrays, model, self.max_payload)):
            pass
        body: dict[str, Any] = {"st": True}
        if model:
            body["m"] = model
        return body

    def infer_batch(self, batch, model: str | None = None) -> tuple[list[list[np.ndarray]], list]:
        """Many inputs in one frame -> (outputs per input, device µs per input)."""
        body: dict[str, Any] = {"xs": [_wire_inputs(x) for x in batch]}
        if model:
            body["m"] = model
        if (
            len(batch) == 1
            and payload_size(body) > self.max_payload
            and self.device.get("staged_input")
        ):
            outputs, us = self.infer(batch[0], model)  # too large for one frame: in pieces
            return [outputs], [us]
        reply = self.request(ops.INFER_BATCH, body)
        return [[from_wire(t) for t in ys] for ys in reply["ys"]], list(reply["t"])

    def infer_many(self, batch, model: str | None = None, window: int | None = None) -> Iterator:
        """Pipelined single inferences; yields (outputs, µs) in input order."""

        batch = iter(batch)
        first = next(batch, None)
        if first is None:
            return
        payload = infer_payload(first, model) or _encode(ops.INFER, infer_body(first, model))
        if len(payload) > self.max_payload and self.device.get("staged_input"):
            # Each input in pieces, one inference after the other.
            for x in itertools.chain([first], batch):
                yield self.infer(x, model)
            return

        def requests():
            yield ops.INFER, payload
            for x in batch:
                yield (
                    ops.INFER,
                    infer_payload(x, model) or _encode(ops.INFER, infer_body(x, model)),
                )

        for reply in self.pipeline(requests(), window):
            yield _outputs(reply)

    # -- Knowledge Packs -----------------------------------------------------------------
    def pack_set(self, pack: dict[str, Any]) -> dict[str, Any]:
        """Make ``pack`` (``kpdev.host.packs.pack.device_pack``) the device's pack, atomically."""
        return self.request(ops.PACK_SET, pack_set_body(pack))

    def pack_get(self) -> dict[str, Any] | None:
        """The device's pack (name, version, models, window), or None."""
        return self.request(ops.PACK_GET)["pack"]

    def pack_clear(self) -> None:
        """Forget the device's pack; its models stay stored."""
        self.request(ops.PACK_CLEAR)

    def classify(self, x: np.ndarray, features: bool = False) -> dict[str, Any]:
        """One raw window (or model input) through the device's pack -> its result map.

        ``features`` adds ``"x"``: the model input the device's pipeline made, as an array.
        """
        result = self.request(ops.CLASSIFY, classify_body(x, features))["r"][0]
        if "x" in result:
            result["x"] = from_wire(result["x"])
        return result

    def classify_many(
        self, xs: Iterable[np.ndarray], batch: int = 1, window: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Many windows, ``batch`` to a frame, pipelined within the device's window.

        Yields one result map per window, in order.
        """
        import numpy as np

        def requests():
            group = []
            for x in xs:
                group.append(to_wire(np.asarray(x)))
                if len(group) == batch:
                    yield ops.CLASSIFY, {"xs": group}
                    group = []
            if group:
                yield ops.CLASSIFY, {"xs": group}

        for reply in self.pipeline(requests(), window):
            yield from reply["r"]

    def stream_start(self) -> dict[str, Any]:
        """Start a stream of raw samples: the window size, stride and axes the device cuts."""
        return self.request(ops.STREAM_START)

    def stream_push(self, samples: np.ndarray) -> dict[str, Any]:
        """Push raw samples [n, axes]; each window completed arrives as a CLASS_EVENT first."""
        import numpy as np

        return self.request(ops.STREAM_PUSH, {"x": to_wire(np.asarray(samples))})

    def stream_stop(self) -> dict[str, Any]:
        """End the stream; the number of windows it classified."""
        return self.request(ops.STREAM_STOP)

    def profile(self, x: np.ndarray, runs: int = 10, warmup: int = 0) -> dict[str, Any]:
        """µs of each pipeline stage and model of the device's pack over ``runs`` runs, after
        ``warmup`` untimed ones: the means, and the times of each of the first 64 runs."""
        import numpy as np

        body = {"x": to_wire(np.asarray(x)), "n": runs, "w": warmup}
        return self.request(ops.PROFILE_RUN, body, timeout=self.timeout + runs + warmup)

    # -- edge learning (LEARN_*: the active pack's learner) ----------------------------------
    def learn_info(self) -> dict[str, Any]:
        """The learner of the device's pack: kind, labels, samples, saved or not."""
        return self.request(ops.LEARN_INFO)

    def learn(
        self, xs: Iterable[np.ndarray], ys: Iterable[int], session: str | None = None
    ) -> dict[str, Any]:
        """Teach one batch of raw windows (or model inputs) with their class indices.

        Returns ``p``, the classes the device predicted for them before learning them.
        """
        import numpy as np

        body: dict[str, Any] = {
            "xs": [to_wire(np.asarray(x)) for x in xs],
            "ys": [_label(y) for y in ys],
        }
        if session is not None:
            body["session"] = session
        return self.request(ops.LEARN, body)

    def learn_many(
        self,
        xs: list[np.ndarray],
        ys: list[int],
        batch: int = 1,
        session: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Teach many samples, ``batch`` to a frame, one request at a time (learning is
        order-dependent).  Yields each batch's reply."""
        for i in range(0, len(xs), batch):
            yield self.learn(xs[i : i + batch], ys[i : i + batch], session)

    def learn_enable(self, on: bool = True) -> dict[str, Any]:
        """Switch the device's learning on or off (classifying goes on either way)."""
        return self.request(ops.LEARN_ENABLE, {"on": on})

    def learn_add_classes(self, labels: list[str]) -> dict[str, Any]:
        """Add classes to the device's learner; their indices and all labels."""
        return self.request(ops.LEARN_ADD_CLASSES, {"labels": list(labels)})

    def learn_reset(self) -> dict[str, Any]:
        """Forget what the device learned (and saved): back to the pack's own state."""
        return self.request(ops.LEARN_RESET)

    def learn_save(self) -> dict[str, Any]:
        """Save the learner's state on the device, atomically; its size and sha256."""
        return self.request(ops.LEARN_SAVE)

    def learn_export(self, progress: Progress | None = None) -> bytes:
        """The learner's state as the device saves it, read in chunks and checked."""
        size = max(256, (self.max_payload - _CHUNK_OVERHEAD) // 2)
        data = b""
        total = None
        digest = None
        while total is None or len(data) < total:
            reply = self.request(ops.LEARN_EXPORT, {"offset": len(data), "size": size})
            if total is not None and (reply["total"] != total or reply["sha256"] != digest):
                raise ProtocolError("the learner state changed while it was being exported")
            total, digest = reply["total"], reply["sha256"]
            if not reply["data"] and len(data) < total:
                raise ProtocolError("the device sent an empty export chunk")
            data += reply["data"]
            if progress:
                progress(len(data), total)
        if hashlib.sha256(data).hexdigest() != digest:
            raise ProtocolError("the exported learner state does not match its sha256")
        return data

    def power_enable(self, on: bool = True) -> dict[str, Any]:
        """Switch power measurement on (or off); the source and whether it measures."""
        return self.request(ops.POWER_ENABLE, {"on": on})

    def power_disable(self) -> dict[str, Any]:
        """Switch power measurement off."""
        return self.power_enable(False)

    def power_read(self) -> dict[str, Any]:
        """Power events since the last read, as maps, with the count the device dropped."""
        reply = self.request(ops.POWER_READ)
        reply["events"] = [power_event(e) for e in reply.get("events") or []]
        if reply.get("rails"):
            reply["rails"] = {
                rail: dict(zip(POWER_EVENT_FIELDS[1:], v, strict=False))
                for rail, v in reply["rails"].items()
            }
        return reply

    def power_floor(self) -> dict[str, Any]:
        """Floor (idle) power in mW, and what it is based on."""
        return self.request(ops.POWER_FLOOR)

    def clock(self, mode: str | None = None) -> dict[str, Any]:
        """The clock or performance mode; ``mode`` switches to it first."""
        if mode is None:
            return self.request(ops.CLOCK_GET)
        return self.request(ops.CLOCK_SET, {"mode": mode})

    def close(self) -> None:
        """Close the link."""
        try:
            self.link.close()
        except (OSError, LinkError):
            pass


POWER_EVENT_FIELDS = ("ts_ms", "voltage_uv", "current_ma", "power_mw")


def power_event(event) -> dict[str, Any]:
    """A POWER_READ event ([ts_ms, voltage_uv, current_ma, power_mw]) as a map."""
    return dict(zip(POWER_EVENT_FIELDS, event, strict=False))


# Request bodies built the one way both the requests and the deploy's fit check
# (kpdev.host.packs.fit: will each fit the device's maximum payload?) use.
def infer_body(inputs, model: str | None = None) -> dict[str, Any]:
    """The body of an INFER request."""
    body = {"x": _wire_inputs(inputs)}
    if model:
        body["m"] = model
    return body


def input_pieces(arrays, model: str | None, max_payload: int) -> Iterator[tuple[int, dict]]:
    """The INFER_INPUT requests that carry ``arrays`` in pieces of at most ``max_payload``."""
    import numpy as np

    head = payload_size({"m": model or "", "i": 0, "o": 1 << 31, "d": b"", "dt": "float64"})
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        if a.dtype.name not in DTYPES:
            raise UsageError(f"dtype {a.dtype.name} cannot travel: use one of {', '.join(DTYPES)}")
        raw = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        shape = [int(d) for d in a.shape]
        step = max(16, max_payload - head - payload_size({"s": shape}) - 8)
        for off in range(0, max(len(raw), 1), step):
            body: dict[str, Any] = {"i": i, "o": off, "d": raw[off : off + step]}
            if off == 0:
                body["dt"] = a.dtype.name
                body["s"] = shape
            if model:
                body["m"] = model
            yield ops.INFER_INPUT, body


def classify_body(x: np.ndarray, features: bool = False) -> dict[str, Any]:
    """The body of a CLASSIFY request of one window (or model input)."""
    import numpy as np

    return {"x": to_wire(np.asarray(x)), "features": features}


def pack_set_body(pack: dict[str, Any]) -> dict[str, Any]:
    """The body of a PACK_SET request."""
    return {"pack": pack}


def payload_size(body: dict[str, Any]) -> int:
    """Bytes of a request body as sent (its CBOR encoding): what ``max_payload`` limits."""
    return len(cbor2.dumps(body))


def _outputs(reply) -> tuple[list[np.ndarray], int]:
    """(outputs, device µs) of an INFER reply: read already (read_infer_reply), or a map."""
    if type(reply) is tuple:
        return reply
    return [from_wire(t) for t in reply["y"]], int(reply["t"])


def _encode(op: int, body: dict[str, Any] | None) -> bytes:
    """A request body as CBOR; ``UsageError`` for what CBOR cannot hold."""
    try:
        return cbor2.dumps(body or {})
    except (cbor2.CBOREncodeError, TypeError, ValueError) as e:
        raise UsageError(f"cannot encode the {names.op_name(op)} request: {e}") from None


def _wire_inputs(inputs):
    import numpy as np

    if isinstance(inputs, (list, tuple)):
        return [to_wire(np.asarray(a)) for a in inputs]
    return to_wire(np.asarray(inputs))


def _label(y: Any) -> Any:
    # numpy integers as plain ints; anything else goes as it is, for the device to judge.
    import numpy as np

    if isinstance(y, np.integer):
        return int(y)
    return y
