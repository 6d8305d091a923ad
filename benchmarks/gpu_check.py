"""The GPU check: one bounded run on a lent GPU machine, then a table and a JSON file.

    bash benchmarks/gpu_check.sh                       # on the GPU machine (it calls this)
    GPU_CHECK_TINY=1 JAX_PLATFORMS=cpu bash benchmarks/gpu_check.sh    # tiny, here, on a CPU
    python -m benchmarks.gpu_check --out DIR [--tiny]
        [--parts fp32,profile,torch,main,big,xla,bf16]
        [--budget_s 480] [--faces 2000] [--work DIR]

Parts, run in this order (an order of priority: a part starts only while the budget lasts,
each has its own time limit, and a part cut short keeps what it measured):

  env     GPU, driver, versions, JAX's device kind; a bf16 matrix product's rate (the card's
          measured ceiling, beside its datasheet peak); that every package we import imports.
  fp32    benchmarks.train_speed, the four structures, float32, conv_impl=auto (the form the
          runs take: matmul on a GPU since the H200 run of 2026-12-04).
  profile benchmarks.profile_step's trace of E1D1 at batch 256 in bfloat16, auto: the row of
          the issue's one unmet GPU target (25% of the bf16 peak; its only measurement,
          2026-11-27, predates the matmul form), so second: 2 traced iterations (their time and
          FLOP/s against the peak in the parts table), packed with what was traced as
          <out>/profile.tar.gz, to read on any machine with xprof: mkdir p && tar xzf
          profile.tar.gz -C p && python -m benchmarks.profile_step --analyze p   (device time
          by operation and layer, busy share, FLOP/s).
  torch   PyTorch's E2D2 (benchmarks/torch_reference.py) against ours, E2D2 and E1D1, float32,
          on the same device, alternating torch, ours, torch, ours... in two long-lived worker
          processes (each compiled and warmed up once), medians.
  main    the real job: build celebamask_synthetic/128_n<faces>_s0 with the Python API
          (tfds_celebamask.build_synthetic, one worker per core), train E1D1 + SDE through
          main.py and the grain pipeline for a few hundred iterations (no judge: evaluate=False,
          eval_every=0), then run main.py again with more iterations: it must resume from the
          saved checkpoint. Its images/s with the data loading, beside the random-batch figure.
  big     train_speed, E1D1 at batch 64 and 256, bfloat16 then float32, auto.
  xla     the same with conv_impl=xla (cuDNN's own convolutions) for E1D1 and E2D2, float32
          then bfloat16: the form `auto` does not take on a GPU, kept measured beside it (on
          2026-12-04 matmul was 1.2-1.4x faster; xla needs less memory).
  bf16    train_speed, the four structures, bfloat16, auto.

The budget (GPU): about 480 s after the wheels are installed, so that one device call of 560 s
holds it with the machine's start outside. A compile of one structure's iteration is the
dominant cost (on the first H200 run: 13-22 s float32 and about 40 s bfloat16 at batch 16,
57 / 77 s at batch 256), and this plan has 18 of them; so the parts run in the order above,
later ones get what is left, and the table says which were not reached (GPU_CHECK_PARTS picks
parts for a second call). The first run (budget 380 s, the old order fp32, main, torch, bf16,
big, matmul) got env, 3 of fp32's 4, main, torch and 1 of bf16's 4; the second (2026-12-04,
480 s, the order fp32, matmul, main, big, torch, bf16, with xla the form of fp32, big and bf16)
got env, fp32, matmul, main and 1 of big's 4, and a second call (GPU_CHECK_PARTS=torch,bf16,
budget 250 s) torch and bf16. The order since 2026-12-06 (fp32, profile, torch, main, big, xla,
bf16; not yet run) puts the unmet target's row before the targets met on 2026-12-04.
Without a GPU (and without --tiny) the run stops after the env part. The main part builds
2,000 faces; GPU_CHECK_FACES=10000 builds the standard celebamask_synthetic/128. JAX's
persistent compilation cache (a fresh folder per run) lets the torch and main parts reuse the
fp32 part's programs (E2D2 and E1D1 float32; main.py's iteration is the fp32 part's E1D1 one);
the other parts compile without it, so every compile time in the table is a cold one, though a
structure compiled after another in the same process may reuse its convolution autotuning.

Writes <out>/gpu_check.json (everything), <out>/gpu_check.md (the tables) and one log per
part group (env.log, train_speed.log (the profile part's too), main_job.log,
side_by_side.log) and profile.tar.gz: with gpu_check.sh's console.log, 8 files (the device
tool brings back at most 8), in one folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import pathlib
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.profile_step import RUN_FILE, traced_speed  # stdlib only at import: no JAX

REPO = pathlib.Path(__file__).resolve().parents[1]
STRUCTURES = ("e1d1", "e2d2", "e1d2", "e2d1")  # E1D1 and E2D2 first: the torch part needs them
PARTS = ("fp32", "profile", "torch", "main", "big", "xla", "bf16")
PROFILE_FILE = "profile.tar.gz"
MAX_RETURNED_BYTES = 16 * 2**20  # the device tool brings back no file larger

# The tiny recipe (a CPU check of every code path, not a measurement): narrow, shallow, one D
# step per iteration.
TINY_RECIPE = {"width": 8, "num_down": 2, "num_res_blocks": 1, "d_width": 8, "d_num_layers": 4,
               "d_steps": 1}


@dataclasses.dataclass
class Settings:
    tiny: bool
    image_size: int
    batch_size: int
    iterations: int
    recipe: dict[str, int]
    fp32_structures: tuple[str, ...]
    other_structures: tuple[str, ...]
    xla_structures: tuple[str, ...]
    big_batches: tuple[int, ...]
    big_iterations: int
    torch_rounds: int
    torch_iterations: int
    faces: int
    steps: tuple[int, int]  # main.py's first run, then its resumed run
    checkpoint_every: int
    log_every: int
    budget_s: float
    matmul_n: int
    caps: dict[str, float]  # each part's own time limit, seconds
    min_part_s: float  # a part with less time left than this is not started

    @property
    def dataset_config(self) -> str:
        standard = {64: 4000, 128: 10000, 256: 10000}.get(self.image_size)
        return (str(self.image_size) if self.faces == standard
                else f"{self.image_size}_n{self.faces}_s0")


def settings(tiny: bool, budget_s: float | None = None, faces: int | None = None) -> Settings:
    if tiny:
        return Settings(
            tiny=True, image_size=64, batch_size=2, iterations=1, recipe=dict(TINY_RECIPE),
            fp32_structures=("e1d1", "e2d2"), other_structures=("e1d1",),
            xla_structures=("e1d1",), big_batches=(4,), big_iterations=1,
            torch_rounds=2, torch_iterations=1, faces=faces or 40, steps=(2, 4),
            checkpoint_every=2, log_every=1, budget_s=budget_s or 1500, matmul_n=256,
            caps={name: 600 for name in ("env", "fp32", "build", "train", "resume", "torch",
                                         "bf16", "big_fp32", "big_bf16", "profile",
                                         "xla_fp32", "xla_bf16")},
            min_part_s=10)
    # GPU. The caps from the first run (H200, 2026-11-27, budget 380 s): env 16 s; fp32 121 s
    # for 3 of the 4 structures (compiles 13-22 s, plus each one's start, cost analysis and
    # timing); build of 2,000 faces 20 s on 16 cores; train 200 iterations 26 s; resume 21 s;
    # torch 24 s; bf16 compiles about 40 s a structure at batch 16; E1D1 compiles at batch
    # 64 / 256: 25 / 57 s float32, 39 / 77 s bfloat16. The second (2026-12-04, budget 480 s):
    # env 15 s; fp32 (xla then) 109 s for all 4; matmul 82 s for E1D1 + E2D2 in each dtype
    # (compiles 38 and 17 s float32, 34 and 22 s bfloat16); build 16 s, train 24 s, resume 22 s;
    # torch 63 s without the cache; bf16 (xla) 112 s for all 4; big_bf16 reached only batch 64
    # in its 126 s (compile 35 s), so it gets 200 s: batch 256 is the issue's 25%-of-peak row.
    # profile: E1D1's compile at batch 256 in bf16 (77 s), a warm-up and 2 traced iterations,
    # the trace's collection, and the start: not yet run on a GPU, so 180 s.
    faces = faces or 2000
    return Settings(
        tiny=False, image_size=128, batch_size=16, iterations=10, recipe={},
        fp32_structures=STRUCTURES, other_structures=STRUCTURES,
        xla_structures=("e1d1", "e2d2"), big_batches=(64, 256), big_iterations=5,
        torch_rounds=3, torch_iterations=10, faces=faces, steps=(200, 300),
        checkpoint_every=100, log_every=20, budget_s=budget_s or 480, matmul_n=8192,
        caps={"env": 45, "fp32": 200, "build": max(60, min(180, 30 + 0.012 * faces)),
              "train": 80, "resume": 50, "torch": 60,
              "bf16": 200, "big_fp32": 120, "big_bf16": 200, "profile": 180, "xla_fp32": 90,
              "xla_bf16": 100},
        min_part_s=15)


# --- Running children within the budget ----------------------------------------------------

class Budget:
    """A deadline for the whole run; each part gets min(its cap, what is left)."""

    def __init__(self, total_s: float, reserve_s: float = 5.0):
        self.start = time.monotonic()
        self.deadline = self.start + total_s - reserve_s

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def limit(self, cap: float) -> float:
        return max(0.0, min(cap, self.left()))


_CHILDREN: set[subprocess.Popen] = set()


def _kill(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to the child's process group (main.py then saves a checkpoint), SIGKILL later."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def run_child(command: list[str], timeout_s: float, log_path: pathlib.Path,
              env: dict[str, str], title: str) -> dict[str, Any]:
    """Runs one command (its own process group), output appended to log_path; killed at
    timeout_s. Returns rc, wall_s, timed_out."""
    with open(log_path, "a") as log:
        log.write(f"\n===== {title}: {' '.join(command)} (limit {timeout_s:.0f} s)\n")
        log.flush()
        start = time.monotonic()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=REPO, start_new_session=True)
        _CHILDREN.add(proc)
        timed_out = False
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(proc)
        except BaseException:  # the driver itself is being stopped: stop the child first
            _kill(proc, 3)
            raise
        finally:
            _CHILDREN.discard(proc)
        wall = time.monotonic() - start
        log.write(f"===== {title}: exit status {proc.returncode}, {wall:.1f} s"
                  f"{' (time limit)' if timed_out else ''}\n")
    return {"rc": proc.returncode, "wall_s": wall, "timed_out": timed_out,
            "timeout_s": timeout_s}


def _read_json(path: pathlib.Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tail(path: pathlib.Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# --- Subcommands run in child processes --------------------------------------------------------

class _HideTensorFlow:
    """Makes TensorFlow look uninstalled, as on the GPU image: its modules are not found, every
    other module and distribution is (find_distributions: importlib.metadata still works)."""

    def __init__(self, finders):
        self.finders = finders

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return None
        for finder in self.finders:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                return spec
        return None

    def find_distributions(self, *args, **kwargs):
        for finder in self.finders:
            find = getattr(finder, "find_distributions", None)
            if find:
                yield from find(*args, **kwargs)

    def invalidate_caches(self):
        for finder in self.finders:
            if hasattr(finder, "invalidate_caches"):
                finder.invalidate_caches()


def hide_tensorflow() -> None:
    """Hides TensorFlow from this process's imports from now on (idempotent). The one finder for
    it: tests/conftest.py's run_without_tensorflow calls this too."""
    if not any(isinstance(f, _HideTensorFlow) for f in sys.meta_path):
        sys.meta_path[:] = [_HideTensorFlow(list(sys.meta_path))]


