"""Speed of one training iteration (d_steps D steps + 1 G step) per editing-network structure.

    python -m benchmarks.train_speed [--structures e2d2,e1d1] [--batch_size 16]
        [--image_size 128] [--iterations 5] [--compute_dtype float32] [--json out.json]
        [--config configs/quickstart.py]   # another recipe (widths, depths) than the paper's
        [--conv_impl matmul|xla|auto]      # the stride-2 layers' form (default: the config's)
        [--batch_sizes 64,256]             # several batches in one process (default: batch_size)
        [--peak_tflops 989.4]              # the card's dense bf16 matrix peak (default: looked
                                           # up by device kind in PEAK_BF16_DENSE_TFLOPS)
        [--count_only]                     # only each iteration's GFLOP (lowered, not compiled
                                           # or run; the same count on every backend)

For each structure (and batch): compile time; the median time of an iteration after
compilation (and the iterations/s and images/s it gives; an iteration reads (d_steps + 1) *
batch_size images); FLOPs per iteration from XLA's cost analysis of the program as lowered,
before optimisation (on a GPU the compiled program's count leaves out the convolutions, which
run as cuDNN calls: it gave 23 GFLOP for E1D1 at batch 64, against 3.8 TFLOP), the FLOP/s
achieved and its
share of the card's dense bf16 matrix peak (float32 runs too are set against that peak: it is
the card's ceiling for this work; "n/a" on a device not in the table); memory: the device's
peak bytes where it reports them (the process's peak so far: with several structures in one
process, the largest so far), else the process's peak resident memory, and XLA's own estimate
for the compiled iteration alone (arguments + outputs + temporaries, less donated buffers). The
batch is random: this measures the step, not the input pipeline
(benchmarks/input_pipeline_speed.py). With --json, the file is rewritten after each structure,
so a run stopped part-way keeps what it measured.

As `main.py` does, a run on the CPU re-executes itself with mimalloc preloaded
(msagan_jax/allocator.py; `MSAGAN_ALLOCATOR=system` keeps glibc's malloc); the header and the
JSON name the allocator.
"""

from __future__ import annotations

import json
import math
import resource
import statistics
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from benchmarks import machine
from msagan_jax import allocator, console, models, parallel, train

# Dense (no sparsity) bf16 Tensor Core peaks, TFLOP/s, by JAX's device_kind: the vendor's
# datasheets (NVIDIA H100 Tensor Core GPU datasheet: H100 SXM 989.4 (1,979 with sparsity), H100
# PCIe 756.5; NVIDIA H200 datasheet: H200 SXM 989 (the same GH100 chip, /work/.library/device/
# H200.md: "dense bf16 about 990 TFLOP/s"); NVIDIA A100 datasheet: 312). Measured here, an
# 8192^3 bf16 product reaches 769-798 on these H100/H200 (KINDS.md): benchmarks/gpu_check.py
# measures that ceiling again on the card it runs on.
PEAK_BF16_DENSE_TFLOPS: dict[str, tuple[float, str]] = {
    "NVIDIA H100 80GB HBM3": (989.4, "NVIDIA H100 SXM5 datasheet, dense BF16"),
    "NVIDIA H100 SXM5 80GB": (989.4, "NVIDIA H100 SXM5 datasheet, dense BF16"),
    "NVIDIA H100 PCIe": (756.5, "NVIDIA H100 PCIe datasheet, dense BF16"),
    "NVIDIA H200": (989.4, "NVIDIA H200 SXM datasheet (GH100, as H100 SXM), dense BF16"),
    "NVIDIA A100-SXM4-80GB": (312.0, "NVIDIA A100 datasheet, dense BF16"),
    "NVIDIA A100-SXM4-40GB": (312.0, "NVIDIA A100 datasheet, dense BF16"),
}

config_flags.DEFINE_config_file("config", "configs/default.py", "Recipe: widths and depths "
                                "(structure, batch_size, image_size come from the flags below).")
