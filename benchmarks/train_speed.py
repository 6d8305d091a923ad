"""Speed of one training iteration (d_steps D steps + 1 G step) per editing-network structure.

    python -m benchmarks.train_speed [--structures e2d2,e1d1] [--batch_size 16]
        [--image_size 128] [--iterations 5] [--compute_dtype float32] [--json out.json]
        [--config configs/quickstart.py]   # another recipe (widths, depths) than the paper's
        [--conv_impl matmul|xla|auto]      # the stride-2 layers' form (default: the config's)

For each structure: compile time; the median time of an iteration after compilation (and the
iterations/s and images/s it gives; an iteration reads (d_steps + 1) * batch_size images);
FLOPs per iteration from XLA's cost analysis and the FLOP/s achieved; peak memory (the
device's peak bytes where it reports them, else the process's peak resident memory). The batch
is random: this measures the step, not the input pipeline (benchmarks/input_pipeline_speed.py).
"""

from __future__ import annotations

import json
import resource
import statistics
import time

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from msagan_jax import models, parallel, train

config_flags.DEFINE_config_file("config", "configs/default.py", "Recipe: widths and depths "
                                "(structure, batch_size, image_size come from the flags below).")
flags.DEFINE_list("structures", list(models.STRUCTURES), "Structures to time.")
flags.DEFINE_integer("batch_size", 16, "Global batch of each D or G step.")
flags.DEFINE_integer("image_size", 128, "Pixels.")
flags.DEFINE_integer("iterations", 5, "Timed iterations per structure (after a warm-up one).")
flags.DEFINE_string("compute_dtype", "float32", "float32 or bfloat16.")
flags.DEFINE_string("conv_impl", None, "Stride-2 layers: matmul, xla or auto (default: the "
                    "config's).")
flags.DEFINE_string("json", "", "Also write the results to this JSON file.")
FLAGS = flags.FLAGS


def peak_memory_bytes() -> tuple[int, str]:
    """The device's peak allocation where it reports one (GPU), else the process's peak RSS."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device peak"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process peak RSS"


def time_structure(structure: str) -> dict:
    """Compiles and times one structure's iteration at the paper's recipe."""
    config = FLAGS.config.copy_and_resolve_references()
    config.unlock()
    config.structure = structure
    config.batch_size = FLAGS.batch_size
    config.image_size = FLAGS.image_size
    config.compute_dtype = FLAGS.compute_dtype
    if FLAGS.conv_impl:
        config.conv_impl = FLAGS.conv_impl
    mesh = parallel.create_mesh()
    state = train.create_state(config, 1000, mesh)
    k, size = config.d_steps + 1, config.image_size
    rng = np.random.default_rng(0)
    batch = {"image": rng.uniform(-1, 1, (k, config.batch_size, size, size, 3)).astype(np.float32),
             "label": rng.integers(0, 2, (k, config.batch_size)).astype(np.float32),
             "mask": (rng.uniform(size=(k, config.batch_size, size, size, 1)) > 0.9).astype(
                 np.float32)}
    batch = parallel.global_batch(batch, mesh, example_axis=1)
    step = train.compile_train_iteration(config, 1000, mesh)

    start = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", float("nan"))) if cost else float("nan")

    state, metrics = compiled(state, batch)  # warm-up
    jax.block_until_ready(metrics)
    times = []
    for _ in range(FLAGS.iterations):
        start = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    memory, memory_kind = peak_memory_bytes()
    return {"structure": structure, "conv_impl": models.resolve_conv_impl(config.conv_impl),
            "compile_s": compile_s, "iteration_s": median,
            "iteration_times_s": times, "iterations_per_s": 1 / median,
            "images_per_s": k * config.batch_size / median, "flops_per_iteration": flops,
            "flops_per_s": flops / median, "peak_memory_bytes": memory,
            "peak_memory_kind": memory_kind,
            "g_params": models.parameter_count(state.g_params),
            "d_params": models.parameter_count(state.d_params)}


def main(argv) -> None:
    del argv
    device = jax.devices()[0]
    print(f"{jax.device_count()} x {device.device_kind} ({device.platform}), batch "
          f"{FLAGS.batch_size}, {FLAGS.image_size} px, {FLAGS.compute_dtype}, median of "
          f"{FLAGS.iterations}, stride-2 layers: "
          f"{models.resolve_conv_impl(FLAGS.conv_impl or FLAGS.config.conv_impl)}")
    print("| structure | G params | compile s | s/iteration | iterations/s | images/s | "
          "GFLOP/iteration | GFLOP/s | peak memory GiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    results = []
    for structure in FLAGS.structures:
        r = time_structure(structure)
        results.append(r)
        print(f"| {structure} | {r['g_params']:,} | {r['compile_s']:.1f} | "
              f"{r['iteration_s']:.3f} | {r['iterations_per_s']:.2f} | {r['images_per_s']:.1f} | "
              f"{r['flops_per_iteration'] / 1e9:.0f} | {r['flops_per_s'] / 1e9:.1f} | "
              f"{r['peak_memory_bytes'] / 2 ** 30:.2f} ({r['peak_memory_kind']}) |", flush=True)
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump({"device": str(device.device_kind), "devices": jax.device_count(),
                       "results": results}, f, indent=2)


if __name__ == "__main__":
    app.run(main)
