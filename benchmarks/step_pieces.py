"""Where an iteration's time goes, ours against the PyTorch reference, piece by piece.

    python -m benchmarks.step_pieces [--rounds 2] [--repeats 3] [--structure e2d2]
        [--batch_size 16] [--image_size 128]

Each piece runs in its own subprocess per system, the systems alternating round by round on
the same machine (so a piece's ratio is measured in one run). Pieces, at the paper's recipe:

    g_forward     G(I, 1 - c), no gradient (what each D step runs first)
    iteration_1   1 D step + 1 G step (the iteration with d_steps = 1)
    iteration_3   3 D steps + 1 G step (the paper's iteration)
    no_gp_3       iteration_3 without the gradient penalty (ours: the non-saturating loss;
                  the reference: its penalty replaced by zero)

from which: one D step = (iteration_3 - iteration_1) / 2, the G step = iteration_1 - D step,
the penalty's share = (iteration_3 - no_gp_3) / 3 per D step. Medians of `repeats` timed calls
after one warm-up. torch is optional (pip install torch); without it only ours is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PIECES = ("g_forward", "iteration_1", "iteration_3", "no_gp_3")


def _time(fn, repeats: int) -> list[float]:
    fn()  # warm-up (compiles)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _ours(piece: str, args: argparse.Namespace) -> list[float]:
    import jax
    import numpy as np

    from benchmarks import train_speed
    from configs import default
    from msagan_jax import models

    config = train_speed.make_config(default.get_config(), args.structure, args.batch_size,
                                     args.image_size, "float32", None)
    if piece == "g_forward":
        generator, _ = models.create_models(config)
        rng = np.random.default_rng(0)
        image = rng.uniform(-1, 1, (args.batch_size, args.image_size, args.image_size, 3))
        image = image.astype(np.float32)
        c = rng.integers(0, 2, args.batch_size).astype(np.float32)
        params = jax.jit(generator.init)(jax.random.key(0), image, c)
        forward = jax.jit(generator.apply)
        return _time(lambda: jax.block_until_ready(forward(params, image, 1.0 - c)), args.repeats)
    config.d_steps = 1 if piece == "iteration_1" else 3
    if piece == "no_gp_3":
        config.adversarial_loss = "nonsaturating"
    prepared = train_speed.prepare(config)
    return _time(lambda: train_speed.run_iterations(prepared, 1), args.repeats)


def _reference(piece: str, args: argparse.Namespace) -> list[float]:
    import torch

    from benchmarks import torch_reference as ref

    if args.structure != "e2d2":
        raise SystemExit("the PyTorch reference is E2D2 only")
    reference = ref.Reference(image_size=args.image_size)
    if piece == "g_forward":
        batch = ref.random_batch(1, args.batch_size, args.image_size, reference.device)

        def forward():
            with torch.no_grad():
                reference.g(batch["image"][0], 1.0 - batch["label"][0])
        return _time(forward, args.repeats)
    if piece == "no_gp_3":
        ref.gradient_penalty = lambda *_: torch.zeros(())
    k = 2 if piece == "iteration_1" else 4
    batch = ref.random_batch(k, args.batch_size, args.image_size, reference.device)
    return _time(lambda: reference.iteration(batch), args.repeats)


def _one(args: argparse.Namespace) -> None:
    run = _ours if args.system == "ours" else _reference
    times = run(args.piece, args)
    print(json.dumps({"system": args.system, "piece": args.piece, "times_s": times}))


def _spawn(system: str, piece: str, args: argparse.Namespace) -> list[float]:
    command = [sys.executable, "-m", "benchmarks.step_pieces", "--system", system, "--piece",
               piece, "--repeats", str(args.repeats), "--structure", args.structure,
               "--batch_size", str(args.batch_size), "--image_size", str(args.image_size)]
    out = subprocess.run(command, capture_output=True, text=True, check=False,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if out.returncode:
        raise SystemExit(f"{system} {piece} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["times_s"]


def summarize(results: dict[tuple[str, str], list[float]],
              systems: list[str]) -> list[tuple[str, dict[str, float]]]:
    """(piece, {system: median s}) rows: the measured pieces, then the derived ones (the
    module's docstring says how)."""
    med = {key: statistics.median(times) for key, times in results.items()}
    rows = [(p, {s: med[s, p] for s in systems}) for p in PIECES]
    d_step = {s: (med[s, "iteration_3"] - med[s, "iteration_1"]) / 2 for s in systems}
    rows.append(("d_step", d_step))
    rows.append(("g_step", {s: med[s, "iteration_1"] - d_step[s] for s in systems}))
    rows.append(("gp_per_d_step", {s: (med[s, "iteration_3"] - med[s, "no_gp_3"]) / 3
                                   for s in systems}))
    return rows


def format_table(rows: list[tuple[str, dict[str, float]]], systems: list[str]) -> str:
    """A markdown table; with both systems, a column of ours / reference (time: > 1 slower)."""
    both = systems == ["ours", "reference"]
    head = ["piece (s, median)", *systems] + (["ours / reference (time)"] if both else [])
    lines = ["| " + " | ".join(head) + " |", "| --- " * len(head) + "|"]
    for name, values in rows:
        cells = [name, *(f"{values[s]:.3f}" for s in systems)]
        if both:
            cells.append(f"{values['ours'] / values['reference']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--structure", default="e2d2")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--pieces", default=",".join(PIECES))
    parser.add_argument("--system", choices=("ours", "reference"), help=argparse.SUPPRESS)
    parser.add_argument("--piece", choices=PIECES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.system:
        return _one(args)
    try:
        import torch  # noqa: F401
        systems = ["ours", "reference"] if args.structure == "e2d2" else ["ours"]
    except ImportError:
        print("torch is not installed: timing ours only (pip install torch)", file=sys.stderr)
        systems = ["ours"]
    results: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for piece in args.pieces.split(","):
            for system in systems if round_ % 2 == 0 else systems[::-1]:
                times = _spawn(system, piece, args)
                results.setdefault((system, piece), []).extend(times)
                print(f"round {round_ + 1} {system:9s} {piece:12s} "
                      + " ".join(f"{t:.3f}" for t in times), flush=True)
    print()
    print(format_table(summarize(results, systems), systems))


if __name__ == "__main__":
    main()
