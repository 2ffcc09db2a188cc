"""Random and damaged requests for fuzzing a live agent: one generator for the seeded fuzz test
(tests/device/test_fuzz.py) and the long runs of bench/fuzz.py.

``body_for(rng, op)`` is a request body for ``op``: its well-formed template, the template with
a field changed, dropped or added, mutated CBOR bytes, a random CBOR value, or random bytes.
``random_op(rng)`` is mostly a known request, sometimes any byte (unknown, reserved, events).
"""

import hashlib

import cbor2
from cbor2 import CBORSimpleValue, CBORTag

from kpdev.protocol import names, ops
from support.paths import read_data

HOST_MAX = 1 << 24
DENSE = read_data("dense_int8.tflite")
# Every request of protocol/ops.py (names derives the list from it).
KNOWN_OPS = list(names.REQUESTS)

# CBOR heads that make decoders stumble: indefinite lengths, breaks, huge declared lengths.
NASTY = [
    b"\x5f",
    b"\x7f",
    b"\x9f",
    b"\xbf",
    b"\xff",
    b"\x1c",
    b"\xf8\x10",
    b"\x5b\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x9b\x00\x00\x00\x01\x00\x00\x00\x00",
    b"\xbb\x7f\xff\xff\xff\xff\xff\xff\xff",
    b"\xc0" * 40,
    b"\x81" * 40,
    b"\xd8\x28\x82\x81\x1b\xff\xff\xff\xff\xff\xff\xff\xff\xd8\x48\x40",
]


def tensor(shape, tag, data):
    return CBORTag(40, [list(shape), CBORTag(tag, data)])


def templates(rng):
    """Well-formed request bodies, one per operation, for the mutator to start from."""
    x = tensor((1, 16), 72, bytes(rng.randrange(256) for _ in range(16)))
    upload = {"name": "f", "format": "tflite", "size": 64, "sha256": hashlib.sha256(bytes(64))}
    upload["sha256"] = upload["sha256"].digest()
    pack = {
        "name": "p",
        "version": "1",
        "root": "a",
        "pipeline": None,
        "models": [
            {
                "id": "a",
                "model": "m",
                "sha256": hashlib.sha256(DENSE).hexdigest(),
                "classes": ["w", "x", "y", "z"],
                "results": rng.choice([{}, {1: "a"}, {"1": "a"}, {"one": "a"}]),
                "output": 0,
            }
        ],
    }
    return {
        ops.HELLO: {"max_payload": rng.choice([64, 1024, HOST_MAX])},
        ops.INFO: {},
        ops.PING: {"data": bytes(rng.randrange(40))},
        ops.STATS: {"reset": rng.random() < 0.5},
        ops.REBOOT: {},
        ops.MODEL_BEGIN: upload,
        ops.MODEL_CHUNK: {"name": "f", "offset": rng.choice([0, 16, 32, 48]), "data": bytes(16)},
        ops.MODEL_COMMIT: {"name": "f", "activate": rng.random() < 0.5},
        ops.MODEL_ABORT: {"name": "f"},
        ops.MODEL_LIST: {},
        ops.MODEL_INFO: {"name": rng.choice(["m", "f"])},
        ops.MODEL_ACTIVATE: {"name": rng.choice(["m", "f"])},
        ops.MODEL_DELETE: {"name": "f"},
        ops.INFER: rng.choice([{"x": x, "m": "m"}, {"st": True, "m": "m"}]),
        ops.INFER_BATCH: {"xs": [x, x], "m": "m"},
        ops.INFER_INPUT: {
            "m": "m",
            "i": rng.choice([0, 1, -1]),
            "o": rng.choice([0, 0, 8, 16]),
            "d": bytes(rng.choice([0, 8, 16, 17])),
            "dt": rng.choice(["int8", "uint8", "float32"]),
            "s": rng.choice([[1, 16], [16], [1, 17], [-1, 16]]),
        },
        ops.PACK_SET: {"pack": pack},
        ops.PACK_GET: {},
        ops.PACK_CLEAR: {},
        ops.CLASSIFY: {"x": x},
        ops.CLOCK_SET: {"mode": rng.choice(["max", "min", "nope"])},
    }


def random_value(rng, depth=0):
    """Any CBOR item cbor2 can write: odd ints, floats, tags, simple values, nesting."""
    kinds = ["int", "bigint", "float", "text", "bytes", "bool", "none", "undef", "simple", "tag"]
    if depth < 4:
        kinds += ["list", "map", "tensor"]
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.choice([0, 1, -1, 23, 24, 255, 256, 65535, 2**31, -(2**31), 2**63 - 1])
    if kind == "bigint":
        return rng.choice([2**64 - 1, -(2**64), 2**64, 2**100])
    if kind == "float":
        return rng.choice([0.0, -0.0, 1.5, float("inf"), float("nan"), 1e300, -1e-300])
    if kind == "text":
        return rng.choice(["", "m", "f", "x" * 60, "caf\u00e9", "../etc", "\x00", "1"])
    if kind == "bytes":
        return bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "undef":
        return cbor2.undefined
    if kind == "simple":
        return CBORSimpleValue(rng.choice([0, 16, 19, 32, 255]))
    if kind == "tag":
        return CBORTag(rng.choice([0, 1, 2, 40, 64, 72, 85, 2**32]), random_value(rng, depth + 1))
    if kind == "tensor":
        shape = [rng.choice([0, 1, 2, 16, 2**31, 2**62]) for _ in range(rng.randrange(4))]
        tag = rng.choice([64, 72, 77, 84, 85, 86, 68, 99])
        return tensor(shape, tag, bytes(rng.randrange(40)))
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["name", "x", "xs", "m", "data", "offset", "size", "pack", "results", 1, b"k"]
    return {rng.choice(keys): random_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def mutate(rng, data):
    """A few byte-level edits: flips, inserts, deletes, cuts, nasty CBOR heads, repeats."""
    data = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        how = rng.randrange(6)
        at = rng.randrange(len(data) + 1)
        if how == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif how == 1:
            data[at:at] = bytes([rng.randrange(256)])
        elif how == 2 and data:
            del data[min(at, len(data) - 1)]
        elif how == 3:
            del data[at:]
        elif how == 4:
            data[at:at] = rng.choice(NASTY)
        else:
            data[at:at] = data[rng.randrange(len(data) + 1) :][:8]
    return bytes(data)


def reshape(rng, body):
    """A template with one field given a random value, dropped, or joined by a stray one."""
    body = dict(body)
    how = rng.randrange(3)
    if how == 0 and body:
        body[rng.choice(sorted(body, key=str))] = random_value(rng)
    elif how == 1 and body:
        del body[rng.choice(sorted(body, key=str))]
    else:
        body[rng.choice(["name", "x", "xs", "m", "data", "pack", "zz"])] = random_value(rng)
    return body


def body_for(rng, op):
    template = templates(rng).get(op, {})
    r = rng.random()
    if r < 0.25:
        return cbor2.dumps(template)
    if r < 0.55:
        return cbor2.dumps(reshape(rng, template))
    if r < 0.8:
        return mutate(rng, cbor2.dumps(template or random_value(rng)))
    if r < 0.92:
        return cbor2.dumps(random_value(rng))
    return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))


def random_op(rng):
    r = rng.random()
    if r < 0.8:
        return rng.choice(KNOWN_OPS)
    return rng.randrange(256)  # unknown, reserved, events, ERROR itself
