"""Shared fixtures. pytest puts tests/ on sys.path (rootdir conftest), so
workers import sample_envs the same way the tests do."""

import os

import pytest

from rock_vec.segment.mapping import NAME_PREFIX, SHM_DIR


def _our_segments() -> set[str]:
    return {n for n in os.listdir(SHM_DIR) if n.startswith(f"{NAME_PREFIX}{os.getpid()}.")}


@pytest.fixture(autouse=True)
def no_leftover_segments():
    """Every test leaves /dev/shm as it found it."""
    before = _our_segments()
    yield
    import gc

    gc.collect()
    left = _our_segments() - before
    assert not left, f"segments left behind: {left}"
