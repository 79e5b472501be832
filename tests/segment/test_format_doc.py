"""shm/FORMAT.md stays true to the code.

The document's tables are parsed and checked against the real thing: the
header and slot tables against the compiled C layout (cffi), the enums
against ``rock_vec._core.lib`` and ``shm/rv_layout.h``, the manifest keys and
the arrays against the segments of real pools. Table rules the parser relies
on: a table row is a line starting with ``|``; ``\\|`` inside a cell is a
literal ``|``; names, fields and keys are in backticks; an array name with
``<k>`` is one array per leaf (``k`` = the leaf's index).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces

import rock_vec
from rock_vec._core import ffi, lib

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "shm" / "FORMAT.md"
LAYOUT_H = ROOT / "shm" / "rv_layout.h"
STRUCTS = ("rv_header_t", "rv_worker_slot_t")
ENUM_SECTIONS = {"rv_cmd": "Commands", "rv_worker_state": "Worker states", "rv_status": "Statuses"}


def segment_of(envs):
    """The shared segment behind a vector env (the one place that knows where the pool keeps it)."""
    return envs._io.pool.seg


# ---------------------------------------------------------------- the document


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


def _sections() -> dict[str, str]:
    """``## heading`` -> its text (up to the next ``## ``)."""
    parts = re.split(r"^## (.+)$", _doc(), flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _section(match) -> str:
    found = [body for title, body in _sections().items() if match(title)]
    assert len(found) == 1, f"FORMAT.md: expected one section matching, found {len(found)}"
    return found[0]


def _cells(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [c.strip().replace("\\|", "|") for c in cells]


def _table(text: str, first_column: str) -> list[dict[str, str]]:
    """The rows of the table in ``text`` whose first column is ``first_column``."""
    lines = [line for line in text.splitlines() if line.lstrip().startswith("|")]
    for i, line in enumerate(lines):
        head = _cells(line)
        if head and head[0] == first_column:
            rows = []
            for body in lines[i + 2:]:
                cells = _cells(body)
                if len(cells) != len(head):
                    break
                rows.append(dict(zip(head, cells)))
            assert rows, f"FORMAT.md: the table with column {first_column!r} has no rows"
            return rows
    raise AssertionError(f"FORMAT.md: no table with first column {first_column!r}")


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _one_ticked(cell: str) -> str:
    names = _ticked(cell)
    assert len(names) == 1, f"FORMAT.md: expected one `name` in {cell!r}"
    return names[0]


def _struct_rows(struct: str) -> dict[str, dict[str, str]]:
    body = _section(lambda title: struct in _ticked(title))
    return {_one_ticked(row["field"]): row for row in _table(body, "field")}


def _c_type(short: str) -> str:
    m = re.fullmatch(r"([ui])(\d+)", short)
    assert m, f"FORMAT.md: unknown field type {short!r}"
    return f"{'u' if m[1] == 'u' else ''}int{m[2]}_t"


# ---------------------------------------------------------------- rv_layout.h


def _layout_h() -> str:
    return re.sub(r"/\*.*?\*/", "", LAYOUT_H.read_text(encoding="utf-8"), flags=re.S)


def _struct_fields(struct: str) -> list[str]:
    """Every field of ``struct`` in rv_layout.h, padding (``_pad<n>``) excluded."""
    m = re.search(r"typedef struct \w+ \{([^{}]*)\}\s*" + struct + ";", _layout_h())
    assert m, f"rv_layout.h defines no {struct}"
    fields = re.findall(r"^\s*\w+\s+(\w+)\s*(?:\[[^\]]*\])?\s*;", m[1], flags=re.M)
    return [f for f in fields if not f.startswith("_pad")]


def _enum(name: str) -> list[str]:
    m = re.search(r"enum " + name + r"\s*\{(.*?)\};", _layout_h(), flags=re.S)
    assert m, f"rv_layout.h defines no enum {name}"
    return re.findall(r"(RV_\w+)\s*=", m[1])


def _asserted_offsets() -> dict[str, set[str]]:
    """struct -> the fields whose offsets rv_layout.h asserts."""
    found: dict[str, set[str]] = {s: set() for s in STRUCTS}
    for struct, field in re.findall(r"_Static_assert\(\s*offsetof\((\w+),\s*(\w+)\)", _layout_h()):
        found[struct].add(field)
    return found


def _asserted_sizes() -> dict[str, int]:
    """struct -> the size rv_layout.h asserts, in cache lines."""
    return {s: int(n) for s, n in re.findall(
        r"_Static_assert\(\s*sizeof\((\w+)\)\s*==\s*(\d+)\s*\*\s*RV_CACHE_LINE", _layout_h())}


# ---------------------------------------------------------------- real pools


def _snapshot(envs) -> dict:
    """What the tests need of a pool's segment, read before the pool closes."""
    seg = segment_of(envs)
    header = {name: int(getattr(seg.header, name)) for name, _ in ffi.typeof("rv_header_t").fields}
    return {
        "manifest": json.loads(json.dumps(seg.manifest)),
        "arrays": {name: (a.dtype.str, tuple(a.shape)) for name, a in seg.arrays.items()},
        "header": header,
        "size": len(seg.buffer),
    }


def _leaf_env():
    from sample_envs import SpaceEnv

    obs = spaces.Dict({"pos": spaces.Box(-1, 1, (2,), np.float32), "seq": spaces.Sequence(spaces.Discrete(3)),
                       "txt": spaces.Text(4)})
    act = spaces.Dict({"move": spaces.Discrete(3), "say": spaces.Text(5)})
    return SpaceEnv(observation_space=obs, action_space=act)


POOLS = {
    "cartpole": lambda: rock_vec.make_vec("CartPole-v1", 2),
    # Confined to the CPUs this process may use: the manifest then holds a placement.
    "async_batches": lambda: rock_vec.make_vec("CartPole-v1", 4, batch_size=2, cpus=sorted(os.sched_getaffinity(0))),
    "every_leaf_kind": lambda: rock_vec.AsyncVectorEnv([_leaf_env] * 2),  # codec and text leaves, a pickled spec
}


@pytest.fixture(scope="module")
def pools() -> dict[str, dict]:
    """Snapshots of real pools' segments (each pool closed at once)."""
    out = {}
    for name, build in POOLS.items():
        envs = build()
        try:
            out[name] = _snapshot(envs)
        finally:
            envs.close()
    return out


# ---------------------------------------------------------------- header and slots


@pytest.mark.parametrize("struct", STRUCTS)
def test_documented_offsets_sizes_and_types_match_the_c_layout(struct):
    """Guards every row of the header and slot tables: offset, size and type
    as the compiled struct has them."""
    fields = dict(ffi.typeof(struct).fields)
    for name, row in _struct_rows(struct).items():
        assert name in fields, f"FORMAT.md documents {struct}.{name}, which cffi does not know"
        assert int(row["offset"]) == ffi.offsetof(struct, name), f"{struct}.{name}: offset"
        assert int(row["size"]) == ffi.sizeof(fields[name].type), f"{struct}.{name}: size"
        assert _c_type(row["type"]) == fields[name].type.cname, f"{struct}.{name}: type"


@pytest.mark.parametrize("struct", STRUCTS)
def test_every_struct_field_is_documented_and_no_other(struct):
    """Guards against a field added to (or removed from) rv_layout.h and not
    the document; padding fields (``_pad<n>``) are the only ones left out."""
    documented = set(_struct_rows(struct))
    in_header = set(_struct_fields(struct))
    assert documented == in_header, (f"{struct}: missing from FORMAT.md {sorted(in_header - documented)}, "
                                     f"not in rv_layout.h {sorted(documented - in_header)}")
    assert in_header <= {name for name, _ in ffi.typeof(struct).fields}, "the cffi cdef lacks a field"


def test_layout_diagram_gives_the_real_sizes():
    """Guards the segment diagram: header and slot sizes, their cache lines,
    and where the slots and the manifest start."""
    line, header, slot = lib.RV_CACHE_LINE, ffi.sizeof("rv_header_t"), ffi.sizeof("rv_worker_slot_t")
    doc = _doc()
    m = re.search(r"rv_header_t\s+(\d+) bytes \((\d+) cache lines\)", doc)
    assert m and (int(m[1]), int(m[2])) == (header, header // line)
    m = re.search(r"workers_off \(=(\d+)\)", doc)
    assert m and int(m[1]) == header
    m = re.search(r"rv_worker_slot_t\[num_workers\]\s+(\d+) bytes each \((\d+) cache lines\)", doc)
    assert m and (int(m[1]), int(m[2])) == (slot, slot // line)
    m = re.search(r"workers_off \+ (\d+) \* num_workers", doc)
    assert m and int(m[1]) == slot


def test_real_segment_header_is_laid_out_as_documented(pools):
    """Guards the diagram against real segments: the header's own fields say
    where the slots, the manifest and the arrays are."""
    header_size, slot = ffi.sizeof("rv_header_t"), ffi.sizeof("rv_worker_slot_t")
    for name, pool in pools.items():
        h, man = pool["header"], pool["manifest"]
        assert h["magic"] == lib.RV_MAGIC and h["version"] == lib.RV_FORMAT_VERSION, name
        assert h["header_size"] == header_size and h["workers_off"] == header_size, name
        assert h["manifest_off"] == h["workers_off"] + slot * h["num_workers"], name
        assert h["manifest_off"] + h["manifest_len"] <= man["arrays_start"], name
        assert h["total_size"] == pool["size"], name
        assert (h["num_envs"], h["num_workers"]) == (man["num_envs"], len(man["workers"])), name
        assert all(a["offset"] % 64 == 0 and a["offset"] >= man["arrays_start"] for a in man["arrays"].values())


def test_constants_match_the_core():
    """Guards the format number in the title and the magic in the header table."""
    title = _doc().splitlines()[0]
    assert re.fullmatch(r"# The rock_vec segment, format (\d+)", title)[1] == str(lib.RV_FORMAT_VERSION)
    magic = _ticked(_struct_rows("rv_header_t")["magic"]["meaning"])[0]
    assert int(magic, 16) == lib.RV_MAGIC


def test_static_assert_paragraph_names_exactly_the_asserted_fields():
    """Guards the promise about rv_layout.h's ``_Static_assert``s: the fields
    it names are the ones whose offsets are asserted, which are the starts of
    the cache lines past the first, and the struct sizes it gives are the
    asserted ones."""
    paragraphs = [p for p in _doc().split("\n\n") if "`_Static_assert`" in p]
    assert len(paragraphs) == 1, "FORMAT.md: one paragraph should say what rv_layout.h asserts"
    text = " ".join(paragraphs[0].split())
    named = set(_ticked(text))
    asserted = _asserted_offsets()
    all_fields = {f for s in STRUCTS for f in _struct_fields(s)}
    assert named & all_fields == set().union(*asserted.values())
    for struct in STRUCTS:
        line_starts = {name for name, f in ffi.typeof(struct).fields if f.offset and f.offset % lib.RV_CACHE_LINE == 0}
        assert asserted[struct] == line_starts, f"{struct}: the asserted offsets are not the cache-line starts"
    sizes = _asserted_sizes()
    assert set(sizes) == set(STRUCTS)
    assert f"header is {sizes['rv_header_t']} lines" in text
    assert f"slot is {sizes['rv_worker_slot_t']} lines" in text


@pytest.mark.parametrize("enum", sorted(ENUM_SECTIONS))
def test_enum_tables_match_the_core(enum):
    """Guards the tables of commands, worker states and statuses: every
    value of the C enum, with its value in the compiled core."""
    rows = _table(_section(lambda title: title.startswith(ENUM_SECTIONS[enum])), "name")
    documented = {_one_ticked(row["name"]): int(row["value"]) for row in rows}
    assert set(documented) == set(_enum(enum)), f"enum {enum}"
    for name, value in documented.items():
        assert getattr(lib, name) == value, name


# ---------------------------------------------------------------- manifest


def _manifest_rows() -> dict[str, dict[str, str]]:
    return {_one_ticked(row["key"]): row for row in _table(_section(lambda t: t.startswith("Manifest")), "key")}


_KINDS = {"int": lambda v: type(v) is int, "bool": lambda v: type(v) is bool, "str": lambda v: type(v) is str,
          "object": lambda v: type(v) is dict, "object or null": lambda v: v is None or type(v) is dict}


def test_manifest_table_lists_exactly_the_keys_of_real_manifests(pools):
    """Guards against a manifest key the pool writes and the document lacks
    (or one documented that the pool no longer writes), and each key's kind
    of value."""
    rows = _manifest_rows()
    for name, pool in pools.items():
        man = pool["manifest"]
        assert set(rows) == set(man), (f"{name}: missing from FORMAT.md {sorted(set(man) - set(rows))}, "
                                       f"not in the manifest {sorted(set(rows) - set(man))}")
        for key, row in rows.items():
            kind = row["value"]
            check = _KINDS.get(kind, lambda v: type(v) is list)  # `[...]`: a list
            assert check(man[key]), f"{name}: manifest[{key!r}] = {man[key]!r:.60} is not {kind}"


def test_nested_manifest_keys_are_documented(pools):
    """Guards the keys inside the manifest's objects (an array's entry,
    ``spec`` of either kind, ``main``, ``placement``): each real one is
    named, in JSON quotes, in its row."""
    rows = _manifest_rows()
    kinds = set()
    for name, pool in pools.items():
        man = pool["manifest"]
        objects = [("arrays", entry) for entry in man["arrays"].values()]
        objects += [(key, man[key]) for key in ("spec", "main", "placement") if man[key] is not None]
        for key, value in objects:
            for inner in value:
                assert f'"{inner}"' in rows[key]["meaning"], f"{name}: {key} holds {inner!r}, not in FORMAT.md"
        kinds.add(man["spec"]["kind"])
    assert kinds == {"make", "pickle"}, "the test pools should cover both kinds of spec"
    assert any(pool["manifest"]["placement"] is not None for pool in pools.values()), "no test pool was placed"
    assert all(f'"kind": "{k}"' in rows["spec"]["meaning"] for k in kinds)


# ---------------------------------------------------------------- arrays


def _array_rows() -> list[dict]:
    """The arrays table: one entry per documented name, with its name regex."""
    out = []
    for row in _table(_section(lambda t: t == "Arrays"), "name"):
        for name in _ticked(row["name"]):
            out.append({"name": name, "regex": re.compile(re.escape(name).replace(re.escape("<k>"), r"(\d+)")),
                        "dtype": row["dtype"], "shape": row["shape"]})
    return out


def _symbols(man: dict) -> dict:
    """The values of the names the document's shapes use, for one pool."""
    blocks = math.ceil(man["num_envs"] / man["batch_size"]) + 1
    capacity = 1 << max(0, (max(hi - lo for lo, hi in man["workers"]) - 1).bit_length())
    return {
        "num_envs": man["num_envs"], "num_workers": len(man["workers"]), "codec_bytes": man["codec_bytes"],
        "obs_generations": man["obs_generations"],
        "blocks": blocks, "rows": blocks * man["batch_size"], "n_act_leaves": max(1, len(man["act_leaves"])),
        "info_bytes": 4096, "mailbox_bytes": 8 << 20,  # the documented defaults, which the test pools use
        "ring_bytes": -(-lib.rv_spsc_ring_bytes(capacity) // 64) * 64,
        "spec_bytes": man["spec"].get("length", 1),
    }


def _slot_bytes(leaf: list, codec_bytes: int) -> int:
    _, kind, dtype, shape = leaf
    return codec_bytes if kind == "codec" else math.prod(shape) * max(8, np.dtype(dtype).itemsize)


def _expected(row: dict, k: int | None, man: dict) -> tuple[str, tuple]:
    """The dtype and shape a documented row gives for leaf ``k``."""
    leaf = None
    if k is not None:
        leaves = man["act_leaves"] if "act<k>" in row["name"] else man["obs_leaves"]
        assert k < len(leaves), f"{row['name']} with k={k}: no such leaf"
        leaf = leaves[k]
    if row["dtype"] == "leaf dtype":
        assert leaf is not None, f"{row['name']}: a leaf dtype needs <k>"
        dtype = leaf[2]
    else:
        dtype = _one_ticked(row["dtype"])
    symbols = _symbols(man)
    if leaf is not None:
        symbols["slot_bytes"] = _slot_bytes(leaf, man["codec_bytes"])
    shape_text = _one_ticked(row["shape"])
    assert shape_text.startswith("(") and shape_text.endswith(")"), shape_text
    shape: list[int] = []
    for part in filter(None, (p.strip() for p in shape_text[1:-1].split(","))):
        if part == "*leaf_shape":
            assert leaf is not None, f"{row['name']}: *leaf_shape needs <k>"
            shape.extend(leaf[3])
        elif part.isdigit():
            shape.append(int(part))
        else:
            assert part in symbols, f"FORMAT.md: unknown name {part!r} in the shape of {row['name']}"
            shape.append(symbols[part])
    return np.dtype(dtype).str, tuple(shape)


def _match(rows: list[dict], array: str) -> tuple[dict, int | None]:
    found = [(row, m) for row in rows if (m := row["regex"].fullmatch(array))]
    assert found, f"array {array!r} of a real pool is not in FORMAT.md's table"
    assert len(found) == 1, f"array {array!r} matches several rows: {[r['name'] for r, _ in found]}"
    row, m = found[0]
    return row, (int(m[1]) if m.groups() else None)


def test_every_array_of_a_real_pool_is_documented_with_its_dtype_and_shape(pools):
    """Guards against an array the pool lays out and the document lacks, or
    documents with a wrong dtype or shape (``<k>`` rows checked per leaf)."""
    rows = _array_rows()
    for name, pool in pools.items():
        for array, (dtype, shape) in pool["arrays"].items():
            row, k = _match(rows, array)
            assert _expected(row, k, pool["manifest"]) == (dtype, shape), f"{name}: {array}"


def test_every_documented_array_exists_in_a_real_pool(pools):
    """Guards against a documented array (or pattern) that no pool lays out
    any more; the test pools cover every leaf kind, so each must match."""
    rows = _array_rows()
    matched = {_match(rows, array)[0]["name"] for pool in pools.values() for array in pool["arrays"]}
    assert matched == {row["name"] for row in rows}, sorted({row["name"] for row in rows} - matched)