flags.DEFINE_list("structures", list(models.STRUCTURES), "Structures to time.")
flags.DEFINE_integer("batch_size", 16, "Global batch of each D or G step.")
flags.DEFINE_list("batch_sizes", [], "Several batches, each timed in turn (default: "
                  "--batch_size alone).")
flags.DEFINE_integer("image_size", 128, "Pixels.")
flags.DEFINE_integer("iterations", 5, "Timed iterations per structure (after a warm-up one).")
flags.DEFINE_string("compute_dtype", "float32", "float32 or bfloat16.")
flags.DEFINE_string("conv_impl", None, "Stride-2 layers: matmul, xla or auto (default: the "
                    "config's).")
flags.DEFINE_float("peak_tflops", 0.0, "The device's dense bf16 matrix peak in TFLOP/s, for "
                   "the share-of-peak column (0: look it up by device kind; n/a if unknown).")
flags.DEFINE_bool("count_only", False, "Only print each iteration's FLOP count (the program "
                  "lowered, neither compiled nor run): cheap, and the same on every backend.")
flags.DEFINE_string("json", "", "Also write the results to this JSON file.")
FLAGS = flags.FLAGS


def peak_tflops(device_kind: str, override: float = 0.0) -> tuple[float | None, str]:
    """(dense bf16 peak in TFLOP/s, its source) for a device kind; (None, ...) when unknown."""
    if override > 0:
        return override, "--peak_tflops"
    if device_kind in PEAK_BF16_DENSE_TFLOPS:
        return PEAK_BF16_DENSE_TFLOPS[device_kind]
    kind = device_kind.upper()
    if "NVL" in kind or "PCIE" in kind:  # lower-power parts with other peaks: not guessed
        return None, f"no entry for {device_kind!r}"
    if "H200" in kind:
        return PEAK_BF16_DENSE_TFLOPS["NVIDIA H200"]
    if "H100" in kind and ("HBM3" in kind or "SXM" in kind):
        return PEAK_BF16_DENSE_TFLOPS["NVIDIA H100 80GB HBM3"]
    return None, f"no entry for {device_kind!r}"


def peak_memory_bytes() -> tuple[int, str]:
    """The device's peak allocation where it reports one (GPU), else the process's peak RSS."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device peak"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process peak RSS"


def program_memory_bytes(compiled: Any) -> int | None:
    """XLA's estimate of the compiled program's device memory: arguments + outputs +
    temporaries - aliased (donated) bytes. None where the backend gives none."""
    try:
        m = compiled.memory_analysis()
        m = m[0] if isinstance(m, (list, tuple)) else m
        return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                   - m.alias_size_in_bytes)
    except Exception:  # noqa: BLE001  (a backend without it; the figure is optional)
        return None


def make_config(base: ml_collections.ConfigDict, structure: str, batch_size: int,
                image_size: int, compute_dtype: str,
                conv_impl: str | None) -> ml_collections.ConfigDict:
    """`base` (a recipe) with the fields that a timing run sets."""
    config = base.copy_and_resolve_references()
    config.unlock()
    config.structure = structure
    config.batch_size = batch_size
    config.image_size = image_size
    config.compute_dtype = compute_dtype
    if conv_impl:
        config.conv_impl = conv_impl
    return config


def iteration_inputs(config: ml_collections.ConfigDict) -> tuple[Any, Any, Any]:
    """(state, a random batch, the jitted iteration) of `config`; the batch is the same every
    call (seed 0)."""
    mesh = parallel.create_mesh()
    state = train.create_state(config, 1000, mesh)
    k, size = config.d_steps + 1, config.image_size
    rng = np.random.default_rng(0)
    batch = {"image": rng.uniform(-1, 1, (k, config.batch_size, size, size, 3)).astype(np.float32),
             "label": rng.integers(0, 2, (k, config.batch_size)).astype(np.float32),
             "mask": (rng.uniform(size=(k, config.batch_size, size, size, 1)) > 0.9).astype(
                 np.float32)}
    batch = parallel.global_batch(batch, mesh, example_axis=1)
    return state, batch, train.compile_train_iteration(config, 1000, mesh)


def prepare(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The state, a random batch and the compiled iteration of `config`, with the compile time,
    XLA's FLOP count and memory estimate."""
    state, batch, step = iteration_inputs(config)
    start = time.perf_counter()
    lowered = step.lower(state, batch)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    return {"config": config, "state": state, "batch": batch, "compiled": compiled,
            "compile_s": compile_s, "flops": lowered_flops(lowered),
            "program_memory_bytes": program_memory_bytes(compiled),
            "images_per_iteration": (config.d_steps + 1) * config.batch_size}


