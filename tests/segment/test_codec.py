"""Tests for rock_vec.segment.codec: exact round trips, encode errors, hostile input."""

import collections
import enum
import math
import re
import struct
import sys
import time
import tracemalloc
import types
import typing

import numpy as np
import pytest
from gymnasium.spaces import GraphInstance

from rock_vec.segment import codec

CodecError, encode, encode_into, decode = codec.CodecError, codec.encode, codec.encode_into, codec.decode


def roundtrip(obj):
    return decode(encode(obj))


# Classes that travel by name must be found at module level where they are decoded.
Point = collections.namedtuple("Point", "x y")


class Pair(typing.NamedTuple):
    left: int
    right: object = None


class Color(enum.IntEnum):
    RED = 3
    BLUE = 4


class Shape(enum.Enum):
    SQUARE = [4, 4]  # unhashable values: found by comparing with each member's
    CORNER = (0, 0)
    NAME = "shape"


class Mode(enum.StrEnum):
    FAST = "fast"
    SLOW = "slow"


class Perm(enum.IntFlag):
    R = 4
    W = 2


READ_WRITE = Perm.R | Perm.W  # a composite member, created here so that it exists


class Opaque(enum.Enum):
    THING = object()  # a value that cannot travel


def class_message(tag, module, qualname, payload):
    """A hand-made named tuple (0x1A) or enum (0x1B) message naming any class."""
    m, q = module.encode(), qualname.encode()
    return bytes([tag]) + struct.pack("<I", len(m)) + m + struct.pack("<I", len(q)) + q + payload


def named_tuple_message(module, qualname, items=(1, 2)):
    return class_message(0x1A, module, qualname,
                         struct.pack("<I", len(items)) + b"".join(encode(v) for v in items))


def enum_message(module, qualname, value):
    return class_message(0x1B, module, qualname, encode(value))


