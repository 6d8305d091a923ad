"""msagan_jax.allocator: mimalloc for a run on the CPU, keeping XLA's freed buffers mapped."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from msagan_jax import allocator

REPO = pathlib.Path(__file__).resolve().parents[1]
LIB = pathlib.Path("/site/cmeel.prefix/lib/libmimalloc.so.3")
linux_with_mimalloc = pytest.mark.skipif(
    sys.platform != "linux" or allocator.library() is None,
    reason="mimalloc is preloaded on Linux only, from the cmeel-mimalloc wheel")


def test_a_cpu_run_on_linux_is_re_executed_with_mimalloc_preloaded_and_told_to_keep_memory():
    environ = {"JAX_PLATFORMS": "cpu", "LD_PRELOAD": "/opt/other.so", "PATH": "/usr/bin"}
    env = allocator.preload_environment(environ, LIB, platform="linux")
    assert env["LD_PRELOAD"] == f"{LIB}:/opt/other.so"  # the user's own preload is kept
    assert env["MIMALLOC_PURGE_DELAY"] == "-1"
    assert env["MIMALLOC_ARENA_MAX_OBJECT_SIZE"] == "1TiB"
    assert env["PATH"] == "/usr/bin" and env[allocator._DONE] == "1"
    # a user's own mimalloc setting wins over ours
    mine = allocator.preload_environment({**environ, "MIMALLOC_PURGE_DELAY": "100"}, LIB,
                                         platform="linux")
    assert mine["MIMALLOC_PURGE_DELAY"] == "100"


@pytest.mark.parametrize("environ, lib, platform", [
    ({"JAX_PLATFORMS": "cpu", "MSAGAN_ALLOCATOR": "system"}, LIB, "linux"),  # the user's choice
    ({"JAX_PLATFORMS": "cpu", allocator._DONE: "1"}, LIB, "linux"),  # already re-executed
    ({"JAX_PLATFORMS": "cpu"}, None, "linux"),  # the wheel is not installed
    ({"JAX_PLATFORMS": "cpu"}, LIB, "darwin"),  # no LD_PRELOAD there
    ({}, LIB, "linux"),  # a GPU machine: choose_platform left JAX_PLATFORMS unset
    ({"JAX_PLATFORMS": "cuda"}, LIB, "linux"),
])
def test_the_process_is_left_as_it_is_where_mimalloc_is_not_wanted_or_cannot_load(
        environ, lib, platform):
    assert allocator.preload_environment(environ, lib, platform=platform) is None


def test_an_unknown_allocator_is_refused_in_one_line_naming_the_value():
    with pytest.raises(SystemExit, match=r"^error: MSAGAN_ALLOCATOR='tcmalloc': expected one "
                                         r"of mimalloc, system$"):
        allocator.preload_environment({"MSAGAN_ALLOCATOR": "tcmalloc"}, LIB, platform="linux")


# Allocates, fills and frees a block larger than mimalloc's default limit for its arenas
# (2 GiB) twice; prints whether mimalloc serves the process and the page faults of each round.
_TWICE = textwrap.dedent("""
    import ctypes, resource, sys
    from msagan_jax import allocator
    allocator.use_mimalloc()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    size = int(2.25 * 2**30)
    faults = []
    for _ in range(2):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = ctypes.c_void_p(libc.malloc(ctypes.c_size_t(size)))
        ctypes.memset(block, 1, size)
        libc.free(block)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(allocator.in_use(), *faults)
""")


def _twice(**env: str) -> tuple[bool, int, int]:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("MIMALLOC_", "MSAGAN_ALLOCATOR"))}
    result = subprocess.run([sys.executable, "-c", _TWICE], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env={**environ, **env}, check=True)
    in_use, first, second = result.stdout.split()
    return in_use == "True", int(first), int(second)


@linux_with_mimalloc
def test_a_large_block_freed_and_allocated_again_faults_no_page_in_under_mimalloc():
    pages = int(2.25 * 2**30) // 4096
    in_use, first, second = _twice(JAX_PLATFORMS="cpu")
    assert in_use
    assert first > 0 and second < pages // 100, (first, second)
    # glibc's malloc maps such a block afresh: every page faults in again
    in_use, _, second = _twice(JAX_PLATFORMS="cpu", MSAGAN_ALLOCATOR="system")
    assert not in_use
    assert second >= pages * 9 // 10, second


@linux_with_mimalloc
def test_the_module_prints_the_variables_that_give_another_program_the_same_allocator():
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("MIMALLOC_", "LD_PRELOAD"))}
    out = subprocess.run([sys.executable, "-m", "msagan_jax.allocator"], cwd=REPO, env=environ,
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert out == [f"LD_PRELOAD={allocator.library()}", "MIMALLOC_PURGE_DELAY=-1",
                   "MIMALLOC_ARENA_MAX_OBJECT_SIZE=1TiB"]
