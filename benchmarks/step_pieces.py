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
    d_only_3      the 3 D steps alone, on edited images made once beforehand (no G)
    g_only        the G step alone

from which: one D step = (iteration_3 - iteration_1) / 2, the G step = iteration_1 - D step,
the penalty's share = (iteration_3 - no_gp_3) / 3 per D step. The last two time the steps
themselves; the derived ones include how they run together in an iteration.

`--pieces layers` times G's layers one at a time instead (at `--batch_size`; the G step runs
its networks on 16 to 48 images): each layer as the network runs it (a convolution with its
instance norm and ReLU; the residual block whole; the 7x7 head alone), its forward pass and
the gradients with respect to its parameters and its input:

    layer_stem     7x7 conv, 4 -> 32 channels at 128 px (the image and c's plane)
    layer_down0-2  4x4 stride-2 convs, 32 -> 64 at 128 px, 64 -> 128 at 64, 128 -> 256 at 32
    layer_res      a residual block, 256 channels at 16 px (G has 4 a network)
    layer_up2-0    4x4 stride-2 transposed convs, 256 -> 128 at 16 px, 128 -> 64 at 32, 64 ->
                   32 at 64
    layer_head     7x7 conv, 32 -> 3 at 128 px

(the sizes at 128 px; `--image_size` scales them). Medians of `repeats` timed calls after one
warm-up. torch is optional (pip install torch); without it only ours is timed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time

PIECES = ("g_forward", "iteration_1", "iteration_3", "no_gp_3", "d_only_3", "g_only")
# name: (kind, in channels, out channels, input size as a fraction of the image's)
LAYERS = {"layer_stem": ("stem", 4, 32, 1), "layer_down0": ("down", 32, 64, 1),
          "layer_down1": ("down", 64, 128, 2), "layer_down2": ("down", 128, 256, 4),
          "layer_res": ("res", 256, 256, 8), "layer_up2": ("up", 256, 128, 8),
          "layer_up1": ("up", 128, 64, 4), "layer_up0": ("up", 64, 32, 2),
          "layer_head": ("head", 32, 3, 1)}


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

    if piece in LAYERS:
        return _ours_layer(piece, args)
    config = train_speed.make_config(default.get_config(), args.structure, args.batch_size,
                                     args.image_size, "float32", None)
    if piece in ("d_only_3", "g_only"):
        return _ours_steps(piece, config, args)
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


def _ours_steps(piece: str, config, args: argparse.Namespace) -> list[float]:
    """The 3 D steps (on edited images made beforehand) or the G step, each jitted alone."""
    import jax
    import numpy as np

    from msagan_jax import models, train

    generator, discriminator = models.create_models(config)
    g_tx, d_tx = train.create_optimizers(config, 1000)
    rng = np.random.default_rng(0)
    shape = (3, args.batch_size, args.image_size, args.image_size, 3)
    images, fakes = (rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(2))
    labels = rng.integers(0, 2, shape[:2]).astype(np.float32)
    guide = (rng.uniform(size=shape[1:-1] + (1,)) > 0.9).astype(np.float32)
    d_params = jax.jit(discriminator.init)(jax.random.key(0), images[0])
    if piece == "d_only_3":
        d_step = train.make_d_step(config, discriminator, d_tx)
        steps = jax.jit(lambda carry, xs: jax.lax.scan(d_step, carry, xs, unroll=True))
        carry = (d_params, d_tx.init(d_params))
        xs = (images, labels, fakes, None, jax.random.split(jax.random.key(1), 3))
        return _time(lambda: jax.block_until_ready(steps(carry, xs)), args.repeats)
    g_params = jax.jit(generator.init)(jax.random.key(2), images[0], labels[0])
    g_step = jax.jit(train.make_g_step(config, generator, discriminator, g_tx))
    inputs = (g_params, g_tx.init(g_params), d_params, images[0], labels[0], guide)
    return _time(lambda: jax.block_until_ready(g_step(*inputs)), args.repeats)


def _ours_layer(piece: str, args: argparse.Namespace) -> list[float]:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from msagan_jax import models

    kind, cin, cout, scale = LAYERS[piece]
    size = args.image_size // scale
    f32 = jnp.float32

    def layer(x):
        if kind == "res":
            return models.ResidualBlock()(x)
        if kind in ("stem", "head"):
            y = models._conv(cout, 7, 1, 3, f32)(x)
        else:
            y = (models.DownConv if kind == "down" else models.UpConv)(cout)(x)
        return y if kind == "head" else nn.relu(models._norm(f32)(y))

    class Layer(nn.Module):
        @nn.compact
        def __call__(self, x):
            return layer(x)

    network = Layer()
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (args.batch_size, size, size, cin))
    params = network.init(keys[1], x)
    weights = jax.random.normal(keys[2], jax.eval_shape(network.apply, params, x).shape)
    # The weights are an argument (a constant would be folded into the gradients), and the
    # value keeps the forward pass live.
    step = jax.jit(jax.value_and_grad(lambda p, x, w: jnp.sum(network.apply(p, x) * w),
                                      argnums=(0, 1)))
    return _time(lambda: jax.block_until_ready(step(params, x, weights)), args.repeats)


