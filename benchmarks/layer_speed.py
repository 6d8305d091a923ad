"""The stride-2 layer's forms, one layer at a time: forward and both gradients.

    python -m benchmarks.layer_speed [--shapes 16x128x32x64,...] [--forms patches,shifted,xla]
        [--rounds 2] [--repeats 5]

A shape is batch x size x in channels x out channels. For each, the time of one jitted call
that computes the layer's output and the gradients of sum(y * w) with respect to its input and
kernel (what a training step asks of it), the median of `repeats` calls after a warm-up, for
each form, the forms alternating round by round; then the overall median per form, and the form
DownConv picks (models.uses_shifted_output). Forms: `patches` (models.stride2_by_patches),
`shifted` (models.stride2_by_shifted_output), `xla` (models.stride2_by_lax, conv_impl=xla;
slow on the CPU at the larger shapes). The default shapes are the stride-2 layers of the
paper's recipe at batch 16 (G's encoder, then D) and of the quick start at batch 8 (a device's
share of 16 on two).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

from absl import app, flags

import jax
import jax.numpy as jnp

from msagan_jax import models

PAPER = ("16x128x32x64", "16x64x64x128", "16x32x128x256",  # G's encoder
         "16x128x3x32", "16x64x32x64", "16x32x64x128", "16x16x128x256", "16x8x256x512",
         "16x4x512x1024")  # D
QUICKSTART = ("8x64x16x32", "8x32x32x64",  # G's encoder
              "8x64x3x16", "8x32x16x32", "8x16x32x64", "8x8x64x128", "8x4x128x256")  # D


FORMS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "patches": models.stride2_by_patches, "shifted": models.stride2_by_shifted_output,
    "xla": models.stride2_by_lax}

flags.DEFINE_list("shapes", list(PAPER + QUICKSTART), "batch x size x in x out, comma-separated.")
flags.DEFINE_list("forms", ["patches", "shifted"], f"Among {', '.join(FORMS)}.")
flags.DEFINE_integer("rounds", 2, "Rounds, the forms alternating in each.")
flags.DEFINE_integer("repeats", 5, "Timed calls per form and round (the median is kept).")
FLAGS = flags.FLAGS


def parse_shape(text: str) -> tuple[int, int, int, int]:
    """'16x128x32x64' -> (batch, size, in, out); a one-line error naming the text otherwise."""
    try:
        batch, size, cin, cout = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"shape {text!r} is not batch x size x in x out, e.g. 16x128x32x64")
    if min(batch, size, cin, cout) < 1 or size % 2:
        raise ValueError(f"shape {text!r}: every number positive and the size even")
    return batch, size, cin, cout


def layer_inputs(shape: tuple[int, int, int, int]) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The input, the kernel and the output's weights w of a timed call (loss sum(y * w))."""
    batch, size, cin, cout = shape
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    return (jax.random.normal(keys[0], (batch, size, size, cin)),
            0.02 * jax.random.normal(keys[1], (4, 4, cin, cout)),
            jax.random.normal(keys[2], (batch, size // 2, size // 2, cout)))


def layer_call(form: Callable, shape: tuple[int, int, int, int]) -> Callable[[], object]:
    """A no-argument call that runs the form's forward pass and both gradients once, and
    returns (loss, (input gradient, kernel gradient))."""
    # The weights are an argument: as a constant, XLA folds their share of the gradients into
    # the program. The value keeps the forward pass live (a linear loss's gradients skip it).
    step = jax.jit(jax.value_and_grad(lambda x, k, w: jnp.sum(form(x, k) * w), argnums=(0, 1)))
    inputs = layer_inputs(shape)
    return lambda: jax.block_until_ready(step(*inputs))


def time_forms(shape: tuple[int, int, int, int], forms: Sequence[str], rounds: int,
               repeats: int) -> dict[str, float]:
    """Median seconds per call of each form, the forms alternating round by round."""
    calls = {name: layer_call(FORMS[name], shape) for name in forms}
    for call in calls.values():
        call()  # compiles
    medians: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(rounds):
        for name, call in calls.items():
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            medians[name].append(statistics.median(times))
    return {name: statistics.median(values) for name, values in medians.items()}


def main(argv: Sequence[str]) -> None:
    del argv
    unknown = sorted(set(FLAGS.forms) - set(FORMS))
    if unknown:
        raise app.UsageError(f"--forms: unknown {', '.join(unknown)}; "
                             f"choose from {', '.join(FORMS)}")
    shapes = [parse_shape(s) for s in FLAGS.shapes]
    print(f"{jax.device_count()} x {jax.devices()[0].platform}, jax {jax.__version__}; "
          f"ms per call (forward + input and kernel gradients), median of {FLAGS.rounds} rounds "
          f"x {FLAGS.repeats} calls")
    print("| batch x size x in x out | " + " | ".join(f"{f} ms" for f in FLAGS.forms)
          + " | DownConv picks |")
    print("| --- |" + " --- |" * (len(FLAGS.forms) + 1))
    for shape in shapes:
        ms = time_forms(shape, FLAGS.forms, FLAGS.rounds, FLAGS.repeats)
        batch, size, cin, cout = shape
        shifted = models.uses_shifted_output(cin, cout, size // 2, size // 2)
        pick = "shifted" if shifted else "patches"
        print(f"| {batch}x{size}x{cin}x{cout} | "
              + " | ".join(f"{1e3 * ms[f]:.1f}" for f in FLAGS.forms) + f" | {pick} |", flush=True)


if __name__ == "__main__":
    app.run(main)
