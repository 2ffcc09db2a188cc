"""Boards of a labgrid lab: list, acquire and release labgrid places through labgrid's client API.

A lab's boards are labgrid *places*: a coordinator knows them, and an exporter on each lab host
publishes a board's serial port through ``ser2net`` as a ``NetworkSerialPort`` (RFC 2217).
kpdev talks to the coordinator in-process with labgrid's own ``ClientSession``
(``labgrid.remote.client``): it subscribes to the places and resources, acquires and releases
places with the coordinator's ``AcquirePlace`` / ``ReleasePlace`` calls (what ``labgrid-client
acquire`` sends, without its printing) and hands each acquired place's port on as an
``rfc2217://HOST:PORT`` URL, which kpdev's links open like any port.

- Places are chosen by fnmatch patterns over their names and aliases (``lab-pico-*``), or as
  ``+TOKEN``: the places of a labgrid reservation (``+`` alone takes ``$LG_TOKEN``).
- The board type is the place's tag ``board`` (``labgrid-client -p P set-tags board=sim-mcu``).
- Who kpdev is to labgrid is labgrid's own choice: ``$LG_HOSTNAME`` (else the host name) and
  ``$LG_USERNAME`` (else the login), as ``HOST/USER``; an owner is reported in that form.
- Acquiring is all or none: a place held by someone else stops the whole selection before any
  is taken, and a failure half way releases those taken.  Places are released on every way out
  (a normal end, an error, Ctrl-C; a Ctrl-C during an acquire or a release is held back until
  it is done).  A place this user had acquired before (``labgrid-client acquire``) is used and
  left acquired.
- The exporter starts ``ser2net`` for a port, and so picks its TCP port, only when the place
  is acquired: a free place's ``url`` is None until then.

labgrid is an optional extra (``pip install 'kpdev[fleet]'``), imported only when places are
asked for.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kpdev.host.config import read_config
from kpdev.host.errors import BoardError, UsageError
from kpdev.protocol.errors import KpdevError

# gRPC's fork handlers (labgrid's client talks gRPC in this process) re-initialise its event
# engine in a forked child; a child forked while gRPC threads run (subprocess with preexec_fn,
# as QEMU boards are started) aborted in them.  kpdev never uses gRPC across a fork: leave them
# off unless the user asked otherwise.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

CONFIG_KEY = "labgrid-coordinator"
DEFAULT_PORT = 20408  # labgrid's own default for a coordinator address without a port
SERIAL_CLS = "NetworkSerialPort"
# pyserial's URL option that stops waiting for answers to SET_CONTROL: ser2net answers none for
# a port it opened "local" (as labgrid's exporter starts it), and pyserial's open would time out
# ("timeout while waiting for option 'control'"); labgrid's own SerialDriver sets it too.
RFC2217_OPTIONS = "?ign_set_control"
# A serial resource of this name (or renamed to it by a named match) is kpdev's when a place has
# several.
PREFERRED_NAME = "kpdev"
_CONNECT_S = 10.0  # reaching the coordinator and receiving its places
_CALL_S = 30.0  # one acquire or release (the coordinator asks the exporters)
_PORT_S = 15.0  # an exporter starting ser2net for an acquired place
_POLL_S = 0.1
_LIST_MAX = 12  # place names quoted in a "matches no place" message


@dataclass(frozen=True)
class Place:
    """A labgrid place as kpdev uses it."""

    name: str  # labgrid place name
    # "rfc2217://HOST:PORT?ign_set_control" of the place's NetworkSerialPort (socket://HOST:PORT
    # for a raw TCP one); None when it has none, or none yet (a free place: see the docstring)
    url: str | None
    board: str | None  # catalog board id from the place's tag "board" (e.g. sim-mcu)
    owner: str | None  # who holds it ("host/user"), None when free
    speed: int | None = None  # baud rate of the NetworkSerialPort


class PlaceBusy(BoardError):
    """A place is acquired by someone else (or reserved for someone else)."""


def coordinator(explicit: str | None = None) -> str:
    """explicit, else $LG_COORDINATOR, else config key labgrid-coordinator; UsageError saying how
    to set one when none."""
    address = explicit or os.environ.get("LG_COORDINATOR") or read_config().get(CONFIG_KEY)
    if not address:
        raise UsageError(
            "no labgrid coordinator: set LG_COORDINATOR=HOST[:PORT] (as for labgrid-client) or "
            f"run: kpdev config set {CONFIG_KEY} HOST[:PORT]"
        )
    return address


def places(patterns: list[str], coordinator: str) -> list[Place]:
    """Places whose names match any fnmatch pattern (no acquire): for `kpdev fleet list`.
    UsageError when a pattern matches nothing; BoardError (clear one line) when the
    coordinator cannot be reached."""
    with _Session(coordinator) as s:
        return [s.place(name) for name in s.select(patterns)]


@contextmanager
def acquired(patterns: list[str], coordinator: str) -> Iterator[list[Place]]:
    """Acquire every matching place, all or none, yield them with their urls, release them all
    on exit: normal exit, exceptions, KeyboardInterrupt.

    A place acquired by someone else raises PlaceBusy naming the owner before any place is
    taken; a place without a serial port, or whose exporter does not start one, BoardError.
    """
    taken: list[str] = []
    with _Session(coordinator) as s:
        names = s.select(patterns)
        before = {n: s.places[n].acquired for n in names}
        for name in names:
            s.check_usable(name)
        try:
            for name in names:
                if before[name] != s.me:
                    s.acquire(name, taken)
            held = s.wait_for_ports(names)
        except BaseException:
            failed = s.release(taken)
            _mention_unreleased(sys.exc_info()[1], failed)
            raise
    try:
        yield held
    except BaseException as e:
        _mention_unreleased(e, _release(coordinator, taken))
        raise
    failed = _release(coordinator, taken)
    if failed:
        raise BoardError(_unreleased(failed))


def _release(coordinator: str, names: list[str]) -> dict[str, str]:
    """Release ``names`` in a session of their own; {name: why} for those left acquired."""
    if not names:
        return {}
    with _sigint_held():  # a second Ctrl-C while releasing after the first
        try:
            with _Session(coordinator) as s:
                return s.release(names)
        except KpdevError as e:
            return {n: str(e) for n in names}


def _unreleased(failed: dict[str, str]) -> str:
    names = ", ".join(failed)
    why = next(iter(failed.values()))
    return f"labgrid place(s) {names} could not be released ({why}); release with: " + "; ".join(
        f"labgrid-client -p {n} release" for n in failed
    )


def _mention_unreleased(e: BaseException | None, failed: dict[str, str]) -> None:
    # The error on its way out stays the one the user sees; places it left held are named in it.
    if failed and isinstance(e, KpdevError):
        e.message = f"{e.message}; and {_unreleased(failed)}"
        e.args = (e.message,)


def _labgrid():
    """labgrid's client module and message types, and grpc; UsageError when not installed."""
    hook = sys.excepthook
    try:
        import grpc
        from labgrid.remote import client
        from labgrid.remote.generated import labgrid_coordinator_pb2
        from labgrid.util.proxy import proxymanager
    except ImportError:
        raise UsageError("labgrid is not installed: pip install 'kpdev[fleet]'") from None
    finally:
        sys.excepthook = hook  # labgrid's client module replaces it on import
    return client, labgrid_coordinator_pb2, grpc, proxymanager