VERSION_PACKAGES = ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin", "flax", "optax",
                    "orbax-checkpoint", "chex", "numpy", "protobuf", "etils", "grain",
                    "tensorflow-datasets", "tensorflow-metadata", "array-record",
                    "ml-collections", "dm-pix", "tensorboardX", "torch", "pillow")
IMPORTS = ("grain", "tensorflow_datasets", "ml_collections", "dm_pix", "tensorboardX",
           "array_record", "orbax.checkpoint", "optax", "flax", "msagan_jax.train",
           "msagan_jax.experiment", "msagan_jax.evaluate", "tfds_celebamask",
           "importlib_resources")


def cmd_env(args: argparse.Namespace) -> None:
    """The environment, as JSON: versions, the GPU, imports, a bf16 matrix product's rate."""
    import importlib.metadata
    import platform

    from benchmarks import machine

    hide_tensorflow()
    info: dict[str, Any] = {"python": platform.python_version(), "cpu": machine.cpu_line(),
                            "cpu_count": os.cpu_count(), "versions": {}, "import_errors": {}}
    for package in VERSION_PACKAGES:
        try:
            info["versions"][package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    if shutil.which("nvidia-smi"):
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             check=False)
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    for module in IMPORTS:
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001  (recorded: the point is to see it)
            info["import_errors"][module] = f"{type(e).__name__}: {e}"[:500]
    info["protobuf_version_error"] = any("Gencode/Runtime" in e
                                         for e in info["import_errors"].values())
    info["tensorflow_imported"] = "tensorflow" in sys.modules

    import jax

    device = jax.devices()[0]
    info.update(backend=jax.default_backend(), platform=device.platform,
                device_kind=device.device_kind, device_count=jax.device_count(),
                devices=[str(d) for d in jax.devices()],
                default_matmul_precision=str(jax.config.jax_default_matmul_precision),
                xla_flags=os.environ.get("XLA_FLAGS", ""))
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
        info["memory_limit_bytes"] = int(stats["bytes_limit"])
    try:
        from benchmarks import train_speed
        info["peak_tflops"], info["peak_source"] = train_speed.peak_tflops(device.device_kind)
    except Exception as e:  # noqa: BLE001
        info["peak_tflops"], info["peak_source"] = None, f"train_speed did not import: {e}"
    pathlib.Path(args.json).write_text(json.dumps(info, indent=2))  # if the product hangs
    n = args.matmul_n if device.platform in ("gpu", "cuda") else min(args.matmul_n, 1024)
    info["matmul"] = bf16_matmul_rate(n)
    pathlib.Path(args.json).write_text(json.dumps(info, indent=2))
    print(json.dumps(info, indent=2))


