"""INFER's common request and its reply without the generic CBOR codec (CPython agents).

A deliberate twin of ``op_infer.infer`` with ``cbor.loads``/``cbor.dumps`` around it: per INFER
the generic codec walks the request and the reply item by item (a third of an INFER's time in the
agent).  Here the request a host sends, ``{"x": tensor or [tensors], "m": name}``, is read with a
few slices, and the reply ``{"y": [tensors], "t": µs}`` written as the codec writes it, byte for
byte (tests/device/test_fast_infer.py holds the two paths equal).  Anything else (another key, a
long head, a tensor whose bytes do not match its shape) returns None before anything runs, and
the generic path answers it, errors and all.

CPython only (kept off MicroPython boards): on a board this would be code in the heap for little.
"""

from struct import pack, unpack_from

from kpdev.protocol.tensors import DTYPES, TAG_DTYPES, Tensor

_X = b"\x61x"
_M = b"\x61m"


class _Other(Exception):
    """Not the common shape: the generic path answers."""


def _arg(data, pos, mt):
    # The argument of a head of major type ``mt`` (shifted) at ``pos`` -> (value, next pos).
    ib = data[pos]
    if ib & 0xE0 != mt:
        raise _Other()
    ai = ib & 0x1F
    if ai < 24:
        return ai, pos + 1
    if ai == 24:
        return data[pos + 1], pos + 2
    if ai == 25:
        return unpack_from(">H", data, pos + 1)[0], pos + 3
    if ai == 26:
        return unpack_from(">I", data, pos + 1)[0], pos + 5
    raise _Other()


def _tensor(data, pos):
    # tag 40 [[dims...], tag T bytes] -> (Tensor, next pos); its data starts at next - size
    if data[pos] != 0xD8 or data[pos + 1] != 40 or data[pos + 2] != 0x82:
        raise _Other()
    rank, pos = _arg(data, pos + 3, 0x80)
    shape = []
    n = 1
    for _ in range(rank):
        d, pos = _arg(data, pos, 0x00)
        shape.append(d)
        n *= d
    tag, pos = _arg(data, pos, 0xC0)
    dtype = TAG_DTYPES.get(tag)
    if dtype is None:
        raise _Other()
    size, pos = _arg(data, pos, 0x40)
    end = pos + size
    if end > len(data) or n * DTYPES[dtype][1] != size:
        raise _Other()
    return Tensor(dtype, shape, data[pos:end]), end


# The last one-tensor request read: (bytes before the tensor's data, bytes after it, name,
# dtype, shape, data size).  A host sends the same shape again and again: a request that has the
# same bytes around data of the same size reads the same, whatever the data.
_last = None


def read_request(data):
    """(model name or None, [Tensor]) of an INFER payload in the common shape, else None."""
    global _last
    last = _last
    if last is not None:
        head, tail, name, dtype, shape, size = last
        start = len(head)
        if len(data) == start + size + len(tail) and data.startswith(head) and data.endswith(tail):
            return name, [Tensor(dtype, shape, data[start : start + size])]
    request = _read(data)
    if request is not None and request[2] >= 0:
        t = request[1][0]
        size = len(t.data)
        start = request[2]
        _last = (data[:start], data[start + size :], request[0], t.dtype, t.shape, size)
    return request and request[:2]


def _read(data):
    # (name, [Tensor], where the data of the last tensor starts) or None
    try:
        ib = data[0]
        if ib != 0xA1 and ib != 0xA2:
            return None
        name = None
        inputs = None
        pos = 1
        for _ in range(ib & 0x1F):
            key = data[pos : pos + 2]
            pos += 2
            if key == _X and inputs is None:
                if data[pos] & 0xE0 == 0x80:
                    count, pos = _arg(data, pos, 0x80)
                    inputs = []
                    for _ in range(count):
                        t, pos = _tensor(data, pos)
                        inputs.append(t)
                    at = -1  # not cached: several inputs
                else:
                    t, pos = _tensor(data, pos)
                    inputs = [t]
                    at = pos - len(t.data)
            elif key == _M and name is None:
                size, pos = _arg(data, pos, 0x60)
                name = str(data[pos : pos + size], "utf-8")
                if pos + size > len(data):
                    return None
                pos += size
            else:
                return None
        if inputs is None or pos != len(data):
            return None
        return name, inputs, at
    except (_Other, IndexError, ValueError):  # ValueError: a bad head, invalid UTF-8
        return None


def _head(mt, n):
    # The shortest head, as the codec writes it.
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return pack(">BH", mt | 25, n)
    if n >> 32:
        return pack(">BQ", mt | 27, n)
    return pack(">BI", mt | 26, n)


_HEADS = {}  # (dtype, shape, data size) of an output -> the bytes of its tensor before the data


def write_reply(outputs, us):
    """``cbor.dumps({"y": [encode_tensor(t) ...], "t": us})`` for non-negative ``us``."""
    parts = [b"\xa2\x61y", _head(0x80, len(outputs))]
    for t in outputs:
        key = (t.dtype, t.shape, len(t.data))
        head = _HEADS.get(key)
        if head is None:
            head = [b"\xd8\x28\x82", _head(0x80, len(t.shape))]
            for d in t.shape:
                head.append(_head(0x00, d))
            head.append(_head(0xC0, DTYPES[t.dtype][0]))
            head.append(_head(0x40, len(t.data)))
            head = b"".join(head)
            if len(_HEADS) > 64:
                _HEADS.clear()
            _HEADS[key] = head
        parts.append(head)
        parts.append(t.data)
    parts.append(b"\x61t")
    parts.append(_head(0x00, us))
    return b"".join(parts)


def infer_payload(agent, payload):
    """The reply payload of an INFER request in the common shape, or None (not run then)."""
    request = read_request(payload) if type(payload) is bytes else None
    if request is None:
        return None
    name, outputs, us = agent.run(request[0], request[1])
    # What the codec would encode otherwise, or refuse (a numpy integer in a shape): its way.
    if type(us) is not int or us < 0:
        return _generic(outputs, us)
    for t in outputs:
        if DTYPES.get(t.dtype) is None or type(t.data) is not bytes:
            return _generic(outputs, us)
        for d in t.shape:
            if type(d) is not int:
                return _generic(outputs, us)
    return write_reply(outputs, us)


def _generic(outputs, us):
    from kpdev.protocol import cbor
    from kpdev.protocol.tensors import encode_tensor

    return cbor.dumps({"y": [encode_tensor(t) for t in outputs], "t": us})
