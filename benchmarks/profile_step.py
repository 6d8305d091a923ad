"""Which XLA operations an iteration spends its time in: a jax.profiler trace, read per op.

    python -m benchmarks.profile_step --out /tmp/prof [--structure e2d2] [--d_steps 1]
        [--batch_size 16] [--image_size 128] [--conv_impl matmul] [--top 30]
        [--compute_dtype bfloat16] [--recipe quickstart]
        [--set d_width=32 --set d_spectral_norm=True]
        [--perf]   # CPU samples by library (Linux perf) instead of a trace

Compiles the training iteration with XLA's optimized HLO dumped to <out>/hlo, traces 2
iterations into <out>/trace, then lists the operations (thunks) by time with the layer each
comes from (the HLO's op_name: `jvp(...)` is the forward pass, `transpose(jvp(...))` the
backward, `while/...` the D steps) and totals by kind. Reading the trace needs xprof, which
conflicts with nothing here but is no dependency: `pip install xprof` (any environment), then
`python -m benchmarks.profile_step --analyze /tmp/prof` reads what a run wrote.

Times are per iteration, each operation's from its start to its end: an operation XLA runs on
its thread pool (Eigen's convolutions) counts any wait for a busy pool, may use every core
meanwhile, and can overlap another, so the total is not the wall time; the busy share of each
pool thread says how full the cores were. `--d_steps 1` isolates the G step (the D steps'
share shrinks).

`--perf` (Linux, on the CPU) samples the same iterations with `perf record` instead (`perf` on
the PATH, e.g. from linux-tools; nothing else needed) and splits the CPU time by where it ran:
YNNPACK's matrix kernels (XLA's products and most convolutions), its other kernels, Eigen
(the products and convolutions YNNPACK does not take, such as weight gradients), XLA's
compiled fusions (elementwise work, norms, copies), libc's copies, the kernel, Python. These
are CPU samples, not launch-to-end times, so nothing counts twice; and it gives the matrix
kernels' rate: XLA's FLOP count of the iteration over their share of the CPU time.

On a GPU the trace is read by xprof's `hlo_stats` (each HLO operation's own device time, its
FLOP rate and what bounds it): how busy the device was in the iteration's wall time, the
iteration's FLOP/s against the card's bf16 peak, the top operations with their layers, and
the totals by category. The trace can be read on another machine (no GPU needed): copy the
--out folder's run.json and trace/ there, then --analyze it (benchmarks/gpu_check.py's
profile part packs them into one file).
"""

from __future__ import annotations

import argparse
import collections
import glob
import importlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

TRACED_ITERATIONS = 2
RUN_FILE = "run.json"  # what was traced, and how long its iterations took
PERF_HZ = 999
# Where a CPU sample ran, by (shared object, symbol); the first family that matches counts it.
CPU_FAMILIES = (
    ("YNNPACK's matrix kernels", r"\[\.\] ynn::dot_"),
    ("YNNPACK's other kernels", r"\[\.\] (ynn|slinky)::"),
    ("Eigen's products and convolutions", r"\[\.\] .*Eigen::"),
    ("XLA's compiled fusions", r"^\[JIT\]"),
    ("libc's copies and fills", r"^libc\S* \[\.\] __mem(move|cpy|set)"),
    ("allocator", r"\[\.\] (mi_|_mi_|malloc|free|operator (new|delete))"),
    ("the kernel", r"\[k\]"),
    ("Python", r"^libpython"),
    ("other", r""),
)
_WRAPPERS = ("ThreadpoolListener", "ThunkExecutor", "SlinkyThreadPool", "PjRt", "Execute")


