"""Builds csrc/tests/test_core.c (the C core's own test program) and runs it:
once under ThreadSanitizer, once optimised (-O2) under UndefinedBehaviorSanitizer
(plain -O2 where the UBSAN runtime is missing).

Needs gcc with libtsan; CI installs both, so without them these tests skip.
RV_TEST_SCALE (environment) makes the program's stress parts bigger.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_SOURCE = ROOT / "csrc" / "tests" / "test_core.c"
CORE_SOURCES = [ROOT / "csrc" / name for name in ("rv_futex.c", "rv_signal.c", "rv_pool.c", "rv_blocks.c",
                                                  "rv_heartbeat.c", "rv_spsc_ring.c", "rv_process.c")]
COMMON_FLAGS = ["-std=gnu11", "-g", "-Wall", "-Wextra", "-Werror=incompatible-pointer-types",
                f"-I{ROOT / 'csrc'}", f"-I{ROOT / 'shm'}"]
TSAN_FLAGS = ["-O1", "-fsanitize=thread"]
UBSAN_FLAGS = ["-O2", "-fsanitize=undefined", "-fno-sanitize-recover=undefined"]
PLAIN_FLAGS = ["-O2"]

RUN_TIMEOUT_S = 300  # the program takes ~10 s; a shared, loaded machine may take far longer
FINAL_LINE = re.compile(r"^(\d+) passed, (\d+) failed$", re.MULTILINE)
TSAN_MAPPING_ERROR = "unexpected memory mapping"  # TSAN vs. ASLR layout on some kernels

PROBE_SOURCE = r"""
#include <pthread.h>
#include <stdio.h>
static int x;
static void *f(void *a) { (void)a; __atomic_store_n(&x, 1, __ATOMIC_RELEASE); return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, f, 0); pthread_join(t, 0); printf("ok\n"); return 0; }
"""


def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (CI installs gcc and libtsan; install them to run the C core tests)")
    return gcc


def _compile(gcc: str, flags: list[str], sources: list[Path], out: Path) -> subprocess.CompletedProcess:
    cmd = [gcc, *COMMON_FLAGS, *flags, *map(str, sources), "-lpthread", "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _probe(gcc: str, flags: list[str], tmp: Path) -> str | None:
    """None when gcc builds and runs a threaded program with `flags`, else why not."""
    src = tmp / "probe.c"
    src.write_text(PROBE_SOURCE)
    exe = tmp / f"probe{abs(hash(tuple(flags)))}"
    built = _compile(gcc, flags, [src], exe)
    if built.returncode != 0:
        return built.stderr.strip()[-500:] or f"gcc exited with {built.returncode}"
    ran = _run([str(exe)], timeout=60)
    if ran.returncode != 0 or "ok" not in ran.stdout:
        return (ran.stdout + ran.stderr).strip()[-500:] or f"probe exited with {ran.returncode}"
    return None


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Runs argv; if TSAN refuses the address-space layout, again with ASLR off."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0 and TSAN_MAPPING_ERROR in proc.stderr:
        setarch = shutil.which("setarch")
        if setarch is None:
            pytest.skip("ThreadSanitizer needs ASLR off on this kernel (unexpected memory mapping) "
                        "and setarch is not installed (util-linux; CI has it)")
        proc = subprocess.run([setarch, platform.machine(), "-R", *argv], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)
    return proc


def _build(tmp_path_factory, flags: list[str], name: str) -> Path:
    gcc = _gcc()
    tmp = tmp_path_factory.mktemp(name)
    why = _probe(gcc, flags, tmp)
    if why is not None:
        pytest.skip(f"gcc {' '.join(flags)} cannot build/run a threaded program here "
                    f"(runtime missing? CI installs gcc, libtsan and libubsan): {why}")
    exe = tmp / "rv_test_core"
    built = _compile(gcc, flags, [TEST_SOURCE, *CORE_SOURCES], exe)
    assert built.returncode == 0, f"test_core.c does not build with {flags}:\n{built.stderr}"
    return exe


def _check_run(exe: Path, sanitizer_marker: str) -> None:
    listed = subprocess.run([str(exe), "--list"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    expected = len(listed.stdout.split())
    try:
        proc = _run([str(exe)], timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"{exe.name} ran past {RUN_TIMEOUT_S} s (hung wait?)\n{out[-4000:]}\n{err[-4000:]}")
    failing = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    report = (f"{exe.name} exited with {proc.returncode}; failing: {failing or 'none reported'}\n"
              f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-8000:]}")
    if sanitizer_marker in proc.stdout + proc.stderr:
        pytest.fail(f"sanitizer report ({sanitizer_marker!r}):\n{report}", pytrace=False)
    if proc.returncode != 0 or failing:
        pytest.fail(report, pytrace=False)
    lines = FINAL_LINE.findall(proc.stdout)
    assert lines, report
    passed, failed = map(int, lines[-1])
    assert failed == 0, report
    assert passed == expected > 0, f"{passed} tests passed, {expected} listed\n{report}"


def test_c_core_is_clean_under_thread_sanitizer(tmp_path_factory):
    exe = _build(tmp_path_factory, TSAN_FLAGS, "tsan")
    _check_run(exe, "WARNING: ThreadSanitizer")


def test_c_core_passes_optimised_under_undefined_behaviour_sanitizer(tmp_path_factory):
    gcc = _gcc()
    flags = UBSAN_FLAGS if _probe(gcc, UBSAN_FLAGS, tmp_path_factory.mktemp("ubsan_probe")) is None else PLAIN_FLAGS
    exe = _build(tmp_path_factory, flags, "ubsan" if flags is UBSAN_FLAGS else "plain")
    _check_run(exe, "runtime error:")