def bf16_matmul_rate(n: int) -> dict[str, Any]:
    """The measured ceiling (METHOD.md: measure the two ceilings once): an n^3 bf16 product's
    TFLOP/s, five runs of ten products."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.bfloat16)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.bfloat16)
    product = jax.jit(lambda x, y: x @ y)
    product(a, b).block_until_ready()
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            out = product(a, b)
        out.block_until_ready()
        rates.append(2 * n ** 3 * 10 / (time.perf_counter() - start))
    return {"n": n, "dtype": "bfloat16", "tflops_median": statistics.median(rates) / 1e12,
            "tflops_runs": [r / 1e12 for r in rates]}


def cmd_build(args: argparse.Namespace) -> None:
    """Builds the synthetic dataset with the Python API (no TensorFlow), timed, as JSON."""
    hide_tensorflow()
    start = time.perf_counter()
    import tfds_celebamask
    from tfds_celebamask.celebamask import pool

    imported = time.perf_counter()
    standard = {64: 4000, 128: 10000, 256: 10000}[args.resolution]
    builder = tfds_celebamask.build_synthetic(
        data_dir=args.data_dir, resolution=args.resolution,
        num_faces=None if args.faces == standard else args.faces, seed=0)
    done = time.perf_counter()
    splits = {name: split.num_examples for name, split in builder.info.splits.items()}
    result = {"dataset": f"celebamask_synthetic/{builder.builder_config.name}",
              "full_name": builder.info.full_name, "faces": args.faces, "splits": splits,
              "import_s": imported - start, "build_s": done - imported,
              "faces_per_s": args.faces / (done - imported),
              "workers": pool.worker_count(args.faces), "cpu_count": os.cpu_count(),
              "tensorflow_imported": "tensorflow" in sys.modules}
    pathlib.Path(args.json).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def cmd_exec_main(args: argparse.Namespace) -> None:
    """Runs main.py with these arguments, TensorFlow hidden (as on the GPU image)."""
    import runpy

    hide_tensorflow()
    sys.argv = [str(REPO / "main.py"), *args.main_args]
    runpy.run_path(str(REPO / "main.py"), run_name="__main__")


def _say(kind: str, payload: dict[str, Any]) -> None:
    print(f"@@{kind} {json.dumps(payload)}", flush=True)


# A timing worker's setup: what it says when READY, and how it times n iterations of a structure.
Timed = Callable[[str, int], list[float]]


def _ours_worker(args: argparse.Namespace,
                 recipe: dict[str, Any]) -> tuple[dict[str, Any], Timed]:
    """Our structures, prepared (compiled) and warmed up once."""
    from msagan_jax import console
    console.choose_platform()
    import jax

    from benchmarks import train_speed
    from configs import default

    base = default.get_config()
    base.update(recipe)
    prepared = {}
    for s in args.structures.split(","):
        prepared[s] = train_speed.prepare(train_speed.make_config(
            base, s, args.batch_size, args.image_size, "float32", args.conv_impl))
        train_speed.run_iterations(prepared[s], 1)  # warm-up
    ready = {"device": jax.devices()[0].device_kind, "platform": jax.devices()[0].platform,
             "compile_s": {s: p["compile_s"] for s, p in prepared.items()},
             "conv_impl": {s: train_speed.models.resolve_conv_impl(p["config"].conv_impl)
                           for s, p in prepared.items()}}

    def timed(s: str, n: int) -> list[float]:
        return train_speed.run_iterations(prepared[s], n)
    return ready, timed


def _torch_worker(args: argparse.Namespace,
                  recipe: dict[str, Any]) -> tuple[dict[str, Any], Timed]:
    """PyTorch's E2D2 (the only structure it has), on one fixed batch, warmed up once."""
    import torch

    from benchmarks import machine
    from benchmarks import torch_reference as tr

    device = "cuda" if torch.cuda.is_available() else "cpu"
    d_steps = recipe.get("d_steps", 3)
    reference = tr.Reference(
        image_size=args.image_size, width=recipe.get("width", 32),
        num_down=recipe.get("num_down", 3), num_res_blocks=recipe.get("num_res_blocks", 4),
        d_width=recipe.get("d_width", 32), d_num_layers=recipe.get("d_num_layers", 6),
        device=device)
    if not recipe:
        tr.check_parameter_counts(reference, args.image_size)
    batch = tr.random_batch(d_steps + 1, args.batch_size, args.image_size, reference.device)
    reference.iteration(batch)  # warm-up: allocator, cuDNN's choices
    tr._sync(reference.device)
    name = (torch.cuda.get_device_name(reference.device) if device == "cuda"
            else machine.cpu_line())
    ready = {"device": name, "platform": device, "torch": torch.__version__,
             "threads": torch.get_num_threads(),
             "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
             "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
             "cudnn_benchmark": torch.backends.cudnn.benchmark}

    def timed(s: str, n: int) -> list[float]:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            reference.iteration(batch)
            tr._sync(reference.device)
            times.append(time.perf_counter() - start)
        return times
    return ready, timed


def cmd_worker(args: argparse.Namespace) -> None:
    """A long-lived timing worker for the torch part: sets up, warms up, says READY, then
    answers `time <structure> <n>` lines with the times of n iterations, until `quit`."""
    setup = _ours_worker if args.system == "ours" else _torch_worker
    ready, timed = setup(args, json.loads(args.recipe))
    _say("READY", ready)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        if words[0] == "time":
            _say("RESULT", {"structure": words[1], "times": timed(words[1], int(words[2]))})


