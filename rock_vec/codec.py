"""Safe, fast binary codec for data that crosses from workers to the learner.

Workers may be untrusted, so the learner never unpickles what they send: infos,
call()/get_attr() results and error reports travel in this format instead.

Wire format: one tag byte per value, then its payload. Lengths and counts are
uint32 little-endian ("n"), numbers little-endian.

    0x00 None          0x01 False        0x02 True
    0x03 int <q        0x04 int: n + n bytes two's complement (outside int64)
    0x05 float <d      0x06 complex <dd
    0x07 str: n + utf-8 (surrogatepass)  0x08 bytes: n + raw  0x09 bytearray
    0x0A list: n + n values   0x0B tuple   0x0C set   0x0D frozenset
    0x0E dict: n + n (key, value) pairs, in insertion order
    0x10 ndarray: u8 k + dtype.str (k ascii bytes), u8 ndim, ndim x <Q dims,
         then size * itemsize raw bytes in C order
    0x11 numpy scalar: u8 k + dtype.str, then itemsize raw bytes
    0x12 np.float64 <d   0x13 np.float32 <f   0x14 np.int64 <q
    0x15 np.False_       0x16 np.True_        0x17 np.str_ / 0x18 np.bytes_ as str/bytes
A message is exactly one value; trailing bytes are an error.

Types come back exactly (``int`` as ``int``, ``np.float32`` as ``np.float32``).
Subclasses of dict/list/tuple/set/str/bytes/int/float/complex (OrderedDict,
namedtuple, IntEnum, ...) travel as their plain base type; ndarray subclasses
travel as plain arrays (a masked array loses its mask). np.longlong/np.ulonglong
come back as np.int64/np.uint64 (same dtype.str). Object, structured/void and
variable-width string dtypes are rejected.

Safety promise of ``decode``: it never executes code, imports or builds classes
other than those above; nesting is bounded (MAX_DEPTH); every length and count is
checked against the bytes that remain before anything is allocated; dtypes are
parsed from a whitelist; malformed input raises CodecError and nothing else. The
result never aliases the input buffer, and no view of the buffer outlives the call.
"""

import math
import re
import struct

import numpy as np

__all__ = ["CodecError", "MAX_DEPTH", "encode", "encode_into", "decode"]

MAX_DEPTH = 64  # container nesting bound on both ends (also stops cycles on encode)

(T_NONE, T_FALSE, T_TRUE, T_INT, T_BIGINT, T_FLOAT, T_COMPLEX, T_STR, T_BYTES,
 T_BYTEARRAY, T_LIST, T_TUPLE, T_SET, T_FROZENSET, T_DICT) = range(15)
(T_ARRAY, T_NPSCALAR, T_NPF64, T_NPF32, T_NPI64, T_NPFALSE, T_NPTRUE, T_NPSTR,
 T_NPBYTES) = range(0x10, 0x19)

# Precompiled: "_TAG_N" packs tag + uint32 length/count, "_TAG_K" tag + dtype.str length.
_TAG_N, _TAG_Q, _TAG_D, _TAG_F, _TAG_DD, _TAG_K = (
    struct.Struct(f) for f in ("<BI", "<Bq", "<Bd", "<Bf", "<Bdd", "<BB"))
_N, _Q, _D, _F, _DD = (struct.Struct(f) for f in ("<I", "<q", "<d", "<f", "<dd"))
_DIMS = [struct.Struct(f"<{i}Q") for i in range(MAX_DEPTH + 1)]  # numpy allows 64 dims
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_DTYPE_KINDS = frozenset("biufcSUmM")
_DTYPE_RE = re.compile(rb"[<>|](?:b1|[iu][1248]|f(?:2|4|8|12|16)|c(?:8|16|24|32)"
                       rb"|[SU][1-9][0-9]{0,8}|[mM]8(?:\[[0-9]{0,6}[a-zA-Z]{1,2}\])?)")
_ONLY = ("only None, bool, int, float, complex, str, bytes, list, tuple, dict, set, "
         "numpy arrays (non-object dtypes) and numpy scalars travel")


class CodecError(ValueError):
    """Raised when a value cannot be encoded or a buffer cannot be decoded."""


# ---------------------------------------------------------------- encoding

