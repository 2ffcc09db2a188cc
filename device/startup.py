"""Start the agent from command-line options (``python -m kpdev.device --help`` lists them).

Needed once: ``kpdev.device.__main__`` drops this module (and ``open_link``'s package) before
serving, so that a microcontroller does not keep their code in its heap.
"""

import sys

from kpdev.device.agent import Agent
from kpdev.device.links import is_loopback, open_link
from kpdev.protocol.errors import KpdevError

try:
    from binascii import unhexlify
except ImportError:
    from ubinascii import unhexlify

# A string, not the docstring: MicroPython keeps no docstrings.
_USAGE = """usage: python -m kpdev.device [options]   (or: micropython -m kpdev.device ...)

options:
    --link SPEC        stdio (default), tcp://HOST:PORT, uart:ID[:BAUD] or a tty path
    --state DIR        where models and state live (default ./kpdev-state)
    --board NAME       board name reported by INFO
    --quota BYTES      model storage quota (default 1048576)
    --max-payload N    largest frame payload accepted
    --window N         requests the host may have in flight
    --key HEX          pre-shared key; frames must be authenticated (or env KPDEV_KEY)
    --insecure         allow TCP on a non-loopback address without a key
    --exit-on-reboot   REBOOT ends the process with status 75 (for a supervisor that
                       starts it again, as a board's reset does); its pipes are no
                       console: two Ctrl-C never stop the agent
    --power JSON       the board's power settings, e.g. {"source":"estimate","idle_mw":60,
                       "active_mw":120} (see boards.yml)
    --clock icount:N   the board's clock is QEMU's -icount virtual time, one instruction
                       per 2**N ns: INFO and STATS say so, and times are labelled as
                       instruction counts, not measured time (emulated boards)
    --model-area SPEC  memory-mapped storage where loaded models are read in place, no
                       weights in the heap: mem:ADDR:SIZE (MicroPython: flash or PSRAM at
                       ADDR) or file:PATH:SIZE (CPython: a mapped file) (or env
                       KPDEV_MODEL_AREA)
    --arena BYTES      set BYTES aside at start for the arena of the model loaded later
                       (as a firmware reserves TFLM's arena): one block, before the
                       heap is divided; a larger arena is allocated as usual
"""
_FLAGS = ("--insecure", "--exit-on-reboot")
_OPTIONS = (
    "--link",
    "--state",
    "--board",
    "--quota",
    "--max-payload",
    "--window",
    "--key",
    "--power",
    "--clock",
    "--model-area",
    "--arena",
)


def parse_args(argv):
    """argv list -> dict of option name -> value (MicroPython has no argparse)."""
    opts = {"--link": "stdio", "--state": "kpdev-state", "--board": "unknown"}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in _FLAGS:
            opts[a] = True
        elif a in _OPTIONS and i + 1 < len(argv):
            i += 1
            opts[a] = argv[i]
        elif a in ("-h", "--help"):
            sys.stderr.write(_USAGE)
            sys.exit(1)
        else:
            raise KpdevError("unknown or incomplete option %r (see --help)" % a)
        i += 1
    return opts


def _getenv(name):
    try:
        import os

        return os.getenv(name)
    except (ImportError, AttributeError):
        return None


def start(argv):
    """Parse options, build the agent and open its link; returns (agent, link)."""
    opts = parse_args(argv)
    arena = opts.get("--arena")
    if arena:
        # First, while the heap is in one piece: a model's arena is its one large block.
        if not arena.isdigit():
            raise KpdevError("--arena takes a number of bytes")
        from kpdev.accelerators.base import reserve_arena

        reserve_arena(int(arena))
    key = opts.get("--key") or _getenv("KPDEV_KEY")
    key = unhexlify(key) if key else None
    spec = opts["--link"]
    if spec.startswith("tcp://") and not key and not opts.get("--insecure"):
        host = spec[6:].rsplit(":", 1)[0].strip("[]")
        if not is_loopback(host):
            raise KpdevError(
                "refusing to listen on %s without a key: set --key or KPDEV_KEY, "
                "or pass --insecure" % host
            )
    power = opts.get("--power")
    if power:
        import json

        try:
            power = json.loads(power)
        except ValueError:
            power = None
        if not isinstance(power, dict):
            raise KpdevError("--power takes a JSON object: the board's power settings")
    clock = opts.get("--clock")
    if clock:
        kind, _, shift = clock.partition(":")
        if kind != "icount" or not shift.isdigit() or int(shift) > 10:
            raise KpdevError("--clock takes icount:N (N from 0 to 10)")
        clock = {"kind": "icount", "ns_per_instruction": 1 << int(shift)}
    agent = Agent(
        opts["--state"],
        board=opts["--board"],
        quota=int(opts.get("--quota", 1 << 20)),
        max_payload=int(opts["--max-payload"]) if "--max-payload" in opts else None,
        window=int(opts["--window"]) if "--window" in opts else None,
        key=key,
        power=power,
        exit_on_reboot=bool(opts.get("--exit-on-reboot")),
        clock=clock,
        # A simulated board's launcher maps the area and knows its address only once it runs.
        model_area=opts.get("--model-area") or _getenv("KPDEV_MODEL_AREA"),
    )
    link = open_link(spec)
    if hasattr(link, "port") and spec.startswith("tcp://"):
        sys.stderr.write("kpdev-agent listening on %s port %d\n" % (link.name, link.port))
    return agent, link