# --- The parts ---------------------------------------------------------------------------------

class Run:
    """One run of the check: settings, budget, child environment, results."""

    def __init__(self, s: Settings, out: pathlib.Path, work: pathlib.Path):
        self.s, self.out, self.work = s, out, work
        self.budget = Budget(s.budget_s)
        self.py = sys.executable
        env = dict(os.environ)
        from msagan_jax import console  # stdlib only: does not import jax
        console.choose_platform(env)
        env["PYTHONUNBUFFERED"] = "1"
        if s.tiny and env.get("JAX_PLATFORMS") == "cpu" and \
                "xla_backend_optimization_level" not in env.get("XLA_FLAGS", ""):
            # As the tests do: the CPU compiles tiny graphs faster without XLA's backend
            # optimisations (a code-path check, not a measurement).
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "")
                                + " --xla_backend_optimization_level=0").strip()
        self.env = env
        self.current = ""  # the part running now (for an interrupted run's report)
        # JAX's persistent compilation cache, for the parts that run a program an earlier part
        # compiled (fp32 writes; main and torch read). The other train_speed parts compile
        # without it, so that every compile time in the table is a cold one.
        self.cache_env = {**env, "JAX_COMPILATION_CACHE_DIR":
                          env.get("JAX_COMPILATION_CACHE_DIR") or str(work / "jax_cache")}
        self.report: dict[str, Any] = {
            "settings": dataclasses.asdict(s), "dataset": f"celebamask_synthetic/"
            f"{s.dataset_config}", "out": str(out), "work": str(work), "parts": {},
            "env": {}, "train_speed": [], "not_run": [], "side_by_side": None, "main_job": None}

    # Bookkeeping.
    def part_limit(self, name: str) -> float | None:
        limit = self.budget.limit(self.s.caps[name])
        return limit if limit >= self.s.min_part_s else None

    def record(self, name: str, status: str, **fields: Any) -> None:
        self.report["parts"][name] = {"status": status, **fields}
        self.save()

    def save(self) -> None:
        self.report["elapsed_s"] = time.monotonic() - self.budget.start
        (self.out / "gpu_check.json").write_text(json.dumps(self.report, indent=2,
                                                            default=str) + "\n")

    def child(self, name: str, command: list[str], log: str, limit: float,
              env: dict[str, str] | None = None) -> dict[str, Any]:
        self.current = name
        return run_child(command, limit, self.out / log, env or self.env, name)

    def recipe_flags(self, prefix: str = "--config.") -> list[str]:
        return [f"{prefix}{k}={v}" for k, v in self.s.recipe.items()]

    # env
    def part_env(self) -> None:
        limit = self.part_limit("env")
        path = self.work / "env.json"
        r = self.child("env", [self.py, "-m", "benchmarks.gpu_check", "env", "--json", str(path),
                               "--matmul_n", str(self.s.matmul_n)], "env.log", limit or 30)
        info = _read_json(path) or {}
        if info.get("protobuf_version_error"):
            # tensorflow-metadata's generated code is newer than the image's protobuf: try the
            # rest of the run with protobuf's own switch for this check.
            self.env["TEMPORARILY_DISABLE_PROTOBUF_VERSION_CHECK"] = "true"
            r = self.child("env (protobuf check off)", [
                self.py, "-m", "benchmarks.gpu_check", "env", "--json", str(path),
                "--matmul_n", str(self.s.matmul_n)], "env.log", limit or 30)
            info = _read_json(path) or info
            info["protobuf_check_disabled"] = True
        self.report["env"] = info
        status = "ok" if r["rc"] == 0 and not info.get("import_errors") else "failed"
        note = "; ".join(f"{m}: {e}" for m, e in info.get("import_errors", {}).items())[:400]
        if r["rc"] == 0 and info.get("backend") not in ("gpu", "cuda") and not self.s.tiny:
            note = f"JAX runs on {info.get('backend')}, not a GPU. " + note
            status = "failed"
        self.record("env", status, **r, note=note or _tail(self.out / "env.log", 3)[-300:]
                    if r["rc"] else note)

    # train_speed runs
    def train_speed(self, name: str, dtype: str, conv_impl: str, structures: tuple[str, ...],
                    batch_sizes: tuple[int, ...], iterations: int) -> None:
        rows = [(s, b) for s in structures for b in batch_sizes]
        limit = self.part_limit(name)
        if limit is None:
            self.not_run(name, dtype, conv_impl, rows, "no budget left")
            self.record(name, "skipped", note="no budget left")
            return
        path = self.work / f"train_speed_{name}.json"
        command = [self.py, "-m", "benchmarks.train_speed", "--config=configs/default.py",
                   *self.recipe_flags(), f"--structures={','.join(structures)}",
                   f"--batch_sizes={','.join(map(str, batch_sizes))}",
                   f"--image_size={self.s.image_size}", f"--iterations={iterations}",
                   f"--compute_dtype={dtype}", f"--conv_impl={conv_impl}", f"--json={path}"]
        r = self.child(name, command, "train_speed.log", limit,
                       self.cache_env if name == "fp32" else None)
        data = _read_json(path) or {}
        results = data.get("results", [])
        for res in results:
            res["part"] = name
        self.report["train_speed"].extend(results)
        done = {(res["structure"], res["batch_size"]) for res in results}
        missing = [row for row in rows if row not in done]
        reason = ("time limit" if r["timed_out"] else f"exit status {r['rc']}")
        self.not_run(name, dtype, conv_impl, missing, reason)
        status = "ok" if not missing else ("partial" if results else
                                           ("timeout" if r["timed_out"] else "failed"))
        note = "" if not missing or r["timed_out"] else _tail(self.out / "train_speed.log", 4)
        self.record(name, status, **r, note=note[-300:])

    def not_run(self, part: str, dtype: str, conv_impl: str, rows: list[tuple[str, int]],
                reason: str) -> None:
        self.report["not_run"].extend(
            {"part": part, "structure": s, "batch_size": b, "compute_dtype": dtype,
             "conv_impl": conv_impl, "reason": reason} for s, b in rows)

    def part_fp32(self) -> None:
        self.train_speed("fp32", "float32", "auto", self.s.fp32_structures,
                         (self.s.batch_size,), self.s.iterations)

    def part_bf16(self) -> None:
        self.train_speed("bf16", "bfloat16", "auto", self.s.other_structures,
                         (self.s.batch_size,), self.s.iterations)

    def part_big(self) -> None:
        for dtype, name in (("bfloat16", "big_bf16"), ("float32", "big_fp32")):
            self.train_speed(name, dtype, "auto", ("e1d1",), self.s.big_batches,
                             self.s.big_iterations)

    def part_profile(self) -> None:
        limit = self.part_limit("profile")
        if limit is None:
            self.record("profile", "skipped", note="no budget left")
            return
        folder = self.work / "profile"
        command = [self.py, "-m", "benchmarks.profile_step", "--out", str(folder),
                   "--structure", "e1d1", "--batch_size", str(self.s.big_batches[-1]),
                   "--image_size", str(self.s.image_size), "--compute_dtype", "bfloat16",
                   "--top", "40", *self.recipe_flags("--set=")]
        r = self.child("profile", command, "train_speed.log", limit)
        packed = pack_profile(folder, self.out / PROFILE_FILE) if r["rc"] == 0 else None
        traced = _read_json(folder / RUN_FILE) if packed is not None else None
        if traced:
            self.report["profile"] = {**traced, **traced_speed(
                traced, self.report["env"].get("peak_tflops")), "file_bytes": packed}
        note = (profile_note(self.report["profile"]) if traced
                else _tail(self.out / "train_speed.log", 4)[-300:])
        self.record("profile", "ok" if traced else
                    ("timeout" if r["timed_out"] else "failed"), **r, note=note)

    def part_xla(self) -> None:
        for dtype, name in (("float32", "xla_fp32"), ("bfloat16", "xla_bf16")):
            self.train_speed(name, dtype, "xla", self.s.xla_structures,
                             (self.s.batch_size,), self.s.iterations)

    # main: build, train, resume
    def main_args(self, workdir: pathlib.Path, steps: int, dataset: str) -> list[str]:
        s = self.s
        args = ["--config=configs/e1d1_sde.py", f"--workdir={workdir}",
                f"--config.dataset={dataset}", f"--config.data_dir={self.work / 'tfds'}",
                f"--config.image_size={s.image_size}", f"--config.batch_size={s.batch_size}",
                f"--config.num_train_steps={steps}",
                f"--config.checkpoint_every={s.checkpoint_every}",
                f"--config.log_every={s.log_every}", "--config.evaluate=False",
                "--config.eval_every=0", *self.recipe_flags()]
        if s.tiny:
            args.append("--config.num_samples=2")
        return args

    def part_main(self) -> None:
        s, job = self.s, {}
        self.report["main_job"] = job
        limit = self.part_limit("build")
        if limit is None:
            self.record("build", "skipped", note="no budget left")
            return
        path = self.work / "build.json"
        r = self.child("build", [self.py, "-m", "benchmarks.gpu_check", "build", "--data_dir",
                                 str(self.work / "tfds"), "--resolution", str(s.image_size),
                                 "--faces", str(s.faces), "--json", str(path)],
                       "main_job.log", limit)
        job["build"] = {**(_read_json(path) or {}), **r}
        if r["rc"] != 0:
            self.record("build", "timeout" if r["timed_out"] else "failed", **r,
                        note=_tail(self.out / "main_job.log", 3)[-300:])
            return
        self.record("build", "ok", **r)
        dataset = job["build"]["dataset"]
        workdir = self.work / "run_e1d1_sde"
        expected_start = 0
        for name, steps in (("train", s.steps[0]), ("resume", s.steps[1])):
            limit = self.part_limit(name)
            if limit is None:
                self.record(name, "skipped", note="no budget left")
                return
            log_start = (self.out / "main_job.log").stat().st_size
            r = self.child(name, [self.py, "-m", "benchmarks.gpu_check", "exec-main", "--",
                                  *self.main_args(workdir, steps, dataset)],
                           "main_job.log", limit, self.cache_env)
            text = (self.out / "main_job.log").read_bytes()[log_start:].decode(errors="replace")
            timing = _read_json(workdir / "timing.json") or {}
            checkpoints = sorted(int(p.name) for p in (workdir / "checkpoints").glob("*")
                                 if p.name.isdigit()) if (workdir / "checkpoints").is_dir() else []
            resumed = re.search(r"resumed from iteration (\d+)", text)
            entry = {**r, "num_train_steps": steps, "timing": timing,
                     "checkpoints": checkpoints,
                     "resumed_from": int(resumed.group(1)) if resumed else None}
            job[name] = entry
            ok = r["rc"] == 0 and bool(checkpoints) and checkpoints[-1] == steps
            if expected_start:  # the resumed run must start at the first run's last checkpoint
                ok = ok and entry["resumed_from"] == expected_start
            note = "" if ok else _tail(self.out / "main_job.log", 4)[-300:]
            self.record(name, "ok" if ok else ("timeout" if r["timed_out"] else "failed"),
                        **r, note=note)
            # A first run stopped by its time limit saved a checkpoint on SIGTERM (exit status
            # 3): the resume is still worth checking, from there.
            if not checkpoints or (not ok and name == "resume"):
                return
            if not ok and not (r["timed_out"] or r["rc"] == 3):
                return
            expected_start = checkpoints[-1]

    # torch
    def part_torch(self) -> None:
        s = self.s
        limit = self.part_limit("torch")
        if limit is None:
            self.record("torch", "skipped", note="no budget left")
            return
        if importlib.util.find_spec("torch") is None:
            self.record("torch", "skipped", note="torch is not installed")
            return
        deadline = time.monotonic() + limit
        self.current = "torch"
        log_path = self.out / "side_by_side.log"
        recipe = json.dumps(s.recipe)
        common = ["--image_size", str(s.image_size), "--batch_size", str(s.batch_size),
                  "--recipe", recipe]
        workers: dict[str, Worker] = {}
        result: dict[str, Any] = {"rounds": [], "iterations": s.torch_iterations}
        self.report["side_by_side"] = result
        try:
            with open(log_path, "a") as log:
                ours_env = dict(self.cache_env)
                if not s.tiny:  # the two share the GPU: JAX must not take 75% of it up front
                    ours_env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")
                workers["torch"] = Worker(
                    [self.py, "-m", "benchmarks.gpu_check", "worker", "--system", "torch",
                     "--structures", "e2d2", *common], self.env, log)
                workers["ours"] = Worker(
                    [self.py, "-m", "benchmarks.gpu_check", "worker", "--system", "ours",
                     "--structures", "e2d2,e1d1", "--conv_impl", "auto", *common], ours_env, log)
                for name, w in workers.items():
                    result[f"{name}_ready"] = w.expect("READY", deadline - time.monotonic())
                plan = [("torch", "e2d2"), ("ours", "e2d2"), ("ours", "e1d1")]
                for r in range(s.torch_rounds):
                    round_times = {}
                    for who, structure in plan:
                        workers[who].send(f"time {structure} {s.torch_iterations}")
                        answer = workers[who].expect("RESULT", deadline - time.monotonic())
                        round_times[f"{who}_{structure}"] = answer["times"]
                    result["rounds"].append(round_times)
                    self.save()
        except (TimeoutError, RuntimeError) as e:
            result["error"] = str(e)
        finally:
            for w in workers.values():
                w.close()
        result.update(summarize_side_by_side(result["rounds"]))
        rounds_done = len(result["rounds"])
        status = ("ok" if rounds_done == s.torch_rounds else
                  "partial" if rounds_done else "failed")
        self.record("torch", status, wall_s=time.monotonic() - (deadline - limit),
                    timeout_s=limit, note=result.get("error", "")[-300:])

    def run(self, parts: list[str]) -> None:
        if "fp32" not in parts:  # no cached programs: the torch part compiles its two itself
            self.s.caps["torch"] += 60
        self.part_env()
        if not self.s.tiny and self.report["env"].get("backend") not in ("gpu", "cuda"):
            # Full-size runs on a CPU would only spend the lease: stop with the env part's note.
            for name in parts:
                self.record(name, "skipped", note="JAX sees no GPU (see the env part)")
            self.finish()
            return
        steps = {"fp32": self.part_fp32, "main": self.part_main, "torch": self.part_torch,
                 "bf16": self.part_bf16, "big": self.part_big, "profile": self.part_profile,
                 "xla": self.part_xla}
        for name in PARTS:
            if name in parts:
                steps[name]()
        self.finish()

    def finish(self) -> None:
        sbs = self.report.get("side_by_side")
        if sbs is not None and "systems" not in sbs:  # interrupted inside the torch part
            sbs.update(summarize_side_by_side(sbs.get("rounds", [])))
        self.report["main_job_speed"] = main_job_speed(self.report)
        self.save()


