"""Ours against the PyTorch reference, on the same machine, in turn: the speed ratio.

Needs PyTorch besides the project (it is not a project dependency):

    pip install torch        # this repo's measurements used torch==2.13.0 (the CPU wheel)
    python -m benchmarks.side_by_side [--structures e2d2,e1d1] [--rounds 2] [--iterations 3]
        [--torch_passes shared] [--torch_malloc system,mimalloc] [--ours_malloc mimalloc,system]
        [--ours_devices 1,2] [--json out.json] [--out_dir DIR]

Each round runs, one subprocess at a time, the reference's E2D2 iteration
(benchmarks/torch_reference.py) and then ours for each structure (benchmarks/train_speed.py, one
process per structure), so both systems see the machine in the same state, round after round.
Each run reports the median time of `--iterations` iterations after its warm-up: ours compiles
first and then runs one warm-up iteration, the reference runs one warm-up iteration; neither the
compilation nor the warm-ups are in the figures. Three timed iterations by default, so that a
run's median leaves out one slow iteration: in about half of our processes one iteration, at
any point, is 5 s slower while the allocator first touches a second region for XLA's
temporary buffer (README, Measured). The table gives each run's median, the median of
all of a system's timed iterations over the rounds, and the ratio

    torch E2D2 s/iteration / ours s/iteration          (> 1: ours is faster)

for each of our structures, overall and round by round (the spread says how far to trust it),
with the machine it ran on. Speed claims in the README are ratios from this script.

Ours runs as `main.py` runs the paper's recipe on a CPU: mimalloc preloaded
(msagan_jax/allocator.py), on one XLA device (`cpu_devices=1`). `--ours_devices 1,2` also runs
each structure split into 2 devices, each with a core's share of the batch (what
`--config.cpu_devices=0` does on 2 cores), by `XLA_FLAGS=--xla_force_host_platform_device_count`,
the two counts next to each other in every round.
The reference runs with glibc's malloc, as its users run it; `--torch_malloc system,mimalloc`
also times it with the same mimalloc settings as ours (a run of its own in each round, after
the first), and prints our ratios against that too; `--ours_malloc mimalloc,system` times ours
with glibc's malloc as well (`MSAGAN_ALLOCATOR=system`).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from benchmarks import machine
from msagan_jax import allocator, console  # stdlib only: neither imports jax

# XLA's flag that splits the CPU into host devices (what main.py's `cpu_devices` sets in-process).
DEVICE_FLAG = "--xla_force_host_platform_device_count"


def run_one(name: str, command: list[str], json_path: pathlib.Path, log_path: pathlib.Path,
            env: dict[str, str]) -> dict[str, Any]:
    """Runs one benchmark subprocess (its output to log_path) and returns its JSON result."""
    start = time.perf_counter()
    with open(log_path, "w") as log:
        rc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - start
    if rc != 0:
        sys.exit(f"{name} failed (exit status {rc}); its output is in {log_path}:\n"
                 + log_path.read_text()[-3000:])
    data = json.loads(json_path.read_text())
    result = data["results"][0] if "results" in data else data  # train_speed nests its results
    if "results" in data:
        result = {**result, "device": data.get("device"), "malloc": data.get("malloc")}
    result["wall_s"] = wall
    print(f"  {name}: {result['iteration_s']:.3f} s/iteration (median of "
          f"{', '.join(f'{t:.2f}' for t in result['iteration_times_s'])}); process "
          f"{wall:.0f} s", flush=True)
    return result


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--structures", default="e2d2,e1d1", help="our structures to time")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of torch, ours, ...")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per run")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--torch_passes", choices=("shared", "separate"), default="shared",
                        help="see benchmarks/torch_reference.py --passes")
    parser.add_argument("--torch_malloc", default="system",
                        help="the reference's allocators, comma-separated: system (glibc's, as "
                        "its users run it), mimalloc (ours); our ratios are against each")
    parser.add_argument("--ours_malloc", default="mimalloc",
                        help="our allocators, comma-separated: mimalloc (main.py's on the CPU), "
                        "system (glibc's)")
    parser.add_argument("--ours_devices", default="1",
                        help="XLA devices our runs split the CPU into, comma-separated (1: "
                        "main.py's default; 2: --config.cpu_devices=0 on 2 cores)")
    parser.add_argument("--json", default="", help="the summary's path (default: in --out_dir)")
    parser.add_argument("--out_dir", default="", help="each run's log and JSON (default: a new "
                        "temporary folder)")
    return parser.parse_args(argv)


def torch_environments(env: dict[str, str], mallocs: list[str]) -> dict[str, dict[str, str]]:
    """The reference's runs by name ("torch", "torch+mimalloc"), each with its environment."""
    runs, lib = {}, allocator.library()
    for malloc in mallocs:
        if malloc == "system":
            runs["torch"] = env
        elif malloc == "mimalloc" and lib is not None:
            runs["torch+mimalloc"] = allocator.mimalloc_environment(env, lib)
        else:
            sys.exit(f"--torch_malloc: {malloc!r} is not system or mimalloc (the latter needs "
                     "the cmeel-mimalloc wheel, on Linux)")
    return runs