def assert_same(a, b):
    """Deep equality that also demands identical types (and dtypes/shapes for arrays)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.dtype.str == b.dtype.str and a.dtype.char == b.dtype.char
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, (float, complex, np.floating, np.complexfloating)) and a != a:
        assert b != b  # NaN
    else:
        assert a == b


PLAIN = [None, True, False, 0, 1, -1, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**200, -(3**150),
         0.0, -0.0, 1.5, float("inf"), float("nan"), 1e-310, 1 + 2j, complex(0, -0.0),
         "", "héllo wörld ✓", "lone \udcff surrogate", b"", b"\x00\xff raw", bytearray(b"abc")]

NP_SCALARS = [np.int8(-8), np.int16(-16), np.int32(-32), np.int64(-64), np.uint8(8), np.uint16(16),
              np.uint32(32), np.uint64(2**64 - 1), np.float16(0.5), np.float32(1.5), np.float64(2.5),
              np.longdouble(1.25), np.complex64(1 - 2j), np.complex128(3 + 4j), np.bool_(True),
              np.bool_(False), np.str_("text ✓"), np.str_(""), np.bytes_(b"by"), np.bytes_(b""),
              np.float64("nan"), np.datetime64("2024-02-29T12:00", "m"), np.timedelta64(7, "ms")]

ARRAY_DTYPES = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16",
                ">i4", ">f8", "<U3", ">U2", "S4", "M8[ns]", "m8[s]"]


def sample_array(dtype, shape):
    dt = np.dtype(dtype)
    n = math.prod(shape)
    if dt.kind == "U":
        data = np.array(["ab✓", "", "xyz"] * n, dtype=dt)[:n]
    elif dt.kind == "S":
        data = np.array([b"a\x00b", b"", b"wxyz"] * n, dtype=dt)[:n]
    else:
        data = (np.arange(n) % 3).astype(dt)
    return data.reshape(shape)


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_python_values_round_trip_with_exact_type(value):
    assert_same(roundtrip(value), value)


@pytest.mark.parametrize("value", NP_SCALARS, ids=lambda v: f"{type(v).__name__}({v!r})")
def test_numpy_scalars_keep_their_exact_numpy_type(value):
    assert_same(roundtrip(value), value)


def test_numpy_float64_does_not_come_back_as_plain_float_and_bool_not_as_np_bool():
    assert type(roundtrip(np.float64(1.0))) is np.float64
    assert type(roundtrip(1.0)) is float
    assert type(roundtrip(True)) is bool
    assert type(roundtrip(np.True_)) is np.bool_
    assert type(roundtrip(3)) is int


@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3), (2, 0, 4), (1, 1, 1, 2)], ids=str)
@pytest.mark.parametrize("dtype", ARRAY_DTYPES)
def test_arrays_round_trip_with_dtype_byte_order_and_shape(dtype, shape):
    a = sample_array(dtype, shape)
    b = roundtrip(a)
    assert_same(b, a)
    assert b.flags.c_contiguous and b.flags.writeable


def test_non_contiguous_arrays_decode_as_c_contiguous_copies():
    a = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    for view in (a[:, ::2, 1:], a.T, a[::-1]):
        b = roundtrip(view)
        assert b.flags.c_contiguous and b.shape == view.shape and b.dtype == view.dtype
        np.testing.assert_array_equal(b, view)


def test_large_arrays_round_trip():
    a = np.random.default_rng(0).standard_normal((300, 200))  # beyond the small-input cutoff
    assert_same(roundtrip(a), a)
    assert_same(decode(np.frombuffer(encode(a), np.uint8)), a)


def test_containers_round_trip_with_order_and_key_types_kept():
    value = {"b": 1, "a": [1, 2.0, "x"], 3: (None,), 2.5: b"k", (1, "t"): {"in": ()}, None: [],
             False: frozenset({1, 2}), b"raw": {3, 4}, np.int64(7): "np key"}
    back = roundtrip(value)
    assert_same(back, value)
    assert list(back) == list(value)
    assert type(back[b"raw"]) is set and type(back[False]) is frozenset
    assert type(next(k for k in back if k == 7 and not isinstance(k, bool))) is np.int64


def test_nested_structures_with_arrays_round_trip():
    value = {"episode": {"r": np.float32(1.5), "l": 10, "t": 0.25},
             "final_info": [{"obs": np.zeros((2, 2), np.uint8)}, None],
             "stats": ([np.arange(3), {"deep": [[[np.str_("x")]]]}], -7)}
    assert_same(roundtrip(value), value)


def test_mujoco_style_info_keeps_float_types():
    info = {"x_position": np.float64(0.1), "x_velocity": 0.2, "reward_run": np.float32(0.3),
            "reward_ctrl": -0.01, "y_position": 0.0, "distance_from_origin": 0.5}
    assert_same(roundtrip(info), info)


def test_named_tuples_round_trip_as_their_own_class_with_their_items():
    graph = GraphInstance(nodes=np.arange(6, dtype=np.float32).reshape(3, 2), edges=None,
                          edge_links=np.array([[0, 1], [1, 2]], dtype=np.int64))
    with_edges = graph._replace(edges=np.array([1, 0], dtype=np.int64))
    value = {"graph": graph, "graphs": [with_edges], "points": [Point(1, 2.5), Point(np.int64(3), "y")],
             "pair": Pair(7), "nested": {"deep": (Pair(Point(0, 0), [Pair(1, 2)]),)}}
    back = roundtrip(value)
    assert_same(back, value)
    assert type(back["graph"]) is GraphInstance and back["graph"].edges is None
    assert type(back["graphs"][0]) is GraphInstance and back["graphs"][0].edges.tolist() == [1, 0]
    assert back["graph"].nodes.dtype == np.float32 and back["graph"].edge_links.shape == (2, 2)
    assert type(back["points"][1]) is Point and back["points"][1].y == "y"
    assert type(back["nested"]["deep"][0].left) is Point
    assert back["pair"]._fields == ("left", "right") and back["pair"].right is None


def test_ordered_dict_comes_back_as_ordered_dict_with_its_order():
    value = collections.OrderedDict([("z", 1), ("a", collections.OrderedDict(b=2, a=1)), (3, [])])
    back = roundtrip({"od": value})["od"]
    assert type(back) is collections.OrderedDict and type(back["a"]) is collections.OrderedDict
    assert list(back) == ["z", "a", 3] and list(back["a"]) == ["b", "a"]
    assert_same(back, value)


@pytest.mark.parametrize("member", [Color.RED, Color.BLUE, Shape.SQUARE, Shape.CORNER, Shape.NAME,
                                    Mode.FAST, Perm.W, READ_WRITE], ids=repr)
def test_enum_members_come_back_as_the_identical_member(member):
    back = roundtrip({"m": [member]})["m"][0]
    assert back is member


@pytest.mark.parametrize("value", [np.longlong(-5), np.ulonglong(2**64 - 1),
                                   np.array([1, -2], dtype=np.longlong), np.array([[7]], dtype=np.ulonglong),
                                   np.array([3], dtype=np.dtype(np.longlong).newbyteorder(">"))],
                         ids=["longlong", "ulonglong", "longlong_array", "ulonglong_array", "big_endian"])
def test_longlong_scalars_and_arrays_keep_their_exact_type(value):
    back = roundtrip({"v": value})["v"]
    assert_same(back, value)
    if isinstance(value, np.ndarray):
        assert type(back[(0,) * back.ndim]) is type(value[(0,) * value.ndim])
    assert type(roundtrip(np.int64(1))) is np.int64 and type(roundtrip(np.uint64(1))) is np.uint64


class MyDict(dict):
    pass


class Name(str):
    pass


class Count(int):
    pass


@pytest.mark.parametrize("value, kind, convert", [
    (collections.defaultdict(list, k=[1]), "dict", "dict(x)"),
    (MyDict(a=1), "dict", "dict(x)"),
    (type("SubOrdered", (collections.OrderedDict,), {})(a=1), "dict", "dict(x)"),
    (type("L", (list,), {})([1]), "list", "list(x)"),
    (time.gmtime(0), "tuple", "tuple(x)"),  # a struct sequence: a tuple without _fields
    (type("S", (set,), {})(), "set", "set(x)"),
    (type("F", (frozenset,), {})(), "frozenset", "frozenset(x)"),
    (Name("n"), "str", "str(x)"),
    (type("B", (bytes,), {})(b"b"), "bytes", "bytes(x)"),
    (type("BA", (bytearray,), {})(b"b"), "bytearray", "bytearray(x)"),
    (Count(3), "int", "int(x)"),
    (type("Fl", (float,), {})(1.5), "float", "float(x)"),
    (type("C", (complex,), {})(1j), "complex", "complex(x)"),
], ids=lambda v: type(v).__name__ if not isinstance(v, str) else v)
def test_other_subclasses_of_builtin_types_are_refused_with_path_type_and_conversion(value, kind, convert):
    t = type(value)
    name = f"{t.__module__}.{t.__qualname__}"
    with pytest.raises(CodecError) as err:
        encode({"x": [0, 1, value]}, what="info")
    message = str(err.value)
    assert message.startswith(f"cannot encode info['x'][2] of type {name}: subclasses of {kind} do not travel")
    assert f"convert it with {convert}" in message


@pytest.mark.parametrize("make", [lambda tmp: np.ma.masked_array([1, 2], mask=[0, 1]),
                                  lambda tmp: np.matrix([[1, 2]]),
                                  lambda tmp: np.rec.array([(1, 2.0)], dtype="i4,f8"),
                                  lambda tmp: np.memmap(tmp / "m.bin", np.float32, "w+", shape=(3,))],
                         ids=["masked", "matrix", "recarray", "memmap"])
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
def test_ndarray_subclasses_are_refused_saying_to_convert_with_asarray(make, tmp_path):
    array = make(tmp_path)
    name = f"{type(array).__module__}.{type(array).__qualname__}"
    with pytest.raises(CodecError, match=rf"cannot encode info\['a'\] of type {re.escape(name)}: "
                                         r"numpy array subclasses do not travel.*np\.asarray\(x\)"):
        encode({"a": array}, what="info")
    if array.dtype.fields is None:  # a recarray's structured dtype does not travel either way
        assert type(roundtrip(np.asarray(array))) is np.ndarray


def test_numpy_scalar_subclasses_are_refused():
    sub = type("MyFloat", (np.float64,), {})
    with pytest.raises(CodecError, match=r"cannot encode info\[0\] of type .*MyFloat: subclasses of "
                                         r"numpy\.float64 do not travel.*numpy\.float64\(x\)"):
        encode([sub(1.0)], what="info")


def test_named_tuples_and_enums_defined_in_a_function_are_refused():
    class LocalPair(typing.NamedTuple):
        a: int

    class LocalColor(enum.Enum):
        RED = 1

    for value, convert in ((LocalPair(1), "tuple(x)"), (LocalColor.RED, "x.value")):
        with pytest.raises(CodecError, match=r"cannot encode info\['v'\] of type .*<locals>.*defined inside "
                                             rf"a function.*convert it with {re.escape(convert)}"):
            encode({"v": value}, what="info")
    local = collections.namedtuple("LocalPoint", "a")  # qualname "LocalPoint": encodes, but is found nowhere
    with pytest.raises(CodecError, match=rf"named tuple class {__name__}\.LocalPoint is not loaded in this process"):
        roundtrip({"v": local(1)})


def test_items_and_enum_values_that_cannot_travel_are_refused_with_their_path():
    with pytest.raises(CodecError, match=r"cannot encode info\['p'\] of type .*Point: this named tuple has 3 items"):
        encode({"p": tuple.__new__(Point, (1, 2, 3))}, what="info")
    with pytest.raises(CodecError, match=r"cannot encode info\['p'\]\[1\] of type object: only None"):
        encode({"p": Point(1, object())}, what="info")
    with pytest.raises(CodecError, match=r"cannot encode info\['e'\]\.value of type object: only None"):
        encode({"e": Opaque.THING}, what="info")


def test_empty_dict_round_trips_to_a_fresh_dict():
    first, second = roundtrip({}), roundtrip({})
    assert first == {} and type(first) is dict and first is not second
    assert decode(np.frombuffer(encode({}), np.uint8)) == {}


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, lambda b: np.frombuffer(b, np.uint8),
                                  lambda b: np.concatenate([np.zeros(7, np.uint8),
                                                            np.frombuffer(b, np.uint8)])[7:]],
                         ids=["bytes", "bytearray", "memoryview", "uint8", "uint8_slice"])
def test_decode_accepts_every_buffer_kind(wrap):
    value = {"a": np.arange(4.0), "b": [1, "two"]}
    assert_same(decode(wrap(encode(value))), value)


def test_decoded_arrays_and_bytes_do_not_alias_the_buffer():
    shm = np.zeros(4096, np.uint8)
    n = encode_into({"a": np.arange(5, dtype=np.int32), "b": b"bytes", "s": np.int16(4)}, shm)
    back = decode(shm[:n])
    shm[:] = 0xFF
    np.testing.assert_array_equal(back["a"], np.arange(5, dtype=np.int32))
    assert back["b"] == b"bytes" and back["s"] == 4
    assert not np.shares_memory(back["a"], shm)


def test_decode_leaves_no_view_of_the_buffer_behind():
    for value in ({"small": np.arange(3)}, {"large": np.zeros(100_000)}):
        buf = bytearray(encode(value))
        decode(buf)
        buf += b"x"  # a bytearray cannot grow while a view of it is alive
        with pytest.raises(CodecError):
            decode(buf)  # trailing byte
        buf.clear()


def test_encode_error_names_the_path_and_type():
    with pytest.raises(CodecError) as err:
        encode({"stats": [1, 2, np.random.default_rng(0)]}, what="info")
    assert str(err.value).startswith(
        "cannot encode info['stats'][2] of type numpy.random._generator.Generator: only None, bool, int,")


@pytest.mark.parametrize("bad, path", [
    ({"f": len}, "info['f']"),
    ({"cls": int}, "info['cls']"),
    ((1, (2, lambda: 0)), "info[1][1]"),
    ({"k": {1: object()}}, "info['k'][1]"),
    ({"a": 1, print: 2}, "info.keys()[1]"),
    ({"s": {1, frozenset({Ellipsis})}}, "info['s']{*}{*}"),
    (memoryview(b"x"), "info"),
], ids=str)
def test_unsupported_values_raise_codec_error_with_their_path(bad, path):
    with pytest.raises(CodecError, match=r"cannot encode " + re.escape(path) + " of type"):
        encode(bad, what="info")


@pytest.mark.parametrize("array", [np.array([1, "a"], dtype=object), np.zeros(2, dtype="i4,f8"),
                                   np.zeros(2, dtype="V4"), np.array(["a"], dtype=np.dtypes.StringDType())],
                         ids=["object", "structured", "void", "stringdtype"])
def test_arrays_with_object_like_dtypes_are_rejected(array):
    with pytest.raises(CodecError, match=r"cannot encode info\['x'\] \(numpy array of dtype"):
        encode({"x": array}, what="info")


def test_cyclic_structures_raise_codec_error_not_recursion_error():
    loop = []
    loop.append(loop)
    with pytest.raises(CodecError, match="nested deeper than"):
        encode(loop)


def test_nesting_is_bounded_at_max_depth_on_both_ends():
    ok = 0
    for _ in range(codec.MAX_DEPTH):
        ok = [ok]
    assert roundtrip(ok) == ok
    with pytest.raises(CodecError):
        encode([ok])
    deep = b"\x0a\x01\x00\x00\x00" * (codec.MAX_DEPTH + 1) + b"\x00"  # hand-made: 65 nested lists
    with pytest.raises(CodecError, match="nesting deeper"):
        decode(deep)
    very_deep = b"\x0e\x01\x00\x00\x00\x00" * 100_000 + b"\x00"  # dict-in-dict, far past the stack
    with pytest.raises(CodecError):
        decode(very_deep)


def test_encode_into_writes_at_offset_and_returns_size():
    buf = np.full(64, 0xAA, np.uint8)
    n = encode_into({"a": 1.5}, buf, offset=5)
    assert n == len(encode({"a": 1.5}))
    assert (buf[:5] == 0xAA).all() and (buf[5 + n:] == 0xAA).all()
    assert decode(buf[5:5 + n]) == {"a": 1.5}
    mv = memoryview(bytearray(64))
    assert decode(mv[:encode_into([1, 2], mv)]) == [1, 2]


def test_encode_into_too_small_buffer_says_needed_and_available_and_writes_nothing():
    buf = np.full(20, 7, np.uint8)
    needed = len(encode({"key": "a longer string"}))
    with pytest.raises(CodecError, match=rf"needs {needed} bytes but only 16 are available"):
        encode_into({"key": "a longer string"}, buf, offset=4)
    assert (buf == 7).all()
    with pytest.raises(CodecError, match="offset"):
        encode_into(1, buf, offset=-1)


def test_encode_into_reports_unsupported_values_like_encode():
    with pytest.raises(CodecError, match=r"cannot encode obs\[0\]"):
        encode_into([{1, 2}.add], np.zeros(100, np.uint8), what="obs")


RICH = {"od": collections.OrderedDict(b=1, a=[2]), "nt": Point(1, Pair(np.arange(2))), "e": Color.RED,
        "se": Shape.SQUARE, "ll": [np.longlong(-1), np.ulonglong(1), np.array([2, 3], np.longlong)], "i": 5, "big": -(2**90), "f": 0.5, "c": 1j, "s": "✓", "b": b"\x00", "ba": bytearray(b"z"),
        "l": [None, True, False], "t": (1,), "set": {2}, "fs": frozenset({3}),
        "a": np.arange(6, dtype=">i2").reshape(2, 3), "u": np.array(["ab"]), "S": np.array([b"q"]),
        "np": [np.float64(1), np.float32(2), np.int64(3), np.True_, np.str_("s"), np.bytes_(b"b"),
               np.uint16(4), np.bool_(False)], "nested": {"d": {"e": [{}]}}}


def test_every_truncation_of_a_valid_encoding_raises_codec_error():
    data = encode(RICH)
    assert_same(decode(data), RICH)
    for cut in range(len(data)):
        with pytest.raises(CodecError):
            decode(data[:cut])


def test_trailing_bytes_are_rejected():
    with pytest.raises(CodecError, match="trailing"):
        decode(encode([1, 2]) + b"\x00")


def test_random_garbage_only_ever_raises_codec_error():
    rng = np.random.default_rng(1234)
    valid = encode(RICH)
    for i in range(20_000):
        if i % 2:
            data = rng.integers(0, 256, rng.integers(0, 48), dtype=np.uint8).tobytes()
        else:  # mutate a valid encoding: reaches deep into the decoders
            mutated = np.frombuffer(valid, np.uint8).copy()
            idx = rng.integers(0, len(mutated), rng.integers(1, 4))
            mutated[idx] = rng.integers(0, 256, len(idx), dtype=np.uint8)
            data = mutated.tobytes()
        try:
            decode(data)
        except CodecError:
            pass


@pytest.mark.parametrize("data", [
    b"\x07\xff\xff\xff\xff",                          # str of 4 GiB
    b"\x08\xff\xff\xff\xffabc",                       # bytes of 4 GiB
    b"\x04\xff\xff\xff\xff\x01",                      # int of 4 GiB
    b"\x0a\xff\xff\xff\xff\x00\x00",                  # list of 4 G items
    b"\x0e\xff\xff\xff\xff\x00\x00",                  # dict of 4 G pairs
    b"\x10\x03<f8\x02" + struct.pack("<2Q", 2**30, 2**30) + b"\x00" * 16,  # 8 EiB array
    b"\x10\x03<f8\x01" + struct.pack("<Q", 2**60),    # 2**60 floats
    b"\x10\x03|u1\x02" + struct.pack("<2Q", 0, 2**64 - 1),  # empty but absurd dims
    b"\x10\x0b|S999999999\x01" + struct.pack("<Q", 3),  # huge itemsize
], ids=["str", "bytes", "bigint", "list", "dict", "array2d", "array1d", "emptydims", "itemsize"])
def test_huge_claimed_lengths_raise_without_allocating(data):
    tracemalloc.start()
    try:
        with pytest.raises(CodecError):
            decode(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("dtype", [b"|O8", b"|O", b"|V8", b"|i1,<f8", b"[('a', '<i4')]", b"StringDType()",
                                   b"<i1", b"<f3", b"|S0", b"<U0", b"<M8[xx]", b"f8", b"\xff\xfe"])
def test_unsafe_or_invalid_dtypes_are_rejected_on_decode(dtype):
    array = b"\x10" + bytes([len(dtype)]) + dtype + b"\x01" + struct.pack("<Q", 1) + b"\x00" * 16
    scalar = b"\x11" + bytes([len(dtype)]) + dtype + b"\x00" * 16
    for data in (array, scalar):
        with pytest.raises(CodecError):
            decode(data)


def test_invalid_bool_bytes_and_code_points_are_rejected():
    with pytest.raises(CodecError, match="bool"):
        decode(b"\x10\x03|b1\x01" + struct.pack("<Q", 2) + b"\x01\x02")
    with pytest.raises(CodecError, match="code point"):
        decode(b"\x10\x03<U1\x01" + struct.pack("<Q", 1) + b"\xff\xff\xff\xff")
    with pytest.raises(CodecError, match="code point"):
        decode(b"\x11\x03<U1\xff\xff\xff\xff")


def test_unknown_tags_unhashable_keys_bad_utf8_and_empty_input_are_rejected():
    for data, match in [(b"\xee", "unknown tag"), (b"", "empty"),
                        (b"\x0e\x01\x00\x00\x00\x0a\x00\x00\x00\x00\x00", "malformed"),
                        (b"\x0c\x01\x00\x00\x00\x0a\x00\x00\x00\x00", "malformed"),
                        (b"\x07\x02\x00\x00\x00\xc3\x28", "malformed")]:
        with pytest.raises(CodecError, match=match):
            decode(data)


def test_decode_rejects_non_buffer_input_with_type_error():
    with pytest.raises(TypeError):
        decode("not bytes")


def test_named_tuple_naming_a_class_that_is_not_loaded_is_a_codec_error_and_imports_nothing():
    for module, qualname in [("rock_vec_never_loaded_module", "Point"), ("xml.dom.minidom", "Node"),
                             (__name__, "NoSuchClass"), (__name__, "Point.x"), (__name__, "<locals>.Point"),
                             (__name__, "test_items_and_enum_values_that_cannot_travel_are_refused_with_their_path"),
                             ("", ""), (__name__, "")]:
        assert module not in sys.modules or module == __name__
        with pytest.raises(CodecError, match=rf"named tuple class {re.escape(module)}\.{re.escape(qualname)} "
                                             "is not loaded in this process"):
            decode(named_tuple_message(module, qualname))
        assert module not in sys.modules or module == __name__


@pytest.mark.parametrize("module, qualname", [("builtins", "dict"), ("builtins", "tuple"), ("os", "system"),
                                              ("collections", "OrderedDict"), ("builtins", "print"),
                                              ("sys", "modules"), ("time", "struct_time"), (__name__, "Color")])
def test_named_tuple_naming_a_class_that_is_no_named_tuple_is_a_codec_error(module, qualname):
    with pytest.raises(CodecError, match=rf"named tuple class {module}\.{qualname} is not loaded in this process"):
        decode(named_tuple_message(module, qualname))


@pytest.mark.parametrize("module, qualname", [("builtins", "int"), (__name__, "Point"), ("os", "system"),
                                              ("enum", "EnumType"), ("rock_vec_never_loaded_module", "Color")])
def test_enum_naming_a_class_that_is_no_loaded_enum_is_a_codec_error(module, qualname):
    with pytest.raises(CodecError, match=rf"enum class {module}\.{qualname} is not loaded in this process"):
        decode(enum_message(module, qualname, 3))


def test_named_tuple_message_with_the_wrong_number_of_items_is_a_codec_error():
    assert decode(named_tuple_message(__name__, "Point", (1, 2))) == Point(1, 2)
    for items in [(), (1,), (1, 2, 3)]:
        with pytest.raises(CodecError, match=rf"named tuple class {__name__}\.Point has 2 fields but the "
                                             f"message carries {len(items)} items"):
            decode(named_tuple_message(__name__, "Point", items))


def test_enum_value_with_no_member_is_a_codec_error():
    assert decode(enum_message(__name__, "Color", 4)) is Color.BLUE
    for qualname, value in [("Color", 99), ("Color", "RED"), ("Shape", [4]), ("Shape", {"a": 1}), ("Mode", "FAST"),
                            ("Perm", 1)]:
        with pytest.raises(CodecError, match=rf"enum class {__name__}\.{qualname} has no member with value"):
            decode(enum_message(__name__, qualname, value))


class RecordingMeta(type):
    """A metaclass whose hooks record every call: class lookups must never trigger them."""
    calls = []

    def __getattribute__(cls, name):
        RecordingMeta.calls.append(("meta getattribute", name))
        return super().__getattribute__(name)

    def __getattr__(cls, name):
        RecordingMeta.calls.append(("meta getattr", name))
        raise AttributeError(name)

    def __call__(cls, *args, **kwargs):
        RecordingMeta.calls.append(("meta call", args))
        return super().__call__(*args, **kwargs)

    def __eq__(cls, other):
        RecordingMeta.calls.append(("meta eq", other))
        return super().__eq__(other)

    __hash__ = type.__hash__

    def __subclasscheck__(cls, sub):
        RecordingMeta.calls.append(("meta subclasscheck", sub))
        return super().__subclasscheck__(sub)

    def __instancecheck__(cls, obj):
        RecordingMeta.calls.append(("meta instancecheck", obj))
        return super().__instancecheck__(obj)


def test_class_lookup_never_runs_a_module_getattr_a_module_hook_or_a_metaclass_hook():
    calls = RecordingMeta.calls
    calls.clear()

    class HookedModule(types.ModuleType):
        def __getattribute__(self, name):
            calls.append(("module getattribute", name))
            return super().__getattribute__(name)

    modname = "rock_vec_test_hooked_module"
    module = HookedModule(modname)

    def module_getattr(name):
        calls.append(("module __getattr__", name))
        return Point

    class Hooked(tuple, metaclass=RecordingMeta):
        _fields = ("a", "b")

        def __new__(cls, *args):
            calls.append(("class new", args))
            return tuple.__new__(cls, args)

        def __init__(self, *args):
            calls.append(("class init", args))

    class Outer(metaclass=RecordingMeta):
        Inner = Hooked

    Hooked.__module__ = Outer.__module__ = modname  # only these two lines run metaclass code
    Hooked.__qualname__, Outer.__qualname__ = "Hooked", "Outer"
    vars(module).update(__getattr__=module_getattr, Hooked=Hooked, Outer=Outer)
    sys.modules[modname] = module
    calls.clear()
    try:
        for qualname in ["Hooked", "Outer.Inner"]:
            back = decode(named_tuple_message(modname, qualname, (1, "b")))
            assert type(back) is Hooked and tuple(back) == (1, "b")
        for qualname in ["Missing", "Outer.Missing", "Outer", "Hooked.a", "Outer.Inner.Missing"]:
            with pytest.raises(CodecError, match="is not loaded in this process"):
                decode(named_tuple_message(modname, qualname, (1, "b")))
            with pytest.raises(CodecError, match="is not loaded in this process"):
                decode(enum_message(modname, qualname, 1))
        with pytest.raises(CodecError, match="has 2 fields"):
            decode(named_tuple_message(modname, "Hooked", (1,)))
        assert codec.loaded_class(modname, "Outer.Inner") is Hooked
        assert codec.loaded_class(modname, "Point") is None  # only the module __getattr__ has it
        assert calls == []
        assert getattr(module, "Point") is Point and Outer.Inner is Hooked and calls  # the hooks are live
    finally:
        del sys.modules[modname]


def test_loaded_class_finds_classes_already_loaded_and_nothing_else():
    assert codec.loaded_class(__name__, "Point") is Point
    assert codec.loaded_class("collections", "OrderedDict") is collections.OrderedDict
    assert codec.loaded_class(GraphInstance.__module__, "GraphInstance") is GraphInstance
    assert codec.loaded_class("builtins", "ValueError") is ValueError
    for module, qualname in [("os", "system"), ("sys", "modules"), ("builtins", "print"), (__name__, "READ_WRITE"),
                             ("rock_vec_never_loaded_module", "X"), (None, "X"), ("os", 1), ("os.path", ""),
                             (Name("builtins"), "int")]:
        assert codec.loaded_class(module, qualname) is None
    assert "rock_vec_never_loaded_module" not in sys.modules


def test_error_reports_rebuild_only_exception_classes_already_loaded():
    errors = pytest.importorskip("rock_vec.errors")
    assert errors._loaded_exception_type("builtins", "ValueError") is ValueError
    assert errors._loaded_exception_type("gymnasium.error", "AlreadyPendingCallError") is \
        errors.AlreadyPendingCallError
    for module, qualname in [("builtins", "int"), ("os", "system"), ("rock_vec_never_loaded_module", "Error"),
                             (1, "ValueError"), ("builtins", "ValueError.__class__")]:
        assert errors._loaded_exception_type(module, qualname) is None


@pytest.mark.parametrize("data", [
    b"\x19O\x03|O8" + b"\x00" * 8,        # object type code
    b"\x19V\x03|V8" + b"\x00" * 8,        # void type code
    b"\x19q\x03<f8" + b"\x00" * 8,        # code and dtype disagree on kind
    b"\x19q\x03<i4" + b"\x00" * 8,        # ... and on size
    b"\x19q\x03<i8" + b"\x00" * 7,        # truncated
    b"\x1cO\x03|O8\x01" + struct.pack("<Q", 1) + b"\x00" * 8,
    b"\x1cq\x03<f8\x01" + struct.pack("<Q", 1) + b"\x00" * 8,
    b"\x1cq\x03<i8\x01" + struct.pack("<Q", 2**60),
], ids=["object", "void", "kind", "size", "truncated", "array_object", "array_kind", "array_huge"])
def test_typed_numpy_scalars_and_arrays_accept_only_whitelisted_matching_type_codes(data):
    with pytest.raises(CodecError):
        decode(data)