def lowered_flops(lowered: Any) -> float:
    """XLA's FLOP count of a lowered (not yet optimised) program; NaN where it gives none.

    Counted before compilation, so the same on every backend: the compiled program's count
    misses what a backend hands to a library (cuDNN's convolutions on a GPU). A backend that
    is a PJRT plugin (JAX 0.11's CUDA) has no count before compilation: there, the CPU
    backend counts the same lowered program (cpu_flops)."""
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    if cost and "flops" in cost:
        return float(cost["flops"])
    return cpu_flops(lowered)


def cpu_flops(lowered: Any) -> float:
    """The CPU backend's FLOP count of a lowered program (lowered for any backend); NaN where
    JAX has no CPU backend or its private cost-analysis call has moved."""
    try:
        from jax._src import xla_bridge
        from jax._src.lib import _jax
        module = lowered.compiler_ir("hlo").as_hlo_module()
        cost = _jax.hlo_module_cost_analysis(xla_bridge.get_backend("cpu"), module)
    except Exception:  # a figure is missing, not the run
        return float("nan")
    return float(cost.get("flops", float("nan")))


def run_iterations(prepared: dict[str, Any], iterations: int) -> list[float]:
    """Runs `iterations` iterations, each timed to its end; the state moves on (donated)."""
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        prepared["state"], metrics = prepared["compiled"](prepared["state"], prepared["batch"])
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    return times


def summarize(prepared: dict[str, Any], times: list[float],
              peak: float | None = None) -> dict[str, Any]:
    """The figures of one structure's timed iterations."""
    config = prepared["config"]
    median = statistics.median(times)
    flops = prepared["flops"]
    memory, memory_kind = peak_memory_bytes()
    state = prepared["state"]
    achieved = flops / median
    return {"structure": config.structure, "conv_impl": models.resolve_conv_impl(config.conv_impl),
            "compute_dtype": config.compute_dtype, "batch_size": config.batch_size,
            "image_size": config.image_size, "compile_s": prepared["compile_s"],
            "iteration_s": median, "iteration_times_s": times, "iterations_per_s": 1 / median,
            "images_per_s": prepared["images_per_iteration"] / median,
            "flops_per_iteration": flops, "flops_per_s": achieved,
            "peak_tflops": peak,
            "share_of_peak": (achieved / (peak * 1e12)
                              if peak and math.isfinite(achieved) else None),
            "peak_memory_bytes": memory, "peak_memory_kind": memory_kind,
            "program_memory_bytes": prepared["program_memory_bytes"],
            "g_params": models.parameter_count(state.g_params),
            "d_params": models.parameter_count(state.d_params)}


def time_structure(structure: str, batch_size: int | None = None) -> dict:
    """Compiles and times one structure's iteration at the flags' recipe."""
    config = make_config(FLAGS.config, structure, batch_size or FLAGS.batch_size,
                         FLAGS.image_size, FLAGS.compute_dtype, FLAGS.conv_impl)
    prepared = prepare(config)
    run_iterations(prepared, 1)  # warm-up
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = run_iterations(prepared, FLAGS.iterations)
    after = resource.getrusage(resource.RUSAGE_SELF)
    peak, _ = peak_tflops(jax.devices()[0].device_kind, FLAGS.peak_tflops)
    # The kernel's share: on the CPU, XLA maps each run's temporary buffer afresh (README).
    return {**summarize(prepared, times, peak),
            "minor_faults_per_iteration": (after.ru_minflt - before.ru_minflt) / len(times),
            "system_s_per_iteration": (after.ru_stime - before.ru_stime) / len(times),
            "user_s_per_iteration": (after.ru_utime - before.ru_utime) / len(times)}