class Worker:
    """A `gpu_check worker` child: lines starting with @@ are answers, the rest go to the log."""

    def __init__(self, command: list[str], env: dict[str, str], log: Any):
        log.write(f"\n===== {' '.join(command)}\n")
        log.flush()
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=log, env=env, cwd=REPO, text=True, bufsize=1,
                                     start_new_session=True)
        _CHILDREN.add(self.proc)
        self.answers: queue.Queue = queue.Queue()
        self.log = log

        def read() -> None:
            for line in self.proc.stdout:
                if line.startswith("@@"):
                    self.answers.put(line[2:])
                else:
                    log.write(line)
            self.answers.put(None)

        threading.Thread(target=read, daemon=True).start()

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, kind: str, timeout_s: float) -> dict[str, Any]:
        try:
            line = self.answers.get(timeout=max(timeout_s, 0.1))
        except queue.Empty:
            raise TimeoutError(f"no {kind} within the time limit") from None
        if line is None:
            raise RuntimeError(f"worker exited (status {self.proc.wait()}) before {kind}; "
                               "see side_by_side.log")
        got, _, payload = line.partition(" ")
        if got != kind:
            raise RuntimeError(f"expected {kind}, got {got}")
        return json.loads(payload)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.send("quit")
                self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        _kill(self.proc, 5)
        _CHILDREN.discard(self.proc)