def record(args: argparse.Namespace) -> None:
    """Dumps the HLO and traces TRACED_ITERATIONS iterations (after one warm-up); with --perf,
    samples them instead (no dump: the analysis reads none)."""
    perf = _perf_binary() if args.perf else None  # before the compile: a missing perf exits now
    if not perf:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + f" --xla_dump_to={args.out}/hlo"
                                   " --xla_dump_hlo_as_text --xla_dump_hlo_pass_re=^$")
    import jax

    from benchmarks import train_speed
    from msagan_jax import models

    recipe = importlib.import_module(f"configs.{args.recipe}").get_config()
    config = train_speed.make_config(recipe, args.structure, args.batch_size,
                                     args.image_size, args.compute_dtype, args.conv_impl)
    config.d_steps = args.d_steps
    override(config, args.set)
    prepared = train_speed.prepare(config)
    train_speed.run_iterations(prepared, 1)
    if perf:
        sampler = _start_perf(perf, args.out)
        times = train_speed.run_iterations(prepared, TRACED_ITERATIONS)
        _stop_perf(sampler)
    else:
        if os.path.exists(f"{args.out}/perf.data"):  # --analyze reads perf.data where it is
            os.remove(f"{args.out}/perf.data")
        jax.profiler.start_trace(f"{args.out}/trace")
        times = train_speed.run_iterations(prepared, TRACED_ITERATIONS)
        jax.profiler.stop_trace()
    device = jax.devices()[0]
    with open(f"{args.out}/{RUN_FILE}", "w") as f:
        json.dump({"iteration_s": times, "flops": prepared["flops"], "cores": os.cpu_count(),
                   "platform": device.platform, "device_kind": device.device_kind,
                   "structure": config.structure, "batch_size": config.batch_size,
                   "image_size": config.image_size, "compute_dtype": config.compute_dtype,
                   "conv_impl": models.resolve_conv_impl(config.conv_impl)}, f, indent=1)
    print(f"{'sampled' if args.perf else 'traced'} {TRACED_ITERATIONS} iterations: "
          + ", ".join(f"{t:.3f} s" for t in times))


def _perf_binary() -> str:
    """perf's path; exits in one line without it."""
    return shutil.which("perf") or sys.exit(
        "--perf needs Linux perf on the PATH (e.g. apt install linux-tools-generic)")


def _start_perf(perf: str, out: str) -> subprocess.Popen:
    """`perf record` on this process, returned once it is sampling."""
    os.makedirs(out, exist_ok=True)
    data = f"{out}/perf.data"
    if os.path.exists(data):
        os.remove(data)
    sampler = subprocess.Popen([perf, "record", "-e", "cpu-clock", "-F", str(PERF_HZ), "-p",
                                str(os.getpid()), "-o", data],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):  # perf writes its header once attached
        if sampler.poll() is not None:
            error = sampler.stderr.read().decode().strip().splitlines() or ["no message"]
            sys.exit(f"perf record stopped: {error[0]} (kernel.perf_event_paranoid must allow "
                     f"profiling one's own process: 2 or less)")
        if os.path.exists(data) and os.path.getsize(data):
            break
        time.sleep(0.1)
    time.sleep(0.5)
    return sampler


def _stop_perf(sampler: subprocess.Popen) -> None:
    sampler.send_signal(signal.SIGINT)
    sampler.wait(timeout=120)


def override(config: Any, assignments: list[str]) -> None:
    """Sets each FIELD=VALUE of `assignments` in `config`, the value read as the field's type."""
    for assignment in assignments:
        key, _, value = assignment.partition("=")
        if key not in config:
            raise ValueError(f"--set {assignment}: the config has no field {key!r}")
        kind = type(config[key])
        if kind is bool and value not in ("True", "False"):
            raise ValueError(f"--set {assignment}: {key} is True or False")
        config[key] = value == "True" if kind is bool else kind(value)


def _xplane(out: str) -> str:
    """The newest trace under <out>/trace (its folders are named by time)."""
    path = glob.glob(f"{out}/trace/plugins/profile/*/*.xplane.pb")
    if not path:
        sys.exit(f"no trace under {out}/trace: run without --analyze first")
    return sorted(path)[-1]


def _xprof_tool(out: str, tool: str) -> Any:
    """What one of xprof's tools (trace_viewer, hlo_stats) makes of the newest trace, as JSON
    (needs xprof)."""
    try:
        from xprof.convert import raw_to_tool_data
    except ImportError:
        sys.exit("reading the trace needs xprof: pip install xprof, then --analyze " + out)
    data, _ = raw_to_tool_data.xspace_to_tool_data([_xplane(out)], tool, {})
    return json.loads(data)


def _trace_events(out: str) -> list[dict]:
    """The trace's events as xprof's trace viewer gives them."""
    return _xprof_tool(out, "trace_viewer")["traceEvents"]


