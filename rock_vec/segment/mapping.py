"""One shared-memory segment per pool: create, attach, unlink, sweep.

The learner creates the file in /dev/shm (random name, mode 0600, O_EXCL),
sizes it and writes the header and the JSON manifest. Workers attach by a
path: the /dev/shm name, or ``/dev/fd/N`` of a descriptor they inherited,
which keeps working after the name is unlinked. The name is unlinked as soon
as every worker holds the segment, so a crash leaves nothing in /dev/shm.

Python's ``multiprocessing.shared_memory`` is not used: its resource tracker
unlinks a segment when its creator exits, under workers still using it.
"""

from __future__ import annotations

import json
import mmap
import os
import secrets
import struct
from collections.abc import Callable

import numpy as np

from .._core import ffi, lib
from . import registry
from .layout import Arena, array_views
from .processes import pid_alive

SHM_DIR = "/dev/shm"
NAME_PREFIX = "rock_vec."


def manifest_bytes(manifest: dict) -> bytes:
    """The manifest as the segment holds it: compact JSON."""
    return json.dumps(manifest, separators=(",", ":")).encode()


def lay_out(manifest: dict, num_workers: int, declare: Callable[[Arena], None]) -> tuple[dict, int]:
    """``manifest`` with its arrays laid out after it, and the segment's size.

    ``declare`` adds the arrays to an ``Arena``. They start past the
    manifest, which holds their offsets: so its room is found by trying, a
    reserve doubled until the manifest's JSON fits."""
    fixed = ffi.sizeof("rv_header_t") + num_workers * ffi.sizeof("rv_worker_slot_t")
    reserve = 4096
    while True:
        arena = Arena(fixed + reserve)
        declare(arena)
        laid = dict(manifest, arrays=arena.arrays, arrays_start=fixed + reserve)
        if len(manifest_bytes(laid)) <= reserve:
            return laid, arena.size
        reserve *= 2


class Segment:
    """A mapped segment: its header, worker slots, manifest and array views."""

    def __init__(self, path: str, fd: int, mm: mmap.mmap, *, owner: bool, manifest: dict | None = None):
        self.path = path
        self.fd = fd
        self.owner = owner
        self._mmap = mm
        self.buffer = np.frombuffer(mm, dtype=np.uint8)
        self.header = ffi.cast("rv_header_t *", ffi.from_buffer(self.buffer))
        if manifest is None:  # attaching: the layout is what the segment says
            workers_off = self.header.workers_off
            start, length = self.header.manifest_off, self.header.manifest_len
            manifest = json.loads(bytes(self.buffer[start : start + length]))
        else:  # the learner's own: never read back from memory any worker can write
            workers_off = ffi.sizeof("rv_header_t")
        self.slots = ffi.cast("rv_worker_slot_t *", ffi.cast("char *", self.header) + workers_off)
        self.manifest = manifest
        self.arrays = array_views(self.buffer, self.manifest["arrays"])

    # ---- learner side ----

    @classmethod
    def create(cls, manifest: dict, size: int, num_envs: int, num_workers: int) -> "Segment":
        """Creates and maps a new segment holding ``manifest`` (learner only),
        laid out by ``lay_out``, of ``size`` bytes."""
        sweep_stale()
        path = os.path.join(SHM_DIR, f"{NAME_PREFIX}{os.getpid()}.{secrets.token_hex(6)}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            header_size = ffi.sizeof("rv_header_t")
            workers_off = header_size
            manifest_off = workers_off + num_workers * ffi.sizeof("rv_worker_slot_t")
            blob = manifest_bytes(manifest)
            if manifest_off + len(blob) > manifest["arrays_start"]:
                raise ValueError("manifest overflows its reserved space: lay it out with lay_out")
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            mm[manifest_off : manifest_off + len(blob)] = blob
            header = ffi.cast("rv_header_t *", ffi.from_buffer(mm))
            header.version = lib.RV_FORMAT_VERSION
            header.header_size = header_size
            header.total_size = size
            header.num_envs = num_envs
            header.num_workers = num_workers
            header.workers_off = workers_off
            header.manifest_off = manifest_off
            header.manifest_len = len(blob)
            header.learner_pid = os.getpid()
            del header
            struct.pack_into("<Q", mm, 0, lib.RV_MAGIC)  # last: the segment is now valid
            return cls(path, fd, mm, owner=True, manifest=json.loads(blob))
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise

    def unlink(self) -> None:
        """Removes the /dev/shm name; mappings stay valid. Idempotent."""
        if self.owner and self.path:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.path = ""

    def offset_of(self, view: np.ndarray) -> int:
        """Where ``view``, an array over this segment, starts in it."""
        return view.__array_interface__["data"][0] - self.buffer.__array_interface__["data"][0]

    def array_at(self, offset: int, shape: tuple, dtype: np.dtype) -> np.ndarray:
        """A new C-ordered array at ``offset`` whose base is the mapping
        itself. numpy hands every array derived from an array the first base
        that owns its memory or is not an array: here the new array, so each
        view, torch tensor or DLPack capsule made from it refers to it, and a
        weak reference to it says when every one of them is gone."""
        return np.ndarray(shape, dtype, self._mmap, offset)

    def slot(self, index: int):
        return self.slots + index  # a pointer: C calls take it, fields read through it

    def close(self) -> None:
        """Unmaps the segment (views into it must be dropped first)."""
        self.unlink()
        self.arrays = {}
        self.buffer = None
        self.header = self.slots = None
        try:
            self._mmap.close()
        except BufferError:
            pass  # a caller still holds a view (copy=False); the GC unmaps later
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # ---- worker side ----

    @classmethod
    def attach(cls, path: str, read_only: bool = False) -> "Segment":
        """Maps an existing segment by path and checks its magic and version
        (``read_only``: a monitor's mapping, which cannot write into it)."""
        fd = os.open(path, os.O_RDONLY if read_only else os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            if size < ffi.sizeof("rv_header_t"):
                raise ValueError(f"{path} is not a rock_vec segment (size {size})")
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | (0 if read_only else mmap.PROT_WRITE))
            magic, version = struct.unpack_from("<QI", mm, 0)
            if magic != lib.RV_MAGIC or version != lib.RV_FORMAT_VERSION:
                mm.close()
                raise ValueError(
                    f"{path} is not a rock_vec segment of format {lib.RV_FORMAT_VERSION} "
                    f"(magic {magic:#x}, version {version})"
                )
            return cls(path, fd, mm, owner=False)
        except BaseException:
            os.close(fd)
            raise


def stale_segments() -> list[str]:
    """Paths of rock_vec segments in /dev/shm whose learner process is gone."""
    found = []
    try:
        names = os.listdir(SHM_DIR)
    except FileNotFoundError:
        return found
    for name in names:
        if not name.startswith(NAME_PREFIX):
            continue
        try:
            pid = int(name[len(NAME_PREFIX) :].split(".")[0])
        except ValueError:
            continue
        if not pid_alive(pid):
            found.append(os.path.join(SHM_DIR, name))
    return found


def sweep_stale() -> list[str]:
    """Unlinks segments left by learners that died before unlinking them,
    and drops those learners' listings."""
    removed = []
    for path in stale_segments():
        try:
            os.unlink(path)
            removed.append(path)
        except OSError:
            pass
        registry.forget_learner(int(os.path.basename(path)[len(NAME_PREFIX):].split(".")[0]))
    return removed
