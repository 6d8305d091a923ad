"""Ours against the PyTorch reference, on the same machine, in turn: the speed ratio.

Needs PyTorch besides the project (it is not a project dependency):

    pip install torch        # this repo's measurements used torch==2.13.0 (the CPU wheel)
    python -m benchmarks.side_by_side [--structures e2d2,e1d1] [--rounds 2] [--iterations 2]
        [--torch_passes shared] [--json out.json] [--out_dir DIR]

Each round runs, one subprocess at a time, the reference's E2D2 iteration
(benchmarks/torch_reference.py) and then ours for each structure (benchmarks/train_speed.py, one
process per structure), so both systems see the machine in the same state, round after round.
Each run reports the median time of `--iterations` iterations after its warm-up: ours compiles
first and then runs one warm-up iteration, the reference runs one warm-up iteration; neither the
compilation nor the warm-ups are in the figures. The table gives each run's median, the median of
all of a system's timed iterations over the rounds, and the ratio

    torch E2D2 s/iteration / ours s/iteration          (> 1: ours is faster)

for each of our structures, overall and round by round (the spread says how far to trust it),
with the machine it ran on. Speed claims in the README are ratios from this script.
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
from typing import Any

from benchmarks import machine
from msagan_jax import console  # stdlib only: does not import jax


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
        result = {**result, "device": data.get("device")}
    result["wall_s"] = wall
    print(f"  {name}: {result['iteration_s']:.3f} s/iteration (median of "
          f"{', '.join(f'{t:.2f}' for t in result['iteration_times_s'])}); process "
          f"{wall:.0f} s", flush=True)
    return result


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--structures", default="e2d2,e1d1", help="our structures to time")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of torch, ours, ...")
    parser.add_argument("--iterations", type=int, default=2, help="timed iterations per run")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--torch_passes", choices=("shared", "separate"), default="shared",
                        help="see benchmarks/torch_reference.py --passes")
    parser.add_argument("--json", default="", help="the summary's path (default: in --out_dir)")
    parser.add_argument("--out_dir", default="", help="each run's log and JSON (default: a new "
                        "temporary folder)")
    return parser.parse_args(argv)


def _run_rounds(args: argparse.Namespace, structures: list[str],
                out: pathlib.Path) -> dict[str, list[dict[str, Any]]]:
    """torch E2D2, then ours for each structure, `args.rounds` times: each system's runs."""
    env = dict(os.environ)
    # As main.py does: on a machine with no GPU, JAX's CPU platform without the CUDA probe.
    console.choose_platform(env)
    common = ["--iterations", str(args.iterations), "--batch_size", str(args.batch_size),
              "--image_size", str(args.image_size)]

    runs: dict[str, list[dict[str, Any]]] = {"torch": [], **{s: [] for s in structures}}
    print(f"{args.rounds} rounds of: torch E2D2, then ours {', '.join(structures)}; "
          f"{args.iterations} timed iterations each; logs in {out}", flush=True)
    for r in range(1, args.rounds + 1):
        print(f"round {r}:", flush=True)
        path = out / f"torch_round{r}.json"
        runs["torch"].append(run_one(
            "torch E2D2", [sys.executable, "-m", "benchmarks.torch_reference", *common,
                           "--passes", args.torch_passes, "--json", str(path)],
            path, out / f"torch_round{r}.log", env))
        for s in structures:
            path = out / f"ours_{s}_round{r}.json"
            runs[s].append(run_one(
                f"ours {s.upper()}", [sys.executable, "-m", "benchmarks.train_speed",
                                      "--structures", s, *common, "--json", str(path)],
                path, out / f"ours_{s}_round{r}.log", env))
    return runs


def _summarize(args: argparse.Namespace, structures: list[str], runs: dict[str, list[dict]],
               info: dict[str, Any], out: pathlib.Path) -> dict[str, Any]:
    """Each system's per-round and overall medians, and torch's time over ours."""

    def overall(results: list[dict[str, Any]]) -> float:
        # The median of every timed iteration of every round.
        return statistics.median(t for res in results for t in res["iteration_times_s"])

    torch_runs = runs["torch"]
    t0 = torch_runs[0]
    summary = {"machine": info, "rounds": args.rounds, "iterations": args.iterations,
               "batch_size": args.batch_size, "image_size": args.image_size,
               "torch_passes": args.torch_passes, "torch_threads": t0["threads"],
               "torch_device": f"{t0['device']} ({t0['device_name']})",
               "ours_device": runs[structures[0]][0].get("device") if structures else None,
               "systems": {}, "ratios": {}, "out_dir": str(out)}
    for name, results in runs.items():
        summary["systems"][name] = {"round_medians_s": [res["iteration_s"] for res in results],
                                    "overall_median_s": overall(results),
                                    "runs": results}
    for s in structures:
        summary["ratios"][s] = {
            "overall": overall(torch_runs) / overall(runs[s]),
            "by_round": [a["iteration_s"] / b["iteration_s"] for a, b in zip(torch_runs, runs[s])]}
    return summary


def _print_summary(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    info, t0 = summary["machine"], summary["systems"]["torch"]["runs"][0]
    images = 4 * args.batch_size
    gpu = "" if t0["device"] == "cpu" else f", torch on {t0['device_name']}"
    print()
    print(f"Machine: {machine.cpu_line(info)}, {info['cpu_count']} cores "
          f"({info['cpus_usable']} usable), "
          f"{info['memory_gib']} GiB; jax {info['jax']} (device: {summary['ours_device']}), "
          f"torch {info['torch']} ({t0['threads']} threads, its default{gpu}); python "
          f"{info['python']}")
    print(f"E2D2 iteration = 3 D steps + 1 G step, batch {args.batch_size}, {args.image_size} px, "
          f"float32, random data; {args.rounds} rounds, each run the median of "
          f"{args.iterations} timed iterations. Excluded: our compilation and each system's "
          f"warm-up iteration. Torch passes: {args.torch_passes}.")
    print()
    rounds = " | ".join(f"round {r} s/it" for r in range(1, args.rounds + 1))
    print(f"| system | {rounds} | overall median s/it | images/s |")
    print("| --- |" + " --- |" * (args.rounds + 2))
    for name, entry in summary["systems"].items():
        label = "torch E2D2 (reference)" if name == "torch" else f"ours {name.upper()}"
        cells = " | ".join(f"{m:.2f}" for m in entry["round_medians_s"])
        print(f"| {label} | {cells} | {entry['overall_median_s']:.2f} | "
              f"{images / entry['overall_median_s']:.2f} |")
    print()
    print("| ours | torch E2D2 s/it / ours s/it (> 1: ours faster) | by round |")
    print("| --- | --- | --- |")
    for s, ratio in summary["ratios"].items():
        print(f"| {s.upper()} | {ratio['overall']:.2f}x | "
              f"{', '.join(f'{x:.2f}x' for x in ratio['by_round'])} |")


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    structures = [s.strip() for s in args.structures.split(",") if s.strip()]
    out = pathlib.Path(args.out_dir or tempfile.mkdtemp(prefix="side_by_side_"))
    out.mkdir(parents=True, exist_ok=True)
    info = machine.describe()
    runs = _run_rounds(args, structures, out)
    summary = _summarize(args, structures, runs, info, out)
    _print_summary(args, summary)
    json_path = pathlib.Path(args.json) if args.json else out / "side_by_side.json"
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nJSON: {json_path}")


if __name__ == "__main__":
    main()
