"""What a figure ran on: the CPU (model, family and model numbers, widest vector extension),
cores, memory and library versions. Standard library only (no jax, no torch).

The vector extension is named because it changes the figures more than anything else here:
two machines of this project's kind, both "AMD EPYC" with 2 cores, one with AVX-512 and one
with AVX2 only, ran our E2D2 iteration in about 15 and 41 s, the PyTorch reference's in about
12 and 32 s (README, Measured: sittings hours apart on the same day).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import Any

# Widest first: the first a CPU has is the one named.
VECTOR_EXTENSIONS = ("avx512f", "avx2", "avx", "sse4_2", "asimd", "neon")


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """The first processor's model name, family and model numbers and its widest vector
    extension in VECTOR_EXTENSIONS (None where absent), from /proc/cpuinfo's text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:  # the first processor's block is enough: the others repeat it
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {"cpu": fields.get("model name") or platform.processor() or "unknown CPU",
            "cpu_family": fields.get("cpu family"), "cpu_model": fields.get("model"),
            "vector": next((v for v in VECTOR_EXTENSIONS if v in flags), None)}


def cpu() -> dict[str, Any]:
    """parse_cpuinfo of this machine's /proc/cpuinfo (the model name alone where there is
    none)."""
    try:
        with open("/proc/cpuinfo") as f:
            return parse_cpuinfo(f.read())
    except OSError:
        return parse_cpuinfo("")


def cpu_line(info: dict[str, Any] | None = None) -> str:
    """E.g. "AMD EPYC (family 23 model 1, avx2)"."""
    info = cpu() if info is None else info
    details = [f"family {info['cpu_family']} model {info['cpu_model']}"
               if info.get("cpu_family") is not None else None, info.get("vector")]
    details = [d for d in details if d]
    return info["cpu"] + (f" ({', '.join(details)})" if details else "")


def version(package: str) -> str:
    """The installed version of `package`, or "not installed"."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def describe() -> dict[str, Any]:
    """The CPU (cpu()), cores, memory, Python and the libraries' versions."""
    try:
        with open("/proc/meminfo") as f:
            mem_gib = int(f.readline().split()[1]) / 2 ** 20
    except (OSError, ValueError, IndexError):
        mem_gib = float("nan")
    return {**cpu(), "cpu_count": os.cpu_count(),
            "cpus_usable": (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                            else None),
            "memory_gib": round(mem_gib, 1), "python": sys.version.split()[0],
            "jax": version("jax"), "jaxlib": version("jaxlib"), "torch": version("torch")}