def count_flops(batch_sizes: list[int]) -> None:
    """Prints each structure's FLOPs per iteration at each batch (--count_only)."""
    print("| structure | batch | GFLOP/iteration |\n| --- | --- | --- |")
    for structure in FLAGS.structures:
        for batch_size in batch_sizes:
            config = make_config(FLAGS.config, structure, batch_size, FLAGS.image_size,
                                 FLAGS.compute_dtype, FLAGS.conv_impl)
            state, batch, step = iteration_inputs(config)
            flops = lowered_flops(step.lower(state, batch))
            print(f"| {structure} | {batch_size} | {flops / 1e9:,.1f} |", flush=True)


def _share(r: dict) -> str:
    return "n/a" if r.get("share_of_peak") is None else f"{100 * r['share_of_peak']:.1f}%"


def main(argv) -> None:
    del argv
    device = jax.devices()[0]
    peak, peak_source = peak_tflops(device.device_kind, FLAGS.peak_tflops)
    batch_sizes = [int(b) for b in FLAGS.batch_sizes] or [FLAGS.batch_size]
    host = machine.cpu_line()
    malloc = "mimalloc" if allocator.in_use() else "system"
    print(f"{jax.device_count()} x {device.device_kind} ({device.platform}; host CPU {host}, "
          f"malloc: {malloc}), "
          f"batch {','.join(map(str, batch_sizes))}, {FLAGS.image_size} px, {FLAGS.compute_dtype}, "
          f"median of {FLAGS.iterations}, stride-2 layers: "
          f"{models.resolve_conv_impl(FLAGS.conv_impl or FLAGS.config.conv_impl)}; dense bf16 "
          f"peak: {'n/a' if peak is None else f'{peak:g} TFLOP/s'} ({peak_source})")
    if FLAGS.count_only:
        count_flops(batch_sizes)
        return
    print("| structure | batch | G params | compile s | s/iteration | iterations/s | images/s | "
          "GFLOP/iteration | GFLOP/s | % of bf16 peak | peak memory GiB | XLA program GiB | "
          "page faults / iteration | kernel CPU s / iteration |")
    print("| --- " * 14 + "|")
    results = []
    for structure in FLAGS.structures:
        for batch_size in batch_sizes:
            r = time_structure(structure, batch_size)
            results.append(r)
            program = ("n/a" if r["program_memory_bytes"] is None
                       else f"{r['program_memory_bytes'] / 2 ** 30:.2f}")
            print(f"| {structure} | {batch_size} | {r['g_params']:,} | {r['compile_s']:.1f} | "
                  f"{r['iteration_s']:.3f} | {r['iterations_per_s']:.2f} | "
                  f"{r['images_per_s']:.1f} | {r['flops_per_iteration'] / 1e9:.0f} | "
                  f"{r['flops_per_s'] / 1e9:.1f} | {_share(r)} | "
                  f"{r['peak_memory_bytes'] / 2 ** 30:.2f} ({r['peak_memory_kind']}) | "
                  f"{program} | {r['minor_faults_per_iteration']:,.0f} | "
                  f"{r['system_s_per_iteration']:.2f} |", flush=True)
            if FLAGS.json:  # after each structure: a run stopped part-way keeps its figures
                with open(FLAGS.json, "w") as f:
                    json.dump({"device": str(device.device_kind), "host_cpu": host,
                               "malloc": malloc, "devices": jax.device_count(),
                               "platform": device.platform, "peak_tflops": peak,
                               "peak_source": peak_source, "results": results}, f, indent=2)


if __name__ == "__main__":
    console.choose_platform()  # as main.py: JAX_PLATFORMS=cpu on a machine with no GPU...
    allocator.use_mimalloc()  # ...so that a CPU run gets main.py's allocator
    app.run(main)