def _union(intervals: list[tuple[float, float]]) -> float:
    """The length of the union of (start, stop) intervals."""
    total, stop = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > stop:
            total, stop = total + b - max(a, stop), b
    return total


def op_times(events: list[dict], iterations: int) -> tuple[collections.Counter, dict]:
    """Microseconds per iteration of each XLA operation, from its start to its end, and each
    pool thread's busy share of the traced span.

    XLA's CPU runtime hands some operations (Eigen's convolutions, products) to its thread
    pool: their own event covers only the launch, and an `end: <name>` event marks when the
    pool finished. Such an operation counts from its launch to that end, any wait for a busy
    pool included; it may have used every core meanwhile, so two operations' times can overlap.
    Busy share: the time each pool thread spent in work regions (ThreadpoolListener::Region)
    over the traced span."""
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
               if e.get("name") == "thread_name"}
    begins, ends = collections.defaultdict(list), collections.defaultdict(list)
    regions, span = collections.defaultdict(list), [float("inf"), float("-inf")]
    for e in events:
        thread = threads.get((e.get("pid"), e.get("tid")), "")
        if e.get("ph") != "X" or not ("XLAPjRtCpuClient" in thread or "XLAEigen" in thread):
            continue
        if e["name"].startswith("ThreadpoolListener::Region") and "XLAEigen" in thread:
            regions[thread].append((e["ts"], e["ts"] + e["dur"]))
        if e["name"].startswith(_WRAPPERS):
            continue
        span = [min(span[0], e["ts"]), max(span[1], e["ts"] + e["dur"])]
        if e["name"].startswith("end: "):
            ends[e["name"][5:]].append(e["ts"] + e["dur"])
        else:
            begins[e["name"]].append((e["ts"], e["dur"]))
    times: collections.Counter = collections.Counter()
    for name, starts in begins.items():
        finished, j = sorted(ends.get(name, [])), 0
        for ts, dur in sorted(starts):
            while j < len(finished) and finished[j] < ts:
                j += 1
            end = ts + dur  # no end event: the operation ran on its own thread
            if j < len(finished):
                end, j = finished[j], j + 1
            times[name] += max(dur, end - ts) / iterations
    length = max(span[1] - span[0], 1e-9)
    busy = {thread: _union([(max(a, span[0]), min(b, span[1])) for a, b in spans
                            if b > span[0] and a < span[1]]) / length
            for thread, spans in regions.items()}
    return times, busy


def _hlo_sources(out: str) -> dict[str, tuple[str, str]]:
    """HLO instruction name -> (result shape, op_name), the op_name of a fusion from its body."""
    files = glob.glob(f"{out}/hlo/*jit_train_iteration.cpu_after_optimizations.txt")
    if not files:
        sys.exit(f"no optimized HLO under {out}/hlo")
    instructions, body_source, computation = {}, {}, None
    for line in open(sorted(files)[-1]):
        head = re.match(r"%?([\w.\-]+) .*\{$", line)
        if head and "=" not in line.split("{")[0]:
            computation = head.group(1)
            continue
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+)", line)
        source = re.search(r'op_name="([^"]*)"', line)
        if m and m.group(1) not in instructions:
            calls = re.search(r"calls=%?([\w.\-]+)", line)
            instructions[m.group(1)] = (m.group(2), source.group(1) if source else "",
                                        calls.group(1) if calls else "")
        if computation and source and computation not in body_source:
            body_source[computation] = source.group(1)
    return {name: (shape, source or body_source.get(calls, "?"))
            for name, (shape, source, calls) in instructions.items()}


def cpu_split(report: str) -> tuple[dict[str, float], list[tuple[float, str]], float]:
    """From `perf report --sort dso,sym --stdio` text of a cpu-clock recording: per cent of the
    samples in each of CPU_FAMILIES, (per cent, line) per symbol, and the CPU seconds sampled."""
    shares = {name: 0.0 for name, _ in CPU_FAMILIES}
    symbols, cpu_ns = [], float("nan")
    for line in report.splitlines():
        count = re.match(r"# Event count \(approx\.\): (\d+)", line)
        if count:
            cpu_ns = float(count.group(1))  # cpu-clock counts nanoseconds
        m = re.match(r"\s*([\d.]+)%\s+(.*\S)\s*$", line)
        if not m:
            continue
        share, rest = float(m.group(1)), re.sub(r"\s{2,}", " ", m.group(2))
        family = next(name for name, pattern in CPU_FAMILIES if re.search(pattern, rest))
        shares[family] += share
        symbols.append((share, rest))
    return shares, symbols, cpu_ns / 1e9


