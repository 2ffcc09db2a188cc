"""Compact CBOR (RFC 8949) codec for the wire protocol, with cbor2's names.

Runs unchanged on MicroPython >= 1.20 and CPython >= 3.10.  Encodes int (64-bit range), bool,
None, float (as float64), str, bytes-like, list/tuple, dict and ``Tag``; decodes those plus
float16/float32 and undefined (as None).  Indefinite-length items are rejected: the protocol never
sends them.  Decoding untrusted bytes is bounded: nesting is limited to ``MAX_DEPTH`` and every
length is checked against the bytes left before anything is allocated.

RAM: on a microcontroller this module stays loaded and its code lives in the heap, so encoder and
decoder are one function each, testing exact types in order of how often messages hold them
(a type -> function table costs a function object per type and a call per item).
"""

from struct import pack as _pack
from struct import unpack_from as _unpack_from

from kpdev.protocol.errors import DecodeError, EncodeError

try:
    from struct import error as _StructError
except ImportError:  # MicroPython raises ValueError instead
    _StructError = ValueError

MAX_DEPTH = 32


class Tag:
    """A CBOR tag (major type 6): a tag number and the item it wraps (cbor2's ``CBORTag``)."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        # != is derived from this on both runtimes.
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __hash__(self):
        return hash((self.tag, self.value))

    def __repr__(self):
        return "Tag(%r, %r)" % (self.tag, self.value)


# Subclasses (IntEnum, OrderedDict, ...) are encoded as the first of these they derive from; bool
# precedes int.
_BASES = (bool, int, float, str, bytes, bytearray, memoryview, list, tuple, dict, Tag)

# ---------------------------------------------------------------------------------------------
# Encoding: everything is appended to one bytearray.


def _head(out, mt, n):
    # mt is the major type shifted into the top three bits.
    if n < 24:
        out.append(mt | n)
    elif n < 0x100:
        out.append(mt | 24)
        out.append(n)
    elif n < 0x10000:
        out += _pack(">BH", mt | 25, n)
    elif n >> 32:
        out += _pack(">BQ", mt | 27, n)
    else:
        out += _pack(">BI", mt | 26, n)


def _encode(obj, out, depth, t=None):
    # ``t`` is the type to encode ``obj`` as; only a subclass of a CBOR type passes it.
    if t is None:
        t = type(obj)
    if t is str:
        obj = obj.encode("utf-8")
        _head(out, 0x60, len(obj))
        out += obj
    elif t is int:
        if obj < 0:
            if (-1 - obj) >> 64:
                raise EncodeError("int %d does not fit in 64 bits" % obj)
            _head(out, 0x20, -1 - obj)
        else:
            if obj >> 64:
                raise EncodeError("int %d does not fit in 64 bits" % obj)
            _head(out, 0x00, obj)
    elif t is dict:
        depth += 1
        if depth > MAX_DEPTH:
            raise EncodeError("nesting deeper than %d" % MAX_DEPTH)
        _head(out, 0xA0, len(obj))
        for key, value in obj.items():
            _encode(key, out, depth)
            _encode(value, out, depth)
    elif t is bytes or t is bytearray:
        _head(out, 0x40, len(obj))
        out += obj
    elif t is list or t is tuple:
        depth += 1
        if depth > MAX_DEPTH:
            raise EncodeError("nesting deeper than %d" % MAX_DEPTH)
        _head(out, 0x80, len(obj))
        for item in obj:
            _encode(item, out, depth)
    elif t is bool:
        out.append(0xF5 if obj else 0xF4)
    elif obj is None:
        out.append(0xF6)
    elif t is float:
        # cbor2 writes non-finite floats as float16; doing the same keeps our bytes equal to its.
        if obj != obj:
            out += b"\xf9\x7e\x00"
        elif obj - obj != 0.0:  # inf - inf is NaN; any finite x - x is 0
            out += b"\xf9\x7c\x00" if obj > 0 else b"\xf9\xfc\x00"
        else:
            out += _pack(">Bd", 0xFB, obj)
    elif t is Tag:
        tag = obj.tag
        if type(tag) is not int or tag < 0 or tag >> 64:
            raise EncodeError("tag number must be an int in 0..2**64-1, not %r" % (tag,))
        depth += 1
        if depth > MAX_DEPTH:
            raise EncodeError("nesting deeper than %d" % MAX_DEPTH)
        _head(out, 0xC0, tag)
        _encode(obj.value, out, depth)
    elif t is memoryview:
        obj = bytes(obj)  # len() of a multi-byte-format view counts items, not bytes
        _head(out, 0x40, len(obj))
        out += obj
    else:
        for base in _BASES:
            if isinstance(obj, base):
                return _encode(obj, out, depth, base)
        raise EncodeError("cannot encode %s to CBOR" % type(obj).__name__)


def dumps(obj):
    """Encode ``obj`` as CBOR bytes; raises ``EncodeError`` for what CBOR here cannot hold."""
    out = bytearray()
    _encode(obj, out, 0)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Decoding: _decode(data, pos, depth) -> (value, next pos).  Out-of-range reads raise
# IndexError/ValueError/struct.error, which loads() turns into DecodeError.


def _decode(data, pos, depth):
    ib = data[pos]
    pos += 1
    mt = ib & 0xE0
    ai = ib & 0x1F
    if ai < 24:
        arg = ai
    elif ai == 24:
        arg = data[pos]
        pos += 1
    elif ai == 25:
        arg = (data[pos] << 8) | data[pos + 1]
        pos += 2
    elif ai == 26:
        if mt == 0xE0:
            return _unpack_from(">f", data, pos)[0], pos + 4
        arg = _unpack_from(">I", data, pos)[0]
        pos += 4
    elif ai == 27:
        if mt == 0xE0:
            return _unpack_from(">d", data, pos)[0], pos + 8
        arg = _unpack_from(">Q", data, pos)[0]
        pos += 8
    elif ai == 31:
        raise DecodeError("indefinite-length items are not supported")
    else:
        raise DecodeError("reserved additional information %d" % ai)

    if mt == 0x00:
        return arg, pos
    if mt == 0x60 or mt == 0x40:
        end = pos + arg
        if end > len(data):
            raise DecodeError("string of %d bytes but only %d left" % (arg, len(data) - pos))
        value = data[pos:end]
        if mt == 0x60:
            return str(value, "utf-8"), end
        if type(value) is not bytes:
            value = bytes(value)
        return value, end
    if mt == 0x20:
        return -1 - arg, pos
    if mt == 0xE0:
        if ai == 25:  # float16
            exp = (arg >> 10) & 0x1F
            mant = arg & 0x3FF
            if exp == 0:
                v = mant * 5.960464477539063e-08  # 2**-24: subnormals and zero
            elif exp != 31:
                v = (mant + 1024) * 2.0 ** (exp - 25)
            elif mant == 0:
                v = float("inf")
            else:
                v = float("nan")
            return (-v if arg & 0x8000 else v), pos
        if ai == 20 or ai == 21:
            return ai == 21, pos
        if ai == 22 or ai == 23:  # null, undefined
            return None, pos
        raise DecodeError("unsupported simple value %d" % arg)

    depth += 1
    if depth > MAX_DEPTH:
        raise DecodeError("nesting deeper than %d" % MAX_DEPTH)
    if mt == 0xA0:
        # Each key and value takes at least one byte: a bigger claim is a lie, refused before
        # anything is allocated.
        if 2 * arg > len(data) - pos:
            raise DecodeError("map of %d pairs but only %d bytes left" % (arg, len(data) - pos))
        items = {}
        for _ in range(arg):
            key, pos = _decode(data, pos, depth)
            items[key], pos = _decode(data, pos, depth)
        return items, pos
    if mt == 0x80:
        if arg > len(data) - pos:
            raise DecodeError("array of %d items but only %d bytes left" % (arg, len(data) - pos))
        items = []
        for _ in range(arg):
            value, pos = _decode(data, pos, depth)
            items.append(value)
        return items, pos
    value, pos = _decode(data, pos, depth)
    return Tag(arg, value), pos


def loads(data):
    """Decode one CBOR item from bytes-like ``data``; raises ``DecodeError`` if it is malformed."""
    if type(data) is not bytes:
        try:
            data = memoryview(data)
        except TypeError:
            raise DecodeError("cannot decode CBOR from %s" % type(data).__name__)
    try:
        value, pos = _decode(data, 0, 0)
    except DecodeError:
        raise
    except UnicodeError:
        raise DecodeError("invalid UTF-8 in a text string")
    except (IndexError, ValueError, _StructError):
        # Reading past the end: data[i] raises IndexError, unpack_from struct.error/ValueError.
        raise DecodeError("truncated CBOR item")
    except TypeError as e:
        raise DecodeError("unhashable map key (%s)" % e)
    if pos != len(data):
        raise DecodeError("%d trailing bytes after the CBOR item" % (len(data) - pos))
    return value