class _Quiet(logging.Filter):
    """Keeps labgrid's client from logging on stderr (kpdev says one line); remembers the last
    message, which says why the coordinator could not be reached."""

    def __init__(self):
        super().__init__()
        self.last = None
        self.error = None  # the exception labgrid logged with it, if any

    def filter(self, record: logging.LogRecord) -> bool:
        if "labgrid" in record.pathname:
            if record.levelno >= logging.WARNING:
                self.last = record.getMessage()
                self.error = record.exc_info[1] if record.exc_info else None
            return False
        return True


_held_back = threading.local()


@contextmanager
def _sigint_held():
    """Hold a Ctrl-C back until the block is done (in the main thread), then raise it: an
    acquire or release interrupted half way leaves the coordinator's state unknown."""
    if (
        threading.current_thread() is not threading.main_thread()
        or getattr(_held_back, "active", False)
        or not callable(signal.getsignal(signal.SIGINT))
    ):
        yield
        return
    pressed = []
    old = signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    _held_back.active = True
    try:
        yield
    finally:
        _held_back.active = False
        signal.signal(signal.SIGINT, old)
    if pressed:
        raise KeyboardInterrupt


class _Session:
    """One connection to a coordinator, on the thread's event loop (labgrid's, never closed):
    labgrid's ClientSession with its places and resources kept up to date while kpdev waits."""

    def __init__(self, address: str):
        self.client, self.pb2, self.grpc, proxymanager = _labgrid()
        self.address = address
        self.target = proxymanager.get_grpc_address(address, default_port=DEFAULT_PORT)
        self.quiet = _Quiet()
        self.loop = None
        self.session = None

    def __enter__(self) -> _Session:
        logging.getLogger().addFilter(self.quiet)
        # One event loop per thread for every session, kept open, as labgrid's own client keeps
        # it: grpc.aio's poller stays bound to the loop it first ran on, and a new loop per
        # session had its events land on a closed one ("Event loop is closed"), now and then
        # failing the next connection ("unexpected grpc error in coordinator message pump").
        self.loop = self.client.ensure_event_loop()
        asyncio.set_event_loop(self.loop)  # grpc.aio takes the thread's loop
        try:
            self.session = self.client.ClientSession(self.target, self.loop)
            self._run(self.session.start(), _CONNECT_S)
        except BaseException as e:
            self.__exit__(type(e), e, None)
            if isinstance(e, (self.client.Error, asyncio.TimeoutError)):
                raise BoardError(self._unreachable()) from None
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.session is not None:
                self.loop.run_until_complete(self._stop())
        finally:
            logging.getLogger().removeFilter(self.quiet)

    async def _stop(self) -> None:
        try:
            await asyncio.wait_for(self.session.stop(), _CONNECT_S)
        except (asyncio.TimeoutError, self.client.Error):
            pass
        await self.session.close()

    def _unreachable(self) -> str:
        why = self.quiet.last or "no answer in %g s" % _CONNECT_S
        error = self.quiet.error
        if (
            isinstance(error, self.grpc.aio.AioRpcError)
            and error.code() != self.grpc.StatusCode.UNAVAILABLE
        ):
            why = f"{why}: {error.code().name} {error.details()}"
        why = why.replace("coordinator is unavailable: ", "")
        if (
            "last error:" in why
        ):  # grpc's "failed to connect to all addresses; ...: Connection refused"
            why = why.rsplit(": ", 1)[-1]
        return (
            f"cannot reach the labgrid coordinator at {self.address} ({why}); is "
            f"labgrid-coordinator running there? (LG_COORDINATOR or kpdev config set {CONFIG_KEY})"
        )

    def _run(self, coro, timeout: float):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def _sync(self) -> None:
        if not self._run(self.session.sync_with_coordinator(), _CONNECT_S):
            raise BoardError(self._unreachable())

    @property
    def places(self) -> dict:
        return self.session.places

    @property
    def me(self) -> str:
        """Who this program is to labgrid: HOST/USER ($LG_HOSTNAME, $LG_USERNAME)."""
        return f"{self.session.gethostname()}/{self.session.getuser()}"

    def select(self, patterns: list[str]) -> list[str]:
        """The names of the places the patterns name, in pattern order, each once."""
        if not patterns:
            raise UsageError("no labgrid place given: name one, or a pattern such as 'lab-*'")
        names: list[str] = []
        for pattern in patterns:
            found = self._match(pattern)
            names += [n for n in found if n not in names]
        return names

    def _match(self, pattern: str) -> list[str]:
        if pattern.startswith("+"):
            token = pattern[1:] or os.environ.get("LG_TOKEN", "")
            if not token:
                raise UsageError("'+' takes the reservation token from LG_TOKEN, which is unset")
            found = sorted(n for n, p in self.places.items() if p.reservation == token)
            if not found:
                raise UsageError(
                    f"reservation {token} holds no place on {self.address} (is it allocated? "
                    f"labgrid-client wait {token})"
                )
            return found
        found = sorted(
            n
            for n, p in self.places.items()
            if fnmatch.fnmatchcase(n, pattern)
            or any(fnmatch.fnmatchcase(a, pattern) for a in p.aliases)
        )
        if not found:
            known = sorted(self.places)
            listed = ", ".join(known[:_LIST_MAX]) + (", ..." if len(known) > _LIST_MAX else "")
            raise UsageError(
                f"place pattern {pattern!r} matches no place on the labgrid coordinator at "
                f"{self.address}; "
                + (
                    f"its places: {listed}"
                    if known
                    else "it has no places (labgrid-client create)"
                )
            )
        return found

    def _resources(self, lp) -> list:
        """(match, resource path, ResourceEntry) of a place's serial ports: those it acquired,
        or while it is free those its matches would take."""
        found = []
        if lp.acquired:
            paths = [tuple(p) for p in lp.acquired_resources]
        else:
            paths = [
                (exporter, group_name, entry.cls, name)
                for exporter, groups in self.session.resources.items()
                for group_name, group in groups.items()
                for name, entry in group.items()
            ]
        for path in sorted(paths):
            exporter, group_name, cls, name = path
            match = lp.getmatch(path)
            entry = self.session.resources.get(exporter, {}).get(group_name, {}).get(name)
            if match is not None and entry is not None and cls == SERIAL_CLS:
                found.append((match, path, entry))
        return found

    def _serial(self, lp):
        """The ResourceEntry of the place's serial port kpdev talks to, or None."""
        found = self._resources(lp)
        for match, path, entry in found:
            if PREFERRED_NAME in (match.rename, path[3]):
                return entry
        return found[0][2] if found else None

    def place(self, name: str) -> Place:
        lp = self.places[name]
        entry = self._serial(lp)
        url = speed = None
        if entry is not None:
            params = entry.params
            speed = params.get("speed")
            if entry.avail and params.get("port") and params.get("host"):
                host = params["host"]
                host = f"[{host}]" if ":" in host else host
                if params.get("protocol") == "raw":
                    url = f"socket://{host}:{params['port']}"
                else:
                    url = f"rfc2217://{host}:{params['port']}{RFC2217_OPTIONS}"
        return Place(
            name=name,
            url=url,
            board=lp.tags.get("board") or None,
            owner=lp.acquired or None,
            speed=int(speed) if speed else None,
        )

    def check_usable(self, name: str) -> None:
        """PlaceBusy when someone else holds or reserved the place; BoardError when it has no
        serial port kpdev can reach."""
        lp = self.places[name]
        if lp.acquired and lp.acquired != self.me:
            raise PlaceBusy(_busy(name, lp.acquired))
        entry = self._serial(lp)
        if entry is None:
            raise BoardError(
                f"labgrid place {name} has no serial port ({SERIAL_CLS}) among its resources: "
                f"add one with labgrid-client -p {name} add-match EXPORTER/GROUP/{SERIAL_CLS}"
            )
        if entry.extra.get("proxy_required"):
            raise BoardError(
                f"labgrid place {name}'s exporter is isolated (its ports are reached through an "
                "SSH proxy); kpdev connects to the port itself: run labgrid-exporter without "
                "--isolated"
            )

    def acquire(self, name: str, taken: list[str]) -> None:
        """Acquire one place (appended to ``taken`` as soon as the coordinator has it)."""
        request = self.pb2.AcquirePlaceRequest(placename=name)
        with _sigint_held():
            try:
                self._run(self.session.stub.AcquirePlace(request), _CALL_S)
            except self.grpc.aio.AioRpcError as e:
                self._refused(name, e)
            except asyncio.TimeoutError:
                # The coordinator may have done it after all: take it back at the release.
                taken.append(name)
                raise BoardError(
                    f"the labgrid coordinator did not acquire place {name} in {_CALL_S:g} s"
                ) from None
            taken.append(name)
            self._sync()

    def _refused(self, name: str, e) -> None:
        self._sync()
        lp = self.places.get(name)
        if lp is not None and lp.acquired and lp.acquired != self.me:
            raise PlaceBusy(_busy(name, lp.acquired)) from None
        if e.code() == self.grpc.StatusCode.PERMISSION_DENIED:
            raise PlaceBusy(
                f"labgrid place {name} is reserved for someone else ({e.details()}); wait for "
                "your own reservation (labgrid-client reserve) or ask them to cancel theirs"
            ) from None
        raise BoardError(f"labgrid refused to acquire place {name}: {e.details()}") from None

    def wait_for_ports(self, names: list[str]) -> list[Place]:
        """The places once their exporters publish each one's serial port (ser2net starts on
        acquire); BoardError naming a place whose port does not appear."""
        deadline = time.monotonic() + _PORT_S
        while True:
            held = [self.place(n) for n in names]
            missing = [p.name for p in held if p.url is None]
            if not missing:
                return held
            if time.monotonic() > deadline:
                raise BoardError(
                    f"labgrid place {missing[0]}'s serial port did not come up in {_PORT_S:g} s "
                    "(board unplugged, or ser2net missing on its exporter?); see "
                    f"labgrid-client -p {missing[0]} show"
                )
            self._run(asyncio.sleep(_POLL_S), _CONNECT_S)
            self._sync()

    def release(self, names: list[str]) -> dict[str, str]:
        """Release the places this user holds among ``names``; {name: why} for failures."""
        failed = {}
        with _sigint_held():
            for name in names:
                # fromuser: released only while it is still ours, never someone else's.
                request = self.pb2.ReleasePlaceRequest(placename=name, fromuser=self.me)
                try:
                    self._run(self.session.stub.ReleasePlace(request), _CALL_S)
                except self.grpc.aio.AioRpcError as e:
                    failed[name] = e.details() or str(e.code())
                except asyncio.TimeoutError:
                    failed[name] = f"no answer in {_CALL_S:g} s"
            try:
                self._sync()
            except BoardError as e:
                failed.update({n: str(e) for n in names if n not in failed})
        return failed


def _busy(name: str, owner: str) -> str:
    return (
        f"place {name} is acquired by {owner}; wait or ask them to release it "
        f"(labgrid-client -p {name} release)"
    )