# --- Summaries and the tables (pure functions of the report: tests/test_benchmarks.py) -------

def profile_note(p: dict[str, Any]) -> str:
    """The parts table's line for the profile part."""
    share = "" if p["share_of_peak"] is None else f", {100 * p['share_of_peak']:.1f}% of peak"
    return (f"{p['structure']} batch {p['batch_size']} {p['compute_dtype']} {p['conv_impl']}, "
            f"traced: {1e3 * p['iteration_s_median']:.1f} ms an iteration, "
            f"{p['tflops']:.1f} TFLOP/s{share}; {PROFILE_FILE} {p['file_bytes'] / 2**20:.1f} MiB")


def pack_profile(folder: pathlib.Path, target: pathlib.Path,
                 max_bytes: int = MAX_RETURNED_BYTES) -> int | None:
    """profile_step's run.json, newest trace and optimized HLO of the iteration under
    `folder`, as one .tar.gz at `target` with the paths --analyze reads (the HLO left out if
    the file would be over `max_bytes`); its size in bytes, or None when nothing was traced."""
    traces = sorted(folder.glob("trace/plugins/profile/*/*.xplane.pb"))
    if not traces or not (folder / RUN_FILE).is_file():
        return None
    hlo = sorted(folder.glob("hlo/*jit_train_iteration.*after_optimizations.txt"))[-1:]
    for extra in (hlo, []) if hlo else ([],):
        with tarfile.open(target, "w:gz") as tar:
            for path in (folder / RUN_FILE, traces[-1], *extra):
                tar.add(path, arcname=str(path.relative_to(folder)))
        if target.stat().st_size <= max_bytes:
            break
    return target.stat().st_size


def summarize_side_by_side(rounds: list[dict[str, list[float]]]) -> dict[str, Any]:
    """Per system: each round's median and the median of all its times; ours/torch speed
    ratios (torch E2D2 s/it over ours s/it: > 1, ours faster), overall and by round."""
    systems: dict[str, Any] = {}
    for key in ("torch_e2d2", "ours_e2d2", "ours_e1d1"):
        runs = [r[key] for r in rounds if key in r]
        if runs:
            systems[key] = {"round_medians_s": [statistics.median(t) for t in runs],
                            "median_s": statistics.median(t for ts in runs for t in ts)}
    ratios = {}
    torch_ = systems.get("torch_e2d2")
    for key in ("ours_e2d2", "ours_e1d1"):
        if torch_ and key in systems:
            ours = systems[key]
            ratios[key] = {"overall": torch_["median_s"] / ours["median_s"],
                           "by_round": [a / b for a, b in zip(torch_["round_medians_s"],
                                                              ours["round_medians_s"])]}
    return {"systems": systems, "ratios": ratios}


def main_job_speed(report: dict[str, Any]) -> dict[str, Any] | None:
    """main.py's images/s with the data loading (timing.json: the median over its logs, the
    first of each start left out) against train_speed's random-batch E1D1 float32 at the same
    batch in the fp32 part (the form `auto` takes, as main.py's)."""
    job = report.get("main_job") or {}
    timing = (job.get("resume") or {}).get("timing") or (job.get("train") or {}).get("timing")
    if not timing or "images_per_s" not in timing:
        return None
    batch = report["settings"]["batch_size"]
    random = next((r for r in report.get("train_speed", [])
                   if r["structure"] == "e1d1" and r.get("part") == "fp32"
                   and r["batch_size"] == batch), None)
    out = {"images_per_s": timing["images_per_s"], "seconds_per_epoch":
           timing.get("seconds_per_epoch"), "logs": len(timing.get("iterations_per_s_by_log", [])),
           "random_batch_images_per_s": random["images_per_s"] if random else None,
           "random_batch_conv_impl": random["conv_impl"] if random else None}
    out["ratio"] = (timing["images_per_s"] / random["images_per_s"]) if random else None
    return out


