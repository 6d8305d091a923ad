"""The memory allocator of a run on the CPU: mimalloc, keeping what it frees, for glibc's malloc.

XLA's CPU runtime allocates each run of a program its temporary buffer (4.3 GiB for E2D2's
iteration at the paper's recipe, 2.8 GiB for E1D1's) and frees it when the run ends. glibc
serves a block that large with mmap and returns it with munmap, so every iteration faults in
and zeroes all of it anew: about a million page faults and seconds of the kernel's time an
iteration. mimalloc, told to keep freed memory (no purge) and to serve blocks of any size from
its arenas, hands the next run the same pages, already mapped.

The dynamic loader picks the allocator when a process starts (LD_PRELOAD), so `main.py` calls
`use_mimalloc()` first: on Linux, for a run on the CPU, with the `cmeel-mimalloc` wheel
installed (requirements.txt), it re-executes the same command with the library preloaded.
MSAGAN_ALLOCATOR=system keeps glibc's. A notebook or a script of your own gets it when started
as `env $(python -m msagan_jax.allocator) jupyter lab`. Nothing here imports jax.
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import sys
from collections.abc import Mapping

SWITCH = "MSAGAN_ALLOCATOR"  # mimalloc (the default) or system
CHOICES = ("mimalloc", "system")
# Set in the re-executed process: it never re-executes again, whatever the loader did.
_DONE = "MSAGAN_ALLOCATOR_SET"
# mimalloc's own settings (environment variables it reads at start). It returns freed memory
# to the OS after 10 ms by default (a purge), and serves blocks over 2 GiB straight from
# mmap/munmap: the very cost this module exists to avoid. A user's own values win.
MIMALLOC_OPTIONS = {"MIMALLOC_PURGE_DELAY": "-1", "MIMALLOC_ARENA_MAX_OBJECT_SIZE": "1TiB"}


def library() -> pathlib.Path | None:
    """libmimalloc's path in the installed cmeel-mimalloc wheel, or None without it."""
    try:
        files = importlib.metadata.files("cmeel-mimalloc") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = sorted(pathlib.Path(f.locate()) for f in files
                   if f.name.startswith("libmimalloc.so"))
    return next((path for path in found if path.is_file()), None)


def choice(environ: Mapping[str, str] = os.environ) -> str:
    """MSAGAN_ALLOCATOR's value (default mimalloc); SystemExit in one line for another one."""
    value = environ.get(SWITCH, "") or CHOICES[0]
    if value not in CHOICES:
        raise SystemExit(f"error: {SWITCH}={value!r}: expected one of {', '.join(CHOICES)}")
    return value


def preload_environment(environ: Mapping[str, str], lib: pathlib.Path | None,
                        platform: str = sys.platform) -> dict[str, str] | None:
    """The environment to re-execute with so that mimalloc serves the process, or None to
    carry on as it is: not Linux, no library, MSAGAN_ALLOCATOR=system, done already, or a
    run not on the CPU (JAX_PLATFORMS, as `console.choose_platform` leaves it, is not "cpu":
    an accelerator's memory is not malloc's)."""
    if choice(environ) == "system" or environ.get(_DONE):
        return None
    if platform != "linux" or lib is None or environ.get("JAX_PLATFORMS") != "cpu":
        return None
    return mimalloc_environment(environ, lib)


def mimalloc_environment(environ: Mapping[str, str], lib: pathlib.Path) -> dict[str, str]:
    """`environ` with `lib` preloaded (before the user's own LD_PRELOAD) and MIMALLOC_OPTIONS
    (a user's own values win): the environment of any process, ours or not, to run on it."""
    env = dict(environ)
    env["LD_PRELOAD"] = ":".join(p for p in (str(lib), environ.get("LD_PRELOAD", "")) if p)
    for name, value in MIMALLOC_OPTIONS.items():
        env.setdefault(name, value)
    env[_DONE] = "1"
    return env


def use_mimalloc(environ: Mapping[str, str] = os.environ) -> None:
    """Re-executes this command (same interpreter, options and arguments) with mimalloc
    preloaded when `preload_environment` says so; returns otherwise. Call it before anything
    starts threads or imports jax: the process is replaced."""
    env = preload_environment(environ, library())
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def in_use() -> bool:
    """Whether mimalloc is loaded in this process (Linux: from /proc/self/maps)."""
    try:
        return "libmimalloc" in pathlib.Path("/proc/self/maps").read_text()
    except OSError:
        return False


def main() -> None:
    """Prints the variables that preload mimalloc as a run would, for `env`: a notebook server
    or a script of your own started with them gets it too."""
    lib = library()
    if sys.platform != "linux" or lib is None:
        raise SystemExit("error: mimalloc is preloaded on Linux only, from the cmeel-mimalloc "
                         "wheel (pip install -r requirements.txt)")
    env = mimalloc_environment(os.environ, lib)
    print(" ".join(f"{name}={env[name]}" for name in ("LD_PRELOAD", *MIMALLOC_OPTIONS)))


if __name__ == "__main__":
    main()