def ours_environments(env: dict[str, str], structures: list[str], mallocs: list[str],
                      devices: Sequence[int] = (1,)) -> dict[str, tuple[str, dict[str, str]]]:
    """Our runs by name (the structure, "+system" with glibc's malloc, "@N" on N XLA devices
    when N > 1): structure and environment."""
    if DEVICE_FLAG in env.get("XLA_FLAGS", ""):
        sys.exit(f"XLA_FLAGS sets {DEVICE_FLAG}: give our device counts with --ours_devices")
    runs = {}
    for malloc in mallocs:
        if malloc not in allocator.CHOICES:
            sys.exit(f"--ours_malloc: {malloc!r} is not one of {', '.join(allocator.CHOICES)}")
        for s in structures:
            for count in devices:
                name = (s + ("" if malloc == "mimalloc" else f"+{malloc}")
                        + ("" if count == 1 else f"@{count}"))
                flags = " ".join(f for f in (env.get("XLA_FLAGS", ""), f"{DEVICE_FLAG}={count}")
                                 if f)
                runs[name] = (s, {**env, allocator.SWITCH: malloc, "XLA_FLAGS": flags})
    return runs


def device_counts(text: str) -> list[int]:
    """--ours_devices' counts; SystemExit in one line for anything but counts of 1 or more."""
    try:
        counts = [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        sys.exit(f"--ours_devices: {text!r} is not a comma-separated list of device counts "
                 "(1 or more)")
    return counts


def ours_label(name: str) -> str:
    """A run's name as the tables show it: 'e2d2+system@2' -> 'E2D2 (glibc malloc, 2
    devices)'."""
    name, _, count = name.partition("@")
    structure, _, malloc = name.partition("+")
    notes = (["glibc malloc"] if malloc == "system" else []) + ([f"{count} devices"] if count
                                                                 else [])
    return structure.upper() + (f" ({', '.join(notes)})" if notes else "")


def _run_rounds(args: argparse.Namespace, structures: list[str],
                out: pathlib.Path) -> dict[str, list[dict[str, Any]]]:
    """The reference's E2D2 (once per allocator), then ours for each structure, `args.rounds`
    times: each system's runs."""
    env = dict(os.environ)
    # As main.py does: on a machine with no GPU, JAX's CPU platform without the CUDA probe (and
    # so, in train_speed, main.py's allocator).
    console.choose_platform(env)
    references = torch_environments(env, [m.strip() for m in args.torch_malloc.split(",")])
    ours = ours_environments(env, structures, [m.strip() for m in args.ours_malloc.split(",")],
                             device_counts(args.ours_devices))
    common = ["--iterations", str(args.iterations), "--batch_size", str(args.batch_size),
              "--image_size", str(args.image_size)]

    runs: dict[str, list[dict[str, Any]]] = {**{t: [] for t in references},
                                             **{name: [] for name in ours}}
    print(f"{args.rounds} rounds of: {', '.join(references)} E2D2, then ours "
          f"{', '.join(ours)}; {args.iterations} timed iterations each; logs in {out}",
          flush=True)
    for r in range(1, args.rounds + 1):
        print(f"round {r}:", flush=True)
        for name, torch_env in references.items():
            path = out / f"{name.replace('+', '_')}_round{r}.json"
            runs[name].append(run_one(
                f"{name} E2D2", [sys.executable, "-m", "benchmarks.torch_reference", *common,
                                 "--passes", args.torch_passes, "--json", str(path)],
                path, path.with_suffix(".log"), torch_env))
        for name, (s, ours_env) in ours.items():
            path = out / f"ours_{name.replace('+', '_')}_round{r}.json"
            runs[name].append(run_one(
                f"ours {ours_label(name)}", [sys.executable, "-m", "benchmarks.train_speed",
                                         "--structures", s, *common, "--json", str(path)],
                path, path.with_suffix(".log"), ours_env))
    return runs


def _overall(results: list[dict[str, Any]]) -> float:
    """The median of every timed iteration of every round."""
    return statistics.median(t for res in results for t in res["iteration_times_s"])


def _summarize(args: argparse.Namespace, runs: dict[str, list[dict]], info: dict[str, Any],
               out: pathlib.Path) -> dict[str, Any]:
    """Each system's per-round and overall medians, and each reference's time over ours
    (`ratios[reference][ours]`)."""
    references = [name for name in runs if name.startswith("torch")]
    structures = [name for name in runs if name not in references]
    t0, ours0 = runs[references[0]][0], runs[structures[0]][0] if structures else {}
    summary = {"machine": info, "rounds": args.rounds, "iterations": args.iterations,
               "batch_size": args.batch_size, "image_size": args.image_size,
               "torch_passes": args.torch_passes, "torch_threads": t0["threads"],
               "torch_device": f"{t0['device']} ({t0['device_name']})",
               "ours_device": ours0.get("device"), "ours_malloc": ours0.get("malloc"),
               "systems": {}, "ratios": {}, "out_dir": str(out)}
    for name, results in runs.items():
        summary["systems"][name] = {"round_medians_s": [res["iteration_s"] for res in results],
                                    "overall_median_s": _overall(results),
                                    "runs": results}
    for ref in references:
        summary["ratios"][ref] = {s: {
            "overall": _overall(runs[ref]) / _overall(runs[s]),
            "by_round": [a["iteration_s"] / b["iteration_s"] for a, b in zip(runs[ref], runs[s])]}
            for s in structures}
    return summary


def _print_summary(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    info = summary["machine"]
    t0 = next(iter(summary["systems"].values()))["runs"][0]  # the first reference's first run
    images = 4 * args.batch_size
    gpu = "" if t0["device"] == "cpu" else f", torch on {t0['device_name']}"
    print()
    print(f"Machine: {machine.cpu_line(info)}, {info['cpu_count']} cores "
          f"({info['cpus_usable']} usable), "
          f"{info['memory_gib']} GiB; jax {info['jax']} (device: {summary['ours_device']}, "
          f"malloc: {summary['ours_malloc']}), torch {info['torch']} ({t0['threads']} threads, "
          f"its default{gpu}); python {info['python']}")
    print(f"E2D2 iteration = 3 D steps + 1 G step, batch {args.batch_size}, {args.image_size} px, "
          f"float32, random data; {args.rounds} rounds, each run the median of "
          f"{args.iterations} timed iterations. Excluded: our compilation and each system's "
          f"warm-up iteration. Torch passes: {args.torch_passes}.")
    print()
    rounds = " | ".join(f"round {r} s/it" for r in range(1, args.rounds + 1))
    print(f"| system | {rounds} | overall median s/it | images/s |")
    print("| --- |" + " --- |" * (args.rounds + 2))
    labels = {"torch": "torch E2D2 (reference, glibc malloc)",
              "torch+mimalloc": "torch E2D2 (reference, mimalloc)"}
    for name, entry in summary["systems"].items():
        cells = " | ".join(f"{m:.2f}" for m in entry["round_medians_s"])
        print(f"| {labels.get(name, f'ours {ours_label(name)}')} | {cells} | "
              f"{entry['overall_median_s']:.2f} | {images / entry['overall_median_s']:.2f} |")
    for ref, ratios in summary["ratios"].items():
        print()
        print(f"| ours | {labels[ref]} s/it / ours s/it (> 1: ours faster) | by round |")
        print("| --- | --- | --- |")
        for s, ratio in ratios.items():
            print(f"| {ours_label(s)} | {ratio['overall']:.2f}x | "
                  f"{', '.join(f'{x:.2f}x' for x in ratio['by_round'])} |")


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    structures = [s.strip() for s in args.structures.split(",") if s.strip()]
    out = pathlib.Path(args.out_dir or tempfile.mkdtemp(prefix="side_by_side_"))
    out.mkdir(parents=True, exist_ok=True)
    info = machine.describe()
    runs = _run_rounds(args, structures, out)
    summary = _summarize(args, runs, info, out)
    _print_summary(args, summary)
    json_path = pathlib.Path(args.json) if args.json else out / "side_by_side.json"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nJSON: {json_path}")


if __name__ == "__main__":
    main()