class _Fail(Exception):
    """Internal: unwinds the encoder, collecting the path (innermost first)."""

    def __init__(self, obj, reason=None):
        t = type(obj)
        name = t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
        self.detail = reason or f" of type {name}: {_ONLY}"
        self.path = []


def _e_none(o, out, d):
    out.append(b"\x00")


def _e_bool(o, out, d):
    out.append(b"\x02" if o else b"\x01")


def _e_int(o, out, d):
    if _INT64_MIN <= o <= _INT64_MAX:
        out.append(_TAG_Q.pack(T_INT, o))
    else:
        b = int(o).to_bytes((o.bit_length() + 8) // 8, "little", signed=True)
        out.append(_TAG_N.pack(T_BIGINT, len(b)))
        out.append(b)


def _e_float(o, out, d):
    out.append(_TAG_D.pack(T_FLOAT, o))


def _e_complex(o, out, d):
    out.append(_TAG_DD.pack(T_COMPLEX, o.real, o.imag))


def _e_str(o, out, d, tag=T_STR):
    b = o.encode("utf-8", "surrogatepass")
    out.append(_TAG_N.pack(tag, len(b)))
    out.append(b)


def _e_bytes(o, out, d, tag=T_BYTES):
    out.append(_TAG_N.pack(tag, len(o)))
    out.append(bytes(o))


def _seq_encoder(tag, ordered):
    def enc(o, out, d):
        if d >= MAX_DEPTH:
            raise _Fail(o, f": nested deeper than {MAX_DEPTH} containers (a cycle?)")
        out.append(_TAG_N.pack(tag, len(o)))
        d += 1
        for i, v in enumerate(o):
            try:
                _get(type(v), _e_other)(v, out, d)
            except _Fail as f:
                f.path.append(f"[{i}]" if ordered else "{*}")
                raise
    return enc


def _e_dict(o, out, d):
    if d >= MAX_DEPTH:
        raise _Fail(o, f": nested deeper than {MAX_DEPTH} containers (a cycle?)")
    out.append(_TAG_N.pack(T_DICT, len(o)))
    d += 1
    for k, v in o.items():
        try:
            _get(type(k), _e_other)(k, out, d)
        except _Fail as f:  # index found only on failure, so the fast path stays cheap
            f.path.append(f".keys()[{next(i for i, x in enumerate(o) if x is k)}]")
            raise
        try:
            _get(type(v), _e_other)(v, out, d)
        except _Fail as f:
            f.path.append(f"[{k!r}]")
            raise


def _check_dtype(o, dt):
    if dt.kind not in _DTYPE_KINDS or dt.fields is not None or dt.subdtype is not None:
        what = "numpy array" if isinstance(o, np.ndarray) else "numpy scalar"
        raise _Fail(o, f" ({what} of dtype {dt}): only bool, int, uint, float, complex, "
                       "datetime/timedelta and fixed-width 'U'/'S' dtypes travel")
    return dt.str.encode("ascii")


def _e_array(o, out, d):
    s = _check_dtype(o, o.dtype)
    shape = o.shape
    out.append(_TAG_K.pack(T_ARRAY, len(s)) + s + bytes((len(shape),)) + _DIMS[len(shape)].pack(*shape))
    if o.nbytes > 65536 and o.flags.c_contiguous:
        out.append(o.reshape(-1).view(np.uint8))  # join() copies it once, skip tobytes()
    else:
        out.append(o.tobytes())  # C order whatever the layout


def _e_npscalar(o, out, d):
    s = _check_dtype(o, o.dtype)
    out.append(_TAG_K.pack(T_NPSCALAR, len(s)) + s + o.tobytes())


def _e_other(o, out, d):
    """Subclasses and numpy scalar types not in the table; caches what it finds."""
    t = type(o)
    if isinstance(o, np.ndarray):
        enc = _e_array
    elif isinstance(o, np.generic):
        enc = _e_npscalar
    else:
        for base in (dict, list, tuple, str, bytes, bytearray, int, float, complex, set, frozenset):
            if isinstance(o, base):
                enc = _ENC[base]
                break
        else:
            raise _Fail(o)
    if len(_ENC) < 1024:
        _ENC[t] = enc
    enc(o, out, d)


_ENC = {
    type(None): _e_none, bool: _e_bool, int: _e_int, float: _e_float, complex: _e_complex,
    str: _e_str, bytes: _e_bytes,
    bytearray: lambda o, out, d: _e_bytes(o, out, d, T_BYTEARRAY),
    list: _seq_encoder(T_LIST, True), tuple: _seq_encoder(T_TUPLE, True),
    set: _seq_encoder(T_SET, False), frozenset: _seq_encoder(T_FROZENSET, False),
    dict: _e_dict, np.ndarray: _e_array,
    np.float64: lambda o, out, d: out.append(_TAG_D.pack(T_NPF64, o)),
    np.float32: lambda o, out, d: out.append(_TAG_F.pack(T_NPF32, o)),
    np.int64: lambda o, out, d: out.append(_TAG_Q.pack(T_NPI64, o)),
    np.bool_: lambda o, out, d: out.append(b"\x16" if o else b"\x15"),
    np.str_: lambda o, out, d: _e_str(o, out, d, T_NPSTR),
    np.bytes_: lambda o, out, d: _e_bytes(o, out, d, T_NPBYTES),
}
_get = _ENC.get
_EMPTY_DICT = _TAG_N.pack(T_DICT, 0)


def encode(obj, what="value"):
    """Encode ``obj`` to bytes.

    Args:
        obj: A value made of the supported types (see the module docstring);
            subclasses of the builtin types are encoded as their plain base type.
        what: Name of the value, used as the root of the path in error messages.

    Returns:
        The encoded bytes.

    Raises:
        CodecError: If some part of ``obj`` cannot travel; the message names its
            path (e.g. ``info['stats'][2]``) and type.
    """
    if type(obj) is dict and not obj:
        return _EMPTY_DICT
    out = []
    try:
        _get(type(obj), _e_other)(obj, out, 0)
    except _Fail as f:
        raise CodecError(f"cannot encode {what}{''.join(reversed(f.path))}{f.detail}") from None
    except (struct.error, OverflowError) as e:
        raise CodecError(f"cannot encode {what}: a length or value is out of range ({e})") from None
    return b"".join(out)


def encode_into(obj, buffer, offset=0, what="value"):
    """Encode ``obj`` into a writable buffer at ``offset``.

    Args:
        obj: The value to encode.
        buffer: A writable buffer, e.g. a uint8 numpy array or a memoryview of
            shared memory.
        offset: Byte offset in ``buffer`` where writing starts.
        what: Root of the path in error messages.

    Returns:
        The number of bytes written.

    Raises:
        CodecError: If ``obj`` cannot be encoded or does not fit; nothing is
            written in that case.
    """
    data = encode(obj, what)
    n = len(data)
    with memoryview(buffer) as mv, mv.cast("B") as flat:
        available = len(flat) - offset
        if offset < 0 or available < 0:
            raise CodecError(f"offset {offset} is outside the buffer of {len(flat)} bytes")
        if n > available:
            raise CodecError(f"encoded {what} needs {n} bytes but only {available} are "
                             f"available (buffer of {len(flat)} bytes, offset {offset})")
        flat[offset:offset + n] = data
    return n


# ---------------------------------------------------------------- decoding
# Each decoder takes (view, position after the tag, depth) and returns
# (value, next position). ``mv`` is bytes, or a 1-D byte memoryview for large input.

def _d_bad(mv, pos, depth):
    raise CodecError(f"unknown tag 0x{mv[pos - 1]:02x} at offset {pos - 1}")


def _length(mv, pos, per_item=1):
    """Read a uint32 length and check that the bytes it needs are there."""
    (n,) = _N.unpack_from(mv, pos)
    pos += 4
    if n * per_item > len(mv) - pos:
        raise CodecError(f"length {n} at offset {pos - 4} exceeds the {len(mv) - pos} bytes left")
    return n, pos


def _d_str(mv, pos, depth):
    n, pos = _length(mv, pos)
    return str(mv[pos:pos + n], "utf-8", "surrogatepass"), pos + n


def _d_bytes(mv, pos, depth):
    n, pos = _length(mv, pos)
    return bytes(mv[pos:pos + n]), pos + n


def _d_bigint(mv, pos, depth):
    n, pos = _length(mv, pos)
    return int.from_bytes(mv[pos:pos + n], "little", signed=True), pos + n


def _seq_decoder(make):
    def dec(mv, pos, depth):
        if depth >= MAX_DEPTH:
            raise CodecError(f"nesting deeper than {MAX_DEPTH} at offset {pos - 1}")
        n, pos = _length(mv, pos)  # every item takes at least its tag byte
        items = []
        for _ in range(n):
            v, pos = _DEC[mv[pos]](mv, pos + 1, depth + 1)
            items.append(v)
        return (make(items) if make else items), pos
    return dec


def _d_dict(mv, pos, depth):
    if depth >= MAX_DEPTH:
        raise CodecError(f"nesting deeper than {MAX_DEPTH} at offset {pos - 1}")
    n, pos = _length(mv, pos, 2)
    out = {}
    depth += 1
    size = len(mv)
    for _ in range(n):
        if mv[pos] == T_STR:  # str keys and float values inlined: the per-step info case
            (k,) = _N.unpack_from(mv, pos + 1)
            pos += 5
            end = pos + k
            if end > size:
                raise CodecError(f"length {k} at offset {pos - 4} exceeds the {size - pos} bytes left")
            k = str(mv[pos:end], "utf-8", "surrogatepass")
            pos = end
        else:
            k, pos = _DEC[mv[pos]](mv, pos + 1, depth)
        tag = mv[pos]
        if tag == T_NPF64:
            out[k] = _f64(_D.unpack_from(mv, pos + 1)[0])
            pos += 9
        elif tag == T_FLOAT:
            out[k] = _D.unpack_from(mv, pos + 1)[0]
            pos += 9
        else:
            out[k], pos = _DEC[tag](mv, pos + 1, depth)
    return out, pos


_DTYPES = {}  # validated dtype.str bytes -> np.dtype


def _read_dtype(mv, pos):
    end = pos + 1 + mv[pos]
    if end > len(mv):
        raise CodecError(f"dtype at offset {pos} is truncated")
    key = bytes(mv[pos + 1:end])
    dt = _DTYPES.get(key)
    if dt is None:
        # The whitelist regex keeps np.dtype() away from anything but plain
        # numeric/string/datetime codes ('O', 'V', structured, ... never reach it).
        if not _DTYPE_RE.fullmatch(key):
            raise CodecError(f"invalid or unsupported dtype {key!r} at offset {pos}")
        dt = np.dtype(key.decode("ascii"))
        if dt.kind not in _DTYPE_KINDS or dt.hasobject or dt.itemsize == 0 or dt.str != key.decode():
            raise CodecError(f"unsupported dtype {key!r} at offset {pos}")
        if len(_DTYPES) < 256:
            _DTYPES[key] = dt
    return dt, end


def _checked(flat, dt):
    """Reject byte patterns numpy cannot hold safely (bool other than 0/1, bad code points)."""
    if flat.size:
        if dt.kind == "b" and flat.view(np.uint8).max() > 1:
            raise CodecError("bool data other than 0 or 1")
        if dt.kind == "U" and flat.view(dt.byteorder + "u4").max() > 0x10FFFF:
            raise CodecError("unicode data with a code point above U+10FFFF")
    return flat


def _d_array(mv, pos, depth):
    dt, pos = _read_dtype(mv, pos)
    ndim = mv[pos]
    if ndim > MAX_DEPTH:
        raise CodecError(f"array with {ndim} dimensions at offset {pos}")
    shape = _DIMS[ndim].unpack_from(mv, pos + 1)
    pos += 1 + 8 * ndim
    count = math.prod(shape)
    if count * dt.itemsize > len(mv) - pos:
        raise CodecError(f"array of shape {shape} and dtype {dt.str} needs "
                         f"{count * dt.itemsize} bytes but only {len(mv) - pos} are left")
    if count == 0:
        return np.empty(shape, dt), pos  # ValueError for absurd dims is caught by decode
    flat = _checked(np.frombuffer(mv, dt, count, pos), dt)
    return flat.reshape(shape).copy(), pos + count * dt.itemsize  # copy: never alias the buffer


def _d_npscalar(mv, pos, depth):
    dt, pos = _read_dtype(mv, pos)
    if dt.itemsize > len(mv) - pos:
        raise CodecError(f"numpy scalar of dtype {dt.str} is truncated")
    return _checked(np.frombuffer(mv, dt, 1, pos), dt)[0], pos + dt.itemsize


def _np_text(decoder, make):
    def dec(mv, pos, depth):
        v, pos = decoder(mv, pos, depth)
        return make(v), pos
    return dec


_f64, _f32, _i64 = np.float64, np.float32, np.int64
_SMALL = 1 << 16  # inputs up to this size are copied to bytes once, larger ones walked in place
_DEC = [_d_bad] * 256
_DEC[T_NONE] = lambda mv, pos, depth: (None, pos)
_DEC[T_FALSE] = lambda mv, pos, depth: (False, pos)
_DEC[T_TRUE] = lambda mv, pos, depth: (True, pos)
_DEC[T_INT] = lambda mv, pos, depth: (_Q.unpack_from(mv, pos)[0], pos + 8)
_DEC[T_BIGINT] = _d_bigint
_DEC[T_FLOAT] = lambda mv, pos, depth: (_D.unpack_from(mv, pos)[0], pos + 8)
_DEC[T_COMPLEX] = lambda mv, pos, depth: (complex(*_DD.unpack_from(mv, pos)), pos + 16)
_DEC[T_STR] = _d_str
_DEC[T_BYTES] = _d_bytes
_DEC[T_BYTEARRAY] = _np_text(_d_bytes, bytearray)
_DEC[T_LIST] = _seq_decoder(None)
_DEC[T_TUPLE] = _seq_decoder(tuple)
_DEC[T_SET] = _seq_decoder(set)
_DEC[T_FROZENSET] = _seq_decoder(frozenset)
_DEC[T_DICT] = _d_dict
_DEC[T_ARRAY] = _d_array
_DEC[T_NPSCALAR] = _d_npscalar
_DEC[T_NPF64] = lambda mv, pos, depth: (_f64(_D.unpack_from(mv, pos)[0]), pos + 8)
_DEC[T_NPF32] = lambda mv, pos, depth: (_f32(_F.unpack_from(mv, pos)[0]), pos + 4)
_DEC[T_NPI64] = lambda mv, pos, depth: (_i64(_Q.unpack_from(mv, pos)[0]), pos + 8)
_DEC[T_NPFALSE] = lambda mv, pos, depth: (np.False_, pos)
_DEC[T_NPTRUE] = lambda mv, pos, depth: (np.True_, pos)
_DEC[T_NPSTR] = _np_text(_d_str, np.str_)
_DEC[T_NPBYTES] = _np_text(_d_bytes, np.bytes_)
_DEC = tuple(_DEC)


def decode(buffer):
    """Decode one value that fills ``buffer`` exactly.

    Args:
        buffer: bytes, bytearray, memoryview or uint8 numpy array (e.g. a slice of
            shared memory) holding exactly one encoded value.

    Returns:
        The decoded value. It shares no memory with ``buffer`` (arrays are
        C-contiguous copies), so the buffer may be reused at once.

    Raises:
        CodecError: If the input is truncated, has trailing bytes, or is malformed
            in any way.
        TypeError: If ``buffer`` does not support the buffer protocol.
    """
    if type(buffer) is not bytes:
        if type(buffer) is np.ndarray and buffer.nbytes <= _SMALL:
            buffer = buffer.tobytes()  # 50 ns; bytes are faster to walk than a memoryview
        else:
            with memoryview(buffer) as mv:
                if mv.nbytes <= _SMALL or not mv.c_contiguous:
                    buffer = mv.tobytes()
                else:  # large: walk a byte view of the buffer instead of copying it first
                    with mv.cast("B") as flat:
                        return _decode(flat)
    if buffer == _EMPTY_DICT:
        return {}
    return _decode(buffer)


def _decode(data):
    msg = None
    try:
        if not data:
            raise CodecError("empty input")
        obj, pos = _DEC[data[0]](data, 1, 0)
        if pos != len(data):
            raise CodecError(f"{len(data) - pos} trailing bytes after the value")
    # Keep only the message, so no traceback (and no frame holding a view) survives.
    except CodecError as e:
        msg = str(e)
    except (IndexError, struct.error) as e:
        msg = f"truncated input ({e})"
    except (ValueError, TypeError, OverflowError, SystemError) as e:
        msg = f"malformed input ({type(e).__name__}: {e})"
    if msg is not None:
        raise CodecError(msg)
    return obj