def _reference_layer(piece: str, args: argparse.Namespace) -> list[float]:
    import torch
    import torch.nn.functional as F

    from benchmarks import torch_reference as ref

    kind, cin, cout, scale = LAYERS[piece]
    size = args.image_size // scale
    torch.manual_seed(0)
    if kind in ("stem", "head"):
        layer = ref._conv(cin, cout, 7, 1, 3)
    else:
        layer = {"down": lambda: ref._conv(cin, cout, 4, 2, 1),
                 "res": lambda: ref.ResidualBlock(cin),
                 "up": lambda: torch.nn.ConvTranspose2d(cin, cout, 4, 2, 1)}[kind]()

    def forward(x):
        y = layer(x)
        return y if kind in ("res", "head") else F.relu(F.instance_norm(y, eps=1e-5))

    x = torch.randn(args.batch_size, cin, size, size, requires_grad=True)
    with torch.no_grad():
        weights = torch.randn_like(forward(x))

    def step():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        (forward(x) * weights).sum().backward()
    return _time(step, args.repeats)


def _reference(piece: str, args: argparse.Namespace) -> list[float]:
    import torch

    from benchmarks import torch_reference as ref

    if args.structure != "e2d2":
        raise SystemExit("the PyTorch reference is E2D2 only")
    if piece in LAYERS:
        return _reference_layer(piece, args)
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
    if piece == "g_only":
        return _time(lambda: reference.g_step(batch["image"][0], batch["label"][0],
                                              batch["mask"][0]), args.repeats)
    if piece == "d_only_3":
        with torch.no_grad():  # the edited images, once; the D steps then see them from G
            fakes = [reference.g(batch["image"][i], 1.0 - batch["label"][i])[0] for i in range(3)]
        made = itertools.cycle(fakes)  # the D steps ask for them in turn
        reference.g = lambda image, c: (next(made),)
        epsilon = torch.rand(args.batch_size)
        return _time(lambda: [reference.d_step(batch["image"][i], batch["label"][i], epsilon)
                              for i in range(3)], args.repeats)
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
    measured = [p for p in (*PIECES, *LAYERS) if all((s, p) in med for s in systems)]
    rows = [(p, {s: med[s, p] for s in systems}) for p in measured]
    if {"iteration_1", "iteration_3", "no_gp_3"} <= set(measured):
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


def parse_pieces(text: str) -> list[str]:
    """'g_forward,layers' -> the pieces it names; a one-line error naming an unknown one."""
    pieces = []
    for name in text.split(","):
        if name not in (*PIECES, *LAYERS, "layers"):
            raise SystemExit(f"unknown piece {name!r}: among {', '.join(PIECES + tuple(LAYERS))}"
                             ", layers")
        pieces += list(LAYERS) if name == "layers" else [name]
    return pieces


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--structure", default="e2d2")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--pieces", default=",".join(PIECES),
                        help=f"among {', '.join(PIECES + tuple(LAYERS))}; `layers`: all the "
                        "layer_ pieces")
    parser.add_argument("--system", choices=("ours", "reference"), help=argparse.SUPPRESS)
    parser.add_argument("--piece", choices=PIECES + tuple(LAYERS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.system:
        return _one(args)
    try:
        import torch  # noqa: F401
        systems = ["ours", "reference"] if args.structure == "e2d2" else ["ours"]
    except ImportError:
        print("torch is not installed: timing ours only (pip install torch)", file=sys.stderr)
        systems = ["ours"]
    pieces = parse_pieces(args.pieces)
    results: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for piece in pieces:
            for system in systems if round_ % 2 == 0 else systems[::-1]:
                times = _spawn(system, piece, args)
                results.setdefault((system, piece), []).extend(times)
                print(f"round {round_ + 1} {system:9s} {piece:12s} "
                      + " ".join(f"{t:.3f}" for t in times), flush=True)
    print()
    print(format_table(summarize(results, systems), systems))


if __name__ == "__main__":
    main()
