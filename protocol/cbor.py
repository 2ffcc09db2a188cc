"""Compact CBOR (RFC 8949) codec for the wire protocol, with cbor2's names.

Runs unchanged on MicroPython >= 1.20 and CPython >= 3.10.  Encodes int (64-bit range), bool,
None, float (as float64), str, bytes-like, list/tuple, dict and ``Tag``; decodes those plus
float16/float32 and undefined (as None).  Indefinite-length items are rejected: the protocol never
sends them.  Decoding untrusted bytes is bounded: nesting is limited to ``MAX_DEPTH`` and every
length is checked against the bytes left before anything is allocated.
"""

from struct import pack as _pack
from struct import unpack_from as _unpack_from

from kpdev.protocol.errors import DecodeError, EncodeError

try:
    from struct import error as _StructError
except ImportError:  # MicroPython raises ValueError instead
    _StructError = ValueError

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


MAX_DEPTH = 32

# Major types, shifted into place.
_UINT = const(0x00)
_NINT = const(0x20)
_BYTES = const(0x40)
_TEXT = const(0x60)
_ARRAY = const(0x80)
_MAP = const(0xA0)
_TAG = const(0xC0)

_MAX_U64 = 0xFFFFFFFFFFFFFFFF
_INF = float("inf")
_NAN = float("nan")
# cbor2 writes non-finite floats as float16; doing the same keeps our bytes equal to its.
_F16_NAN = b"\xf9\x7e\x00"
_F16_INF = b"\xf9\x7c\x00"
_F16_NINF = b"\xf9\xfc\x00"


class Tag:
    """A CBOR tag (major type 6): a tag number and the item it wraps (cbor2's ``CBORTag``)."""

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((self.tag, self.value))

    def __repr__(self):
        return "Tag(%r, %r)" % (self.tag, self.value)


# ---------------------------------------------------------------------------------------------
# Encoding: each encoder appends to one bytearray (no per-item bytes objects for small heads).


def _head(out, mt, n):
    if n < 24:
        out.append(mt | n)
    elif n < 0x100:
        out.append(mt | 24)
        out.append(n)
    elif n < 0x10000:
        out += _pack(">BH", mt | 25, n)
    elif n < 0x100000000:
        out += _pack(">BI", mt | 26, n)
    else:
        out += _pack(">BQ", mt | 27, n)


def _enc_int(obj, out, depth):
    if obj >= 0:
        if obj > _MAX_U64:
            raise EncodeError("int %d does not fit in 64 bits" % obj)
        _head(out, _UINT, obj)
    else:
        obj = -1 - obj
        if obj > _MAX_U64:
            raise EncodeError("int %d does not fit in 64 bits" % (-1 - obj))
        _head(out, _NINT, obj)


def _enc_bool(obj, out, depth):
    out.append(0xF5 if obj else 0xF4)


def _enc_none(obj, out, depth):
    out.append(0xF6)


def _enc_float(obj, out, depth):
    if obj != obj:
        out += _F16_NAN
    elif obj == _INF:
        out += _F16_INF
    elif obj == -_INF:
        out += _F16_NINF
    else:
        out += _pack(">Bd", 0xFB, obj)


def _enc_str(obj, out, depth):
    obj = obj.encode("utf-8")
    _head(out, _TEXT, len(obj))
    out += obj


def _enc_bytes(obj, out, depth):
    _head(out, _BYTES, len(obj))
    out += obj


def _enc_memoryview(obj, out, depth):
    obj = bytes(obj)  # len() of a multi-byte-format view counts items, not bytes
    _head(out, _BYTES, len(obj))
    out += obj


def _enc_list(obj, out, depth):
    depth += 1
    if depth > MAX_DEPTH:
        raise EncodeError("nesting deeper than %d" % MAX_DEPTH)
    _head(out, _ARRAY, len(obj))
    for item in obj:
        _encode(item, out, depth)


def _enc_dict(obj, out, depth):
    depth += 1
    if depth > MAX_DEPTH:
        raise EncodeError("nesting deeper than %d" % MAX_DEPTH)
    _head(out, _MAP, len(obj))
    for key, value in obj.items():
        _encode(key, out, depth)
        _encode(value, out, depth)


def _enc_tag(obj, out, depth):
    tag = obj.tag
    if type(tag) is not int or tag < 0 or tag > _MAX_U64:
        raise EncodeError("tag number must be an int in 0..2**64-1, not %r" % (tag,))
    depth += 1
    if depth > MAX_DEPTH:
        raise EncodeError("nesting deeper than %d" % MAX_DEPTH)
    _head(out, _TAG, tag)
    _encode(obj.value, out, depth)