def analyze_perf(out: str, top: int) -> None:
    """Prints the CPU samples' split by family and the top symbols (--perf)."""
    report = subprocess.run([_perf_binary(), "report", "-i", f"{out}/perf.data", "--no-children",
                             "--sort", "dso,sym", "--stdio", "-g", "none"],
                            capture_output=True, text=True, check=True).stdout
    shares, symbols, cpu_s = cpu_split(report)
    run = _read_run(out) or sys.exit(f"no {RUN_FILE} in {out}: run with --perf again")
    print(f"CPU time of {TRACED_ITERATIONS} iterations (median "
          f"{statistics.median(run['iteration_s']):.2f} s each, {run['cores']} cores): "
          f"{cpu_s / TRACED_ITERATIONS:.1f} CPU s an iteration, by where it ran:")
    for name, share in shares.items():
        print(f"{share:6.1f}%  {name}")
    matrix_s = shares[CPU_FAMILIES[0][0]] / 100 * cpu_s / TRACED_ITERATIONS
    if matrix_s > 0 and math.isfinite(run["flops"]):
        print(f"the iteration's FLOPs (XLA's count) over the matrix kernels' CPU time: "
              f"{run['flops'] / matrix_s / 1e9:.0f} GFLOP/s a core (a bound: Eigen does some)")
    print("\ntop symbols:")
    for share, line in symbols[:top]:
        print(f"{share:6.1f}%  {line[:110]}")


def _read_run(out: str) -> dict[str, Any]:
    """The run.json that record() wrote beside the trace ({} for a trace without one: CPU)."""
    path = f"{out}/{RUN_FILE}"
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def traced_speed(run: dict[str, Any], peak_tflops: float | None) -> dict[str, Any]:
    """From a run.json: the traced iterations' median time, TFLOP/s and share of the bf16
    peak (None where the peak is unknown)."""
    seconds = statistics.median(run["iteration_s"])
    tflops = run["flops"] / seconds / 1e12
    return {"iteration_s_median": seconds, "tflops": tflops,
            "share_of_peak": tflops / peak_tflops if peak_tflops else None}


def hlo_stats_rows(table: dict[str, Any]) -> list[dict[str, Any]]:
    """xprof's hlo_stats table (a DataTable: `cols` with ids, `rows` of cells `{"v": value}`)
    as one dict per HLO operation, keyed by column id."""
    ids = [col["id"] for col in table["cols"]]
    return [{name: (cell or {}).get("v") for name, cell in zip(ids, row["c"])}
            for row in table.get("rows", [])]


def device_split(rows: list[dict[str, Any]], iterations: int
                 ) -> tuple[list[dict[str, Any]], dict[str, float], float]:
    """From hlo_stats rows: the operations by their own device time (largest first), each with
    `ms` (its self time per iteration); ms per iteration by category; the device's busy ms per
    iteration (the sum of self times: more than the wall time where streams overlap)."""
    ops = sorted(({**row, "ms": float(row.get("total_self_time") or 0) / 1e3 / iterations}
                  for row in rows), key=lambda op: -op["ms"])
    categories: collections.Counter = collections.Counter()
    for op in ops:
        categories[op.get("category") or "?"] += op["ms"]
    return ops, dict(categories.most_common()), sum(op["ms"] for op in ops)


