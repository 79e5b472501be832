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
    0x0E dict: n + n (key, value) pairs, in insertion order   0x0F OrderedDict: as dict
    0x10 ndarray: u8 k + dtype.str (k ascii bytes), u8 ndim, ndim x <Q dims,
         then size * itemsize raw bytes in C order
    0x11 numpy scalar: u8 k + dtype.str, then itemsize raw bytes
    0x12 np.float64 <d   0x13 np.float32 <f   0x14 np.int64 <q
    0x15 np.False_       0x16 np.True_        0x17 np.str_ / 0x18 np.bytes_ as str/bytes
    0x19 numpy scalar of a type that dtype.str does not name (np.longlong,
         np.ulonglong): u8 dtype.char, then as 0x11
    0x1A named tuple: n + module, n + qualname (utf-8), then n + n items
    0x1B enum member: n + module, n + qualname (utf-8), then its .value
    0x1C ndarray whose dtype.str does not name its scalar type (dtype np.longlong):
         u8 dtype.char, then as 0x10
A message is exactly one value; trailing bytes are an error.

Types come back exactly (``int`` as ``int``, ``np.float32`` as ``np.float32``,
``np.longlong`` as ``np.longlong``), or the value is refused on encode with a
CodecError naming its path and type; nothing is silently turned into another
type. Of the subclasses of builtin types, three kinds travel as themselves:
``collections.OrderedDict`` (exactly), named tuples (tuple subclasses with a
``_fields`` tuple of str: ``collections.namedtuple``, ``typing.NamedTuple``,
gymnasium's ``GraphInstance``) and enum members (any ``enum.Enum``, IntEnum and
StrEnum included). Named tuples and enums travel by class name (module and
qualname); decode finds the class only among the modules already loaded in the
decoding process (``loaded_class``: module and class namespaces are read
directly, so no module ``__getattr__`` or metaclass hook runs), builds a named
tuple with ``tuple.__new__`` (no ``__new__``/``__init__`` of the class runs) and
returns an enum member from the class's value map (the class is never called).
A class that is not loaded there, or does not qualify, is a CodecError, never a
plain tuple or value. Every other subclass of dict/list/tuple/set/frozenset/str/
bytes/bytearray/int/float/complex (defaultdict, a user's ``class Name(str)``),
ndarray subclasses (masked arrays, np.matrix, np.memmap, np.recarray) and numpy
scalar subclasses are refused on encode, saying how to convert them. Object,
structured/void and variable-width string dtypes are rejected.

Safety promise of ``decode``: it never imports, unpickles or executes code a
worker chooses; it builds only the types above, and of the classes a message
names (named tuples, enums) it only looks up ones already loaded, calling no
constructor, ``__new__``, ``__init__``, module ``__getattr__`` or metaclass hook
(a decoded named tuple or enum member used as a dict key or set item is hashed by
its own class, as the learner's code would hash it anyway); nesting is bounded
(MAX_DEPTH); every length and count is checked against the bytes that remain
before anything is allocated; dtypes and scalar type codes are parsed from a
whitelist; malformed input raises CodecError and nothing else. The
result never aliases the input buffer, and no view of the buffer outlives the call.
"""

import collections
import enum
import math
import re
import struct
import sys
import types

import numpy as np

__all__ = ["CodecError", "MAX_DEPTH", "encode", "encode_into", "decode", "loaded_class"]

MAX_DEPTH = 64  # container nesting bound on both ends (also stops cycles on encode)

(T_NONE, T_FALSE, T_TRUE, T_INT, T_BIGINT, T_FLOAT, T_COMPLEX, T_STR, T_BYTES,
 T_BYTEARRAY, T_LIST, T_TUPLE, T_SET, T_FROZENSET, T_DICT) = range(15)
T_ODICT = 0x0F
(T_ARRAY, T_NPSCALAR, T_NPF64, T_NPF32, T_NPI64, T_NPFALSE, T_NPTRUE, T_NPSTR,
 T_NPBYTES, T_NPTYPED, T_NAMEDTUPLE, T_ENUM, T_ARRAYTYPED) = range(0x10, 0x1D)

# Precompiled: "_TAG_N" packs tag + uint32 length/count, "_TAG_K" tag + dtype.str length.
_TAG_N, _TAG_Q, _TAG_D, _TAG_F, _TAG_DD, _TAG_K, _TAG_CK = (
    struct.Struct(f) for f in ("<BI", "<Bq", "<Bd", "<Bf", "<Bdd", "<BB", "<BBB"))
_N, _Q, _D, _F, _DD = (struct.Struct(f) for f in ("<I", "<q", "<d", "<f", "<dd"))
_DIMS = [struct.Struct(f"<{i}Q") for i in range(MAX_DEPTH + 1)]  # numpy allows 64 dims
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_DTYPE_KINDS = frozenset("biufcSUmM")
_DTYPE_RE = re.compile(rb"[<>|](?:b1|[iu][1248]|f(?:2|4|8|12|16)|c(?:8|16|24|32)"
                       rb"|[SU][1-9][0-9]{0,8}|[mM]8(?:\[[0-9]{0,6}[a-zA-Z]{1,2}\])?)")
# Scalar type codes a message may name (0x19/0x1C), and those whose type dtype.str
# alone does not give back (np.longlong/np.ulonglong where int64 is a C long).
_TYPE_CHARS = {ord(c): np.dtype(c) for c in "bBhHiIlLqQefdgFDG"}
_ODD_CHARS = "".join(chr(c) for c, dt in _TYPE_CHARS.items() if np.dtype(dt.str).type is not dt.type)
_ONLY = ("only None, bool, int, float, complex, str, bytes, list, tuple, dict, set, "
         "numpy arrays (non-object dtypes), numpy scalars, OrderedDict, named tuples "
         "and enum members travel")


class CodecError(ValueError):
    """Raised when a value cannot be encoded or a buffer cannot be decoded."""


# ---------------------------------------------------------------- classes by name
# Read namespaces through the descriptors of ``type`` and ``ModuleType`` themselves,
# so that neither a metaclass nor a module subclass can put code in the way.
_class_dict = type.__dict__["__dict__"].__get__
_class_mro = type.__dict__["__mro__"].__get__
_module_dict = types.ModuleType.__dict__["__dict__"].__get__


def loaded_class(module, qualname):
    """The class ``module.qualname`` if it is already loaded in this process, else None.

    Imports nothing and calls no code: the module is taken from ``sys.modules``
    (it must be a module object), then each part of ``qualname`` is read from the
    module's or class's own namespace (never ``getattr``, which could run a module
    ``__getattr__``, a metaclass hook or a descriptor). Every step must be a class,
    so ``<locals>`` and attributes that are not classes are never found.
    """
    if type(module) is not str or type(qualname) is not str:
        return None
    obj = sys.modules.get(module)
    if obj is None or not issubclass(type(obj), types.ModuleType):
        return None
    names = _module_dict(obj)
    for part in qualname.split("."):
        obj = names.get(part)
        if obj is None or not issubclass(type(obj), type):
            return None
        names = _class_dict(obj)
    return obj


def _class_attr(cls, name):
    """``name`` from the namespaces along ``cls``'s MRO (no descriptors, no hooks), or None."""
    for base in _class_mro(cls):
        names = _class_dict(base)
        if name in names:
            return names[name]
    return None


def _inherits(cls, base):
    return any(b is base for b in _class_mro(cls))  # identity only: no metaclass __eq__


def _type_name(t):
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


# ---------------------------------------------------------------- encoding

class _Fail(Exception):
    """Internal: unwinds the encoder, collecting the path (innermost first)."""

    def __init__(self, obj, reason=None):
        self.detail = reason or f" of type {_type_name(type(obj))}: {_ONLY}"
        self.path = []


def _refuse(o, why):
    return _Fail(o, f" of type {_type_name(type(o))}: {why}")


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


def _too_deep(o):
    return _Fail(o, f": nested deeper than {MAX_DEPTH} containers (a cycle?)")


def _e_items(o, out, d, ordered=True):
    for i, v in enumerate(o):
        try:
            _get(type(v), _e_other)(v, out, d)
        except _Fail as f:
            f.path.append(f"[{i}]" if ordered else "{*}")
            raise


def _seq_encoder(tag, ordered):
    def enc(o, out, d):
        if d >= MAX_DEPTH:
            raise _too_deep(o)
        out.append(_TAG_N.pack(tag, len(o)))
        _e_items(o, out, d + 1, ordered)
    return enc


def _e_dict(o, out, d, tag=T_DICT):
    if d >= MAX_DEPTH:
        raise _too_deep(o)
    out.append(_TAG_N.pack(tag, len(o)))
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
    tail = s + bytes((len(shape),)) + _DIMS[len(shape)].pack(*shape)
    char = o.dtype.char
    if char in _ODD_CHARS:  # dtype('q'): dtype.str '<i8' alone would come back as int64
        out.append(_TAG_CK.pack(T_ARRAYTYPED, ord(char), len(s)) + tail)
    else:
        out.append(_TAG_K.pack(T_ARRAY, len(s)) + tail)
    if o.nbytes > 65536 and o.flags.c_contiguous:
        out.append(o.reshape(-1).view(np.uint8))  # join() copies it once, skip tobytes()
    else:
        out.append(o.tobytes())  # C order whatever the layout


def _e_npscalar(o, out, d):
    s = _check_dtype(o, o.dtype)
    out.append(_TAG_K.pack(T_NPSCALAR, len(s)) + s + o.tobytes())


def _e_npscalar_typed(o, out, d):
    s = _check_dtype(o, o.dtype)
    out.append(_TAG_CK.pack(T_NPTYPED, ord(o.dtype.char), len(s)) + s + o.tobytes())


def _class_header(tag, t, o, convert):
    """Tag and class name of a named tuple or enum class that decode can look up."""
    module, qualname = t.__module__, t.__qualname__
    if type(module) is not str or type(qualname) is not str or "<locals>" in qualname:
        where = ("is defined inside a function" if type(qualname) is str
                 else "has no str __module__ and __qualname__")
        raise _refuse(o, f"its class {where}, where decode (which looks classes up by name) can "
                         f"never find it; define it at module level, or convert it with {convert}")
    m, q = module.encode("utf-8", "surrogatepass"), qualname.encode("utf-8", "surrogatepass")
    return _TAG_N.pack(tag, len(m)) + m + _N.pack(len(q)) + q


def _named_tuple_encoder(t, o, fields):
    head = _class_header(T_NAMEDTUPLE, t, o, "tuple(x)")
    n_fields = len(fields)

    def enc(o, out, d):
        if d >= MAX_DEPTH:
            raise _too_deep(o)
        if len(o) != n_fields:
            raise _refuse(o, f"this named tuple has {len(o)} items but its class has "
                             f"{n_fields} _fields; convert it with tuple(x)")
        out.append(head)
        out.append(_N.pack(n_fields))
        _e_items(o, out, d + 1)
    return enc


def _enum_encoder(t, o):
    head = _class_header(T_ENUM, t, o, "x.value")

    def enc(o, out, d):
        if d >= MAX_DEPTH:
            raise _too_deep(o)
        out.append(head)
        v = o._value_
        try:
            _get(type(v), _e_other)(v, out, d + 1)
        except _Fail as f:
            f.path.append(".value")
            raise
    return enc


_CONVERT = {dict: "dict(x)", list: "list(x)", tuple: "tuple(x)", set: "set(x)", frozenset: "frozenset(x)",
            str: "str(x)", bytes: "bytes(x)", bytearray: "bytearray(x)", int: "int(x)", float: "float(x)",
            complex: "complex(x)"}


def _encoder_for(o, t):
    """The encoder for a type not in the table, or _Fail when it must not travel."""
    if isinstance(o, enum.Enum):
        return _enum_encoder(t, o)
    if isinstance(o, np.ndarray):
        raise _refuse(o, "numpy array subclasses do not travel (the learner would get another "
                         "type); convert it with np.asarray(x)")
    if isinstance(o, np.generic):
        _check_dtype(o, o.dtype)
        plain = np.dtype(o.dtype.str).type
        if plain is t:
            return _e_npscalar
        if o.dtype.char in _ODD_CHARS and np.dtype(o.dtype.char).type is t:
            return _e_npscalar_typed
        raise _refuse(o, f"subclasses of numpy.{plain.__name__} do not travel (the learner would get "
                         f"another type); convert it with numpy.{plain.__name__}(x)")
    if isinstance(o, tuple):
        fields = _class_attr(t, "_fields")
        if type(fields) is tuple and all(type(f) is str for f in fields):
            return _named_tuple_encoder(t, o, fields)
    for base, convert in _CONVERT.items():
        if isinstance(o, base):
            also = {dict: " (collections.OrderedDict does)", tuple: " (named tuples with _fields do)"}
            raise _refuse(o, f"subclasses of {base.__name__} do not travel{also.get(base, '')}, since "
                             f"the learner would get another type; convert it with {convert}")
    raise _Fail(o)


def _e_other(o, out, d):
    """Types not in the table: finds their encoder (or refuses them) and caches it."""
    t = type(o)
    enc = _encoder_for(o, t)
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
    collections.OrderedDict: lambda o, out, d: _e_dict(o, out, d, T_ODICT),
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
        obj: A value made of the supported types (see the module docstring).
            OrderedDict, named tuples and enum members keep their type; other
            subclasses of builtin types and of ndarray are refused.
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


def _read_typed_dtype(mv, pos):
    """Scalar type code + dtype.str (0x19, 0x1C): the dtype of that exact scalar type."""
    code = _TYPE_CHARS.get(mv[pos])
    if code is None:
        raise CodecError(f"invalid or unsupported numpy scalar type code {mv[pos]} at offset {pos}")
    dt, end = _read_dtype(mv, pos + 1)
    if dt.kind != code.kind or dt.itemsize != code.itemsize:
        raise CodecError(f"numpy scalar type code {code.char!r} does not match dtype {dt.str} at offset {pos}")
    return code.newbyteorder(dt.byteorder), end


def _d_array(mv, pos, depth):
    dt, pos = _read_dtype(mv, pos)
    return _array_data(mv, pos, dt)


def _d_array_typed(mv, pos, depth):
    dt, pos = _read_typed_dtype(mv, pos)
    return _array_data(mv, pos, dt)


def _array_data(mv, pos, dt):
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


def _d_npscalar(mv, pos, depth, read=_read_dtype):
    dt, pos = read(mv, pos)
    if dt.itemsize > len(mv) - pos:
        raise CodecError(f"numpy scalar of dtype {dt.str} is truncated")
    return _checked(np.frombuffer(mv, dt, 1, pos), dt)[0], pos + dt.itemsize


def _d_npscalar_typed(mv, pos, depth):
    return _d_npscalar(mv, pos, depth, _read_typed_dtype)


def _d_odict(mv, pos, depth):
    d, pos = _d_dict(mv, pos, depth)
    return collections.OrderedDict(d), pos


def _d_name(mv, pos):
    n, pos = _length(mv, pos)
    return str(mv[pos:pos + n], "utf-8", "surrogatepass"), pos + n


def _show_name(module, qualname):
    name = f"{module}.{qualname}"
    return name if len(name) <= 200 and name.isprintable() else ascii(name)[:200]


def _d_class(mv, pos, depth, what, qualifies, needs):
    """Reads a class name and looks the class up among those already loaded.
    Returns (class, printable name, position); the name comes from the message, so
    no attribute of the class is read through its metaclass."""
    if depth >= MAX_DEPTH:
        raise CodecError(f"nesting deeper than {MAX_DEPTH} at offset {pos - 1}")
    module, pos = _d_name(mv, pos)
    qualname, pos = _d_name(mv, pos)
    cls = loaded_class(module, qualname)
    name = _show_name(module, qualname)
    if cls is None or not qualifies(cls):
        why = "" if cls is None else f" (what is loaded under that name is not {needs})"
        raise CodecError(f"{what} {name} is not loaded in this process{why}; decode imports nothing, "
                         "so the class must already be imported where the value is decoded")
    return cls, name, pos


def _is_named_tuple(cls):
    return _inherits(cls, tuple) and type(_class_attr(cls, "_fields")) is tuple


def _d_named_tuple(mv, pos, depth):
    cls, name, pos = _d_class(mv, pos, depth, "named tuple class", _is_named_tuple,
                              "a tuple subclass with _fields")
    n, pos = _length(mv, pos)  # every item takes at least its tag byte
    fields = _class_attr(cls, "_fields")
    if len(fields) != n:
        raise CodecError(f"named tuple class {name} has {len(fields)} fields but the message "
                         f"carries {n} items")
    items = []
    depth += 1
    for _ in range(n):
        v, pos = _DEC[mv[pos]](mv, pos + 1, depth)
        items.append(v)
    return tuple.__new__(cls, items), pos  # no __new__/__init__ of the class runs


def _is_enum(cls):
    return _inherits(cls, enum.Enum)


def _d_enum(mv, pos, depth):
    cls, name, pos = _d_class(mv, pos, depth, "enum class", _is_enum, "an enum.Enum subclass")
    value, pos = _DEC[mv[pos]](mv, pos + 1, depth + 1)
    member = None
    by_value = _class_attr(cls, "_value2member_map_")
    try:
        member = by_value.get(value) if type(by_value) is dict else None
    except TypeError:  # unhashable value: compare with each member's, as Enum itself does
        members = _class_attr(cls, "_member_map_")
        for m in members.values() if type(members) is dict else ():
            if type(m._value_) is type(value) and m._value_ == value:
                member = m
                break
    if type(member) is not cls:
        shown = repr(value)[:100] if type(value) in (int, float, str, bytes, bool) else \
            f"of type {type(value).__name__}"
        raise CodecError(f"enum class {name} has no member with value {shown}")
    return member, pos


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
_DEC[T_ODICT] = _d_odict
_DEC[T_ARRAY] = _d_array
_DEC[T_NPSCALAR] = _d_npscalar
_DEC[T_NPF64] = lambda mv, pos, depth: (_f64(_D.unpack_from(mv, pos)[0]), pos + 8)
_DEC[T_NPF32] = lambda mv, pos, depth: (_f32(_F.unpack_from(mv, pos)[0]), pos + 4)
_DEC[T_NPI64] = lambda mv, pos, depth: (_i64(_Q.unpack_from(mv, pos)[0]), pos + 8)
_DEC[T_NPFALSE] = lambda mv, pos, depth: (np.False_, pos)
_DEC[T_NPTRUE] = lambda mv, pos, depth: (np.True_, pos)
_DEC[T_NPSTR] = _np_text(_d_str, np.str_)
_DEC[T_NPBYTES] = _np_text(_d_bytes, np.bytes_)
_DEC[T_NPTYPED] = _d_npscalar_typed
_DEC[T_NAMEDTUPLE] = _d_named_tuple
_DEC[T_ENUM] = _d_enum
_DEC[T_ARRAYTYPED] = _d_array_typed
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