_ENCODERS = {
    int: _enc_int,
    bool: _enc_bool,
    type(None): _enc_none,
    float: _enc_float,
    str: _enc_str,
    bytes: _enc_bytes,
    bytearray: _enc_bytes,
    memoryview: _enc_memoryview,
    list: _enc_list,
    tuple: _enc_list,
    dict: _enc_dict,
    Tag: _enc_tag,
}
# Subclasses (IntEnum, OrderedDict, ...) miss the exact-type lookup; bool must precede int.
_BASES = (bool, int, float, str, bytes, bytearray, memoryview, list, tuple, dict, Tag)


def _find_encoder(obj):
    for base in _BASES:
        if isinstance(obj, base):
            return _ENCODERS[base]
    raise EncodeError("cannot encode %s to CBOR" % type(obj).__name__)


def _encode(obj, out, depth):
    encoder = _ENCODERS.get(type(obj))
    if encoder is None:
        encoder = _find_encoder(obj)
    encoder(obj, out, depth)


def dumps(obj):
    """Encode ``obj`` as CBOR bytes; raises ``EncodeError`` for what CBOR here cannot hold."""
    out = bytearray()
    _encode(obj, out, 0)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Decoding: _decode(data, pos, depth) -> (value, next pos).  Out-of-range reads raise
# IndexError/ValueError/struct.error, which loads() turns into DecodeError.


def _half(h):
    exp = (h >> 10) & 0x1F
    mant = h & 0x3FF
    if exp == 0:
        v = mant * 5.960464477539063e-08  # 2**-24: subnormals and zero
    elif exp != 31:
        v = (mant + 1024) * 2.0 ** (exp - 25)
    elif mant == 0:
        v = _INF
    else:
        v = _NAN
    return -v if h & 0x8000 else v


def _decode_simple(data, pos, ai):
    if ai == 27:
        return _unpack_from(">d", data, pos)[0], pos + 8
    if ai == 20:
        return False, pos
    if ai == 21:
        return True, pos
    if ai == 22 or ai == 23:  # null, undefined
        return None, pos
    if ai == 26:
        return _unpack_from(">f", data, pos)[0], pos + 4
    if ai == 25:
        return _half((data[pos] << 8) | data[pos + 1]), pos + 2
    if ai == 31:
        raise DecodeError("unexpected break (0xff): indefinite-length items are not supported")
    if ai > 27:
        raise DecodeError("reserved additional information %d in major type 7" % ai)
    if ai == 24:
        ai = data[pos]
    raise DecodeError("unsupported simple value %d" % ai)


def _decode(data, pos, depth):
    ib = data[pos]
    pos += 1
    mt = ib & 0xE0
    ai = ib & 0x1F
    if mt == 0xE0:
        return _decode_simple(data, pos, ai)
    if ai < 24:
        arg = ai
    elif ai == 24:
        arg = data[pos]
        pos += 1
    elif ai == 25:
        arg = (data[pos] << 8) | data[pos + 1]
        pos += 2
    elif ai == 26:
        arg = _unpack_from(">I", data, pos)[0]
        pos += 4
    elif ai == 27:
        arg = _unpack_from(">Q", data, pos)[0]
        pos += 8
    elif ai == 31:
        raise DecodeError("indefinite-length items are not supported")
    else:
        raise DecodeError("reserved additional information %d" % ai)

    if mt == _UINT:
        return arg, pos
    if mt == _NINT:
        return -1 - arg, pos
    if mt == _BYTES or mt == _TEXT:
        end = pos + arg
        if end > len(data):
            raise DecodeError("string of %d bytes but only %d left" % (arg, len(data) - pos))
        value = data[pos:end]
        if mt == _TEXT:
            return str(value, "utf-8"), end
        if type(value) is not bytes:
            value = bytes(value)
        return value, end

    depth += 1
    if depth > MAX_DEPTH:
        raise DecodeError("nesting deeper than %d" % MAX_DEPTH)
    if mt == _ARRAY:
        # Each item takes at least one byte: a bigger claim is a lie, refuse it before allocating.
        if arg > len(data) - pos:
            raise DecodeError("array of %d items but only %d bytes left" % (arg, len(data) - pos))
        items = []
        append = items.append
        for _ in range(arg):
            value, pos = _decode(data, pos, depth)
            append(value)
        return items, pos
    if mt == _MAP:
        if 2 * arg > len(data) - pos:
            raise DecodeError("map of %d pairs but only %d bytes left" % (arg, len(data) - pos))
        items = {}
        for _ in range(arg):
            key, pos = _decode(data, pos, depth)
            value, pos = _decode(data, pos, depth)
            items[key] = value
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
    except Exception as e:
        raise DecodeError("malformed CBOR (%s %s)" % (type(e).__name__, e))
    if pos != len(data):
        raise DecodeError("%d trailing bytes after the CBOR item" % (len(data) - pos))
    return value