def _f(value: Any, spec: str = ".1f", missing: str = "n/a") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    return format(value, spec)


def _gib(value: Any) -> str:
    return "n/a" if value is None else f"{value / 2 ** 30:.2f}"


def _md_row(*cells: Any) -> str:
    """One markdown table row."""
    return "| " + " | ".join(map(str, cells)) + " |"


def _table_head(title: str, header: str, columns: int) -> list[str]:
    """A section's title and its table's two header lines (`header`: the column names)."""
    return [title, "", header, _md_row(*["---"] * columns)]


def _parts_section(report: dict[str, Any]) -> list[str]:
    """Each part's status, time and limit; the run's total against its budget."""
    settings_ = report.get("settings", {})
    lines = _table_head("## Parts", "| part | status | s | limit s | note |", 5)
    for name, p in report.get("parts", {}).items():
        note = str(p.get("note", "")).replace("\n", " ").replace("|", "/")[:160]
        lines.append(_md_row(name, p["status"], _f(p.get("wall_s"), ".0f", "-"),
                             _f(p.get("timeout_s"), ".0f", "-"), note))
    tiny = " (TINY: a code-path check on the CPU, not a measurement)" if settings_.get("tiny") \
        else ""
    return lines + ["", (f"Total {_f(report.get('elapsed_s'), '.0f')} s of a "
                         f"{_f(settings_.get('budget_s'), '.0f')} s budget{tiny}.")]


def _environment_section(env: dict[str, Any]) -> list[str]:
    """The GPU, versions, the measured bf16 product against the datasheet, import errors."""
    versions = env.get("versions", {})
    matmul = env.get("matmul") or {}
    peak = env.get("peak_tflops")
    rows = [("GPU (nvidia-smi)", env.get("nvidia_smi", "none")),
            ("JAX device", (f"{env.get('device_count', '?')} x {env.get('device_kind', '?')} "
                            f"({env.get('backend', '?')})")),
            ("python / jax / jaxlib / flax", (f"{env.get('python', '?')} / "
                                              f"{versions.get('jax', '?')} / "
                                              f"{versions.get('jaxlib', '?')} / "
                                              f"{versions.get('flax', '?')}")),
            ("optax / orbax / grain / tfds / protobuf / torch",
             " / ".join(versions.get(p, "-") for p in ("optax", "orbax-checkpoint", "grain",
                                                       "tensorflow-datasets", "protobuf",
                                                       "torch"))),
            ("bf16 peak, datasheet (dense)", (f"{_f(peak, 'g')} TFLOP/s "
                                              f"({env.get('peak_source', 'n/a')})")),
            (f"bf16 {matmul.get('n', '?')}^3 product, measured",
             f"{_f(matmul.get('tflops_median'), '.1f')} TFLOP/s"
             + (f" ({100 * matmul['tflops_median'] / peak:.0f}% of the datasheet peak)"
                if peak and matmul.get("tflops_median") else "")),
            ("import errors", "; ".join(f"{m}: {e}" for m, e in
                                        env.get("import_errors", {}).items())[:300] or "none")]
    if env.get("protobuf_check_disabled"):
        rows.append(("protobuf", "TEMPORARILY_DISABLE_PROTOBUF_VERSION_CHECK=true was needed"))
    return (_table_head("## Environment", "| what | value |", 2)
            + [_md_row(a, str(b).replace("|", "/")) for a, b in rows])


def _main_job_section(report: dict[str, Any]) -> list[str]:
    """main.py's build, train and resume, and its speed beside the random-batch figure."""
    job = report.get("main_job")
    if job is None:
        return []
    lines = _table_head("## Main job: main.py, E1D1 + SDE, grain pipeline, checkpoint and "
                        "resume", "| step | result |", 2)
    build = job.get("build")
    if build:
        lines.append(_md_row(
            f"build {build.get('dataset', report.get('dataset'))} (Python API)",
            f"{build.get('faces', '?')} faces in {_f(build.get('build_s'))} s = "
            f"{_f(build.get('faces_per_s'))} faces/s, workers {build.get('workers', '?')} of "
            f"{build.get('cpu_count', '?')} cores; splits {build.get('splits', '?')}; "
            f"TensorFlow imported: {build.get('tensorflow_imported', '?')}"))
    for name in ("train", "resume"):
        e = job.get(name)
        if not e:
            continue
        t = e.get("timing") or {}
        lines.append(_md_row(
            f"{name} to {e['num_train_steps']} iterations",
            f"exit status {e['rc']} in {_f(e['wall_s'], '.0f')} s; checkpoints "
            f"{e['checkpoints']}; "
            + (f"resumed from {e['resumed_from']}; " if e.get("resumed_from") is not None
               else ("no resume line; " if name == "resume" else ""))
            + f"timing.json {_f(t.get('images_per_s'), '.1f')} images/s"))
    speed = report.get("main_job_speed")
    if speed:
        lines.append(_md_row(
            "with data loading vs random batches",
            f"{_f(speed['images_per_s'])} vs {_f(speed['random_batch_images_per_s'])} images/s "
            f"(E1D1 fp32 {speed['random_batch_conv_impl']}, train_speed) = "
            f"{_f(speed['ratio'], '.2f')}{'x' if speed['ratio'] else ''}"))
    return lines