def analyze_device(out: str, top: int, run: dict[str, Any]) -> None:
    """Prints a GPU trace's summary from xprof's hlo_stats: busy share, FLOP rate against the
    card's bf16 peak, the top operations with their layers, the totals by category."""
    from benchmarks import train_speed

    ops, categories, busy_ms = device_split(hlo_stats_rows(_xprof_tool(out, "hlo_stats")),
                                            TRACED_ITERATIONS)
    if not busy_ms:
        sys.exit(f"{_xplane(out)}: xprof's hlo_stats lists no device operations")
    peak, source = train_speed.peak_tflops(run.get("device_kind", ""))
    speed = traced_speed(run, peak)
    wall_ms, tflops = 1e3 * speed["iteration_s_median"], speed["tflops"]
    print(f"{run.get('device_kind')}: {run.get('structure')}, batch {run.get('batch_size')}, "
          f"{run.get('image_size')} px, {run.get('compute_dtype')}, {run.get('conv_impl')}; "
          f"an iteration {wall_ms:.1f} ms (median of {len(run['iteration_s'])} traced), the "
          f"device busy {busy_ms:.1f} ms of it ({busy_ms / wall_ms:.0%})")
    print(f"{run['flops'] / 1e12:.2f} TFLOP an iteration (XLA's count): {tflops:.1f} TFLOP/s"
          + (f", {speed['share_of_peak']:.1%} of the bf16 peak {peak:g} ({source})"
             if peak else ""))
    print("\nown device time per iteration, largest first:")
    for op in ops[:top]:
        rate = float(op.get("model_flop_rate") or 0) / 1e3
        layer = re.sub(r"^jit\(train_iteration\)/", "", str(op.get("tf_op_name") or ""))
        print(f"{op['ms']:8.2f} ms {op['ms'] / busy_ms:6.1%}  {str(op.get('category'))[:14]:14s}"
              f" {rate:7.1f} TFLOP/s  {str(op.get('bound_by') or '')[:10]:10s}"
              f" {str(op.get('hlo_op_name'))[:28]:28s} {layer[-70:]}")
    print("\nby category:")
    for name, ms in categories.items():
        print(f"{ms:8.2f} ms {ms / busy_ms:6.1%}  {name}")


def analyze(out: str, top: int) -> None:
    """Prints the top thunks, then the totals by kind of operation (or, after --perf, the CPU
    samples' split; for a GPU's trace, analyze_device's summary)."""
    if os.path.exists(f"{out}/perf.data"):
        return analyze_perf(out, top)
    run = _read_run(out)
    if run.get("platform", "cpu") != "cpu":
        return analyze_device(out, top, run)
    times, busy = op_times(_trace_events(out), TRACED_ITERATIONS)
    sources = _hlo_sources(out)
    print("pool threads busy: " + ", ".join(f"{share:.0%}" for share in busy.values())
          + f"; operations, start to end, per iteration: {sum(times.values()) / 1e6:.2f} s")
    for name, us in times.most_common(top):
        shape, source = sources.get(name, ("", "?"))
        source = re.sub(r"^jit\(train_iteration\)/", "", source)
        print(f"{us / 1e3:8.1f} ms  {name:30s} {shape[:34]:34s} {source[-90:]}")
    kinds: collections.Counter = collections.Counter()
    for name, us in times.items():
        kinds[re.sub(r"[.\d]+$", "", name)] += us
    print("\nby kind:")
    for kind, us in kinds.most_common(12):
        print(f"{us / 1e3:8.1f} ms  {kind}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/msagan_profile")
    parser.add_argument("--analyze", metavar="DIR", help="read what an earlier run wrote")
    parser.add_argument("--recipe", default="default",
                        help="the config module under configs/ (quickstart: its 64 px recipe)")
    parser.add_argument("--structure", default="e2d2")
    parser.add_argument("--d_steps", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--conv_impl", default=None)
    parser.add_argument("--compute_dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a config field over the recipe's (repeatable)")
    parser.add_argument("--perf", action="store_true",
                        help="sample the CPU with Linux perf instead of tracing (CPU only)")
    args = parser.parse_args(argv)
    if args.analyze:
        return analyze(args.analyze, args.top)
    record(args)
    if args.perf:
        return analyze_perf(args.out, args.top)
    try:
        import xprof  # noqa: F401
    except ImportError:
        print(f"trace in {args.out}; to read it: pip install xprof, then "
              f"python -m benchmarks.profile_step --analyze {args.out}")
        return
    analyze(args.out, args.top)


if __name__ == "__main__":
    from msagan_jax import allocator, console

    console.choose_platform()  # as main.py and train_speed: a CPU run gets mimalloc...
    allocator.use_mimalloc()  # ...(this command again, preloaded), so it profiles what runs
    main()
