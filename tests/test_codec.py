"""Tests for rock_vec.codec: exact round trips, encode errors, hostile input."""

import collections
import enum
import importlib.util
import math
import pathlib
import struct
import sys
import tracemalloc

import numpy as np
import pytest

try:
    from rock_vec import codec
except Exception:  # the package __init__ may not be importable yet: load the file itself
    _path = pathlib.Path(__file__).resolve().parents[1] / "rock_vec" / "codec.py"
    _spec = importlib.util.spec_from_file_location("rock_vec_codec_under_test", _path)
    codec = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = codec
    _spec.loader.exec_module(codec)

CodecError, encode, encode_into, decode = codec.CodecError, codec.encode, codec.encode_into, codec.decode


def roundtrip(obj):
    return decode(encode(obj))


def assert_same(a, b):
    """Deep equality that also demands identical types (and dtypes/shapes for arrays)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.dtype.str == b.dtype.str and a.shape == b.shape
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


def test_subclasses_travel_as_their_plain_base_type():
    class Color(enum.IntEnum):
        RED = 3

    class Name(str):
        pass

    Point = collections.namedtuple("Point", "x y")
    value = {"od": collections.OrderedDict(b=1, a=2), "nt": Point(1, 2), "enum": Color.RED,
             "s": Name("n"), "dd": collections.defaultdict(list, k=[1])}
    back = roundtrip(value)
    assert_same(back, {"od": {"b": 1, "a": 2}, "nt": (1, 2), "enum": 3, "s": "n", "dd": {"k": [1]}})


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
    with pytest.raises(CodecError, match=r"cannot encode " + __import__("re").escape(path) + " of type"):
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


RICH = {"i": 5, "big": -(2**90), "f": 0.5, "c": 1j, "s": "✓", "b": b"\x00", "ba": bytearray(b"z"),
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