def _side_by_side_section(report: dict[str, Any]) -> list[str]:
    """PyTorch's E2D2 against ours: per-round and overall medians, speed ratios, the setup."""
    sbs = report.get("side_by_side")
    if sbs is None:
        return []
    settings_ = report.get("settings", {})
    lines = _table_head(
        (f"## PyTorch E2D2 against ours (float32, random batches, {sbs.get('iterations')} "
         "iterations per turn, alternating)"),
        "| system | median s/it by round | median s/it | images/s | speed vs torch E2D2 "
        "(by round) |", 5)
    images = (settings_.get("recipe", {}).get("d_steps", 3) + 1) * settings_.get(
        "batch_size", 16)
    for key, label in (("torch_e2d2", "torch E2D2"), ("ours_e2d2", "ours E2D2"),
                       ("ours_e1d1", "ours E1D1")):
        sys_ = sbs.get("systems", {}).get(key)
        if not sys_:
            continue
        ratio = sbs.get("ratios", {}).get(key)
        if key == "torch_e2d2":
            ratio_text = "1 (reference)"
        elif ratio:
            by_round = ", ".join(f"{x:.2f}" for x in ratio["by_round"])
            ratio_text = f"{ratio['overall']:.2f}x ({by_round})"
        else:
            ratio_text = "n/a"
        lines.append(_md_row(label, ", ".join(f"{m:.4f}" for m in sys_["round_medians_s"]),
                             f"{sys_['median_s']:.4f}", f"{images / sys_['median_s']:.1f}",
                             ratio_text))
    ready = sbs.get("torch_ready")
    if ready:
        lines += ["", (f"torch {ready.get('torch')} on {ready.get('device')}, cuDNN TF32 "
                       f"{ready.get('cudnn_allow_tf32')}, cudnn.benchmark "
                       f"{ready.get('cudnn_benchmark')}; ours: "
                       f"{(sbs.get('ours_ready') or {}).get('conv_impl')}"
                       + (f"; stopped: {sbs['error']}" if sbs.get("error") else ""))]
    return lines


def _training_speed_section(report: dict[str, Any]) -> list[str]:
    """train_speed's rows, then the rows that were not run and why."""
    lines = _table_head(
        (f"## Training speed (benchmarks.train_speed, random batches, "
         f"{report.get('settings', {}).get('image_size')} px; iteration = d_steps D + 1 G)"),
        ("| structure | dtype | conv | batch | compile s | s/it | images/s | TFLOP/s | "
         "% bf16 peak | peak mem GiB | XLA est. GiB |"), 11)
    dtype_short = {"float32": "fp32", "bfloat16": "bf16"}
    for r in report.get("train_speed", []):
        share = r.get("share_of_peak")
        lines.append(_md_row(
            r["structure"], dtype_short.get(r["compute_dtype"], r["compute_dtype"]),
            r["conv_impl"], r["batch_size"], _f(r["compile_s"]), _f(r["iteration_s"], ".4f"),
            _f(r["images_per_s"]), _f(r["flops_per_s"] / 1e12, ".2f"),
            "n/a" if share is None else f"{100 * share:.1f}%",
            _gib(r.get("peak_memory_bytes")), _gib(r.get("program_memory_bytes"))))
    for m in report.get("not_run", []):
        lines.append(f"| {m['structure']} | {dtype_short.get(m['compute_dtype'])} | "
                     f"{m['conv_impl']} | {m['batch_size']} | not run: {m['reason']} "
                     f"| | | | | | |")
    return lines


def format_tables(report: dict[str, Any]) -> str:
    """The report as markdown: parts, environment, main job, torch, training speed (last)."""
    sections = (_parts_section(report), _environment_section(report.get("env") or {}),
                _main_job_section(report), _side_by_side_section(report),
                _training_speed_section(report))
    return "\n\n".join("\n".join(lines) for lines in sections if lines) + "\n"


def write_outputs(report: dict[str, Any], out: pathlib.Path) -> str:
    """Writes gpu_check.json and gpu_check.md into `out`; returns the tables."""
    out.mkdir(parents=True, exist_ok=True)
    tables = format_tables(report)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "gpu_check.md").write_text(tables)
    return tables


# --- Command line ------------------------------------------------------------------------------

def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--out", default=os.environ.get("OUT") or "/tmp/gpu_check_out")
    parser.add_argument("--work", default="", help="scratch folder (default: a new temporary one)")
    parser.add_argument("--tiny", action="store_true",
                        default=os.environ.get("GPU_CHECK_TINY", "") not in ("", "0"))
    parser.add_argument("--parts", default=os.environ.get("GPU_CHECK_PARTS", ",".join(PARTS)))
    parser.add_argument("--budget_s", type=float,
                        default=float(os.environ.get("GPU_CHECK_BUDGET_S") or 0) or None)
    parser.add_argument("--faces", type=int,
                        default=int(os.environ.get("GPU_CHECK_FACES") or 0) or None)
    env = sub.add_parser("env")
    env.add_argument("--json", required=True)
    env.add_argument("--matmul_n", type=int, default=8192)
    build = sub.add_parser("build")
    build.add_argument("--data_dir", required=True)
    build.add_argument("--resolution", type=int, default=128)
    build.add_argument("--faces", type=int, default=2000)
    build.add_argument("--json", required=True)
    main = sub.add_parser("exec-main")
    main.add_argument("main_args", nargs=argparse.REMAINDER)
    worker = sub.add_parser("worker")
    worker.add_argument("--system", choices=("ours", "torch"), required=True)
    worker.add_argument("--structures", default="e2d2")
    worker.add_argument("--image_size", type=int, default=128)
    worker.add_argument("--batch_size", type=int, default=16)
    worker.add_argument("--recipe", default="{}")
    worker.add_argument("--conv_impl", default="auto")
    args = parser.parse_args(argv)
    if args.command == "exec-main" and args.main_args[:1] == ["--"]:
        args.main_args = args.main_args[1:]
    return args


def _driver(args: argparse.Namespace) -> None:
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        sys.exit(f"unknown parts {sorted(unknown)}; choose from {','.join(PARTS)}")
    s = settings(args.tiny, args.budget_s, args.faces)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(args.work or tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"gpu_check: {'TINY (CPU code-path check)' if s.tiny else 'GPU'}; parts env,"
          f"{','.join(parts)}; budget {s.budget_s:.0f} s; out {out}; scratch {work}", flush=True)
    run = Run(s, out, work)

    def stop(signum, frame):  # the outer time limit: print what there is
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    try:
        run.run(parts)
    except KeyboardInterrupt as e:
        run.report["interrupted"] = str(e) or "interrupted"
        if run.current and run.current not in run.report["parts"]:
            run.report["parts"][run.current] = {"status": "interrupted",
                                                "note": run.report["interrupted"]}
        print(f"gpu_check: interrupted ({e}); the tables hold what finished", flush=True)
    finally:
        for proc in list(_CHILDREN):
            _kill(proc, 3)
        run.finish()
        tables = write_outputs(run.report, out)
        print("\n" + tables, flush=True)
        print(f"gpu_check: {out / 'gpu_check.json'}; logs in {out}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    commands: dict[str | None, Callable[[argparse.Namespace], None]] = {
        "env": cmd_env, "build": cmd_build, "exec-main": cmd_exec_main, "worker": cmd_worker,
        None: _driver}
    commands[args.command](args)


if __name__ == "__main__":
    main()
