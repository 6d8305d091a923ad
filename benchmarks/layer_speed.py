"""One layer at a time, each form of it: forward and both gradients.

    python -m benchmarks.layer_speed [--shapes 16x128x32x64,...] [--forms patches,shifted,xla]
        [--rounds 2] [--repeats 5]
    python -m benchmarks.layer_speed --layer conv7 [--forms lax,even] [--forward_only]

A shape is batch x size x in channels x out channels. For each, the time of one jitted call
that computes the layer's output and the gradients of sum(y * w) with respect to its input and
kernel (what a training step asks of it; with --forward_only the output alone, as the D steps'
edited images ask of G), the median of `repeats` calls after a warm-up, for each form, the
forms alternating round by round; then the overall median per form.

`--layer stride2` (the default): the 4x4 stride-2 layer. Forms: `patches`
(models.stride2_by_patches), `shifted` (models.stride2_by_shifted_output), `xla`
(models.stride2_by_lax, conv_impl=xla; slow on the CPU at the larger shapes); the last column
is the form DownConv picks (models.uses_shifted_output). The default shapes are the stride-2
layers of the paper's recipe at batch 16 (G's encoder, then D) and of the quick start at batch
8 (a device's share of 16 on two).

`--layer conv7`: G's 7x7 stride-1 layers. Forms: `lax` (lax.conv_general_dilated as flax's
Conv calls it) and `even` (models.even_channels_conv, what the models use: an odd channel count
above 1 made even by a zero channel). The default shapes are G's first and last layers at the
paper's recipe (batch 16; 48, the D steps' edited images) and the quick start's.
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


CONV7_PAPER = ("16x128x4x32", "16x128x3x32", "48x128x3x32",  # G's first: [I, c]; SaGAN's SAN
               "16x128x32x3", "16x128x32x1", "16x128x32x4")  # G's last: I_a (E*D2), b, both
CONV7_QUICKSTART = ("8x64x4x16", "8x64x16x13")

FORMS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "patches": models.stride2_by_patches, "shifted": models.stride2_by_shifted_output,
    "xla": models.stride2_by_lax}


def conv7_by_lax(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """A 7x7 stride-1 'same' convolution as lax runs it."""
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((3, 3), (3, 3)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv7_even(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The same through models.even_channels_conv, as the models' 7x7 layers run it."""
    numbers = jax.lax.conv_dimension_numbers(x.shape, kernel.shape, ("NHWC", "HWIO", "NHWC"))
    return models.even_channels_conv(x, kernel, (1, 1), ((3, 3), (3, 3)),
                                     dimension_numbers=numbers)


# layer -> (its forms, kernel size, stride, default forms, default shapes)
LAYERS = {"stride2": (FORMS, 4, 2, ("patches", "shifted"), PAPER + QUICKSTART),
          "conv7": ({"lax": conv7_by_lax, "even": conv7_even}, 7, 1, ("lax", "even"),
                    CONV7_PAPER + CONV7_QUICKSTART)}

flags.DEFINE_enum("layer", "stride2", list(LAYERS), "Which layer's forms to time.")
flags.DEFINE_list("shapes", None, "batch x size x in x out, comma-separated (default: the "
                  "layer's shapes at the paper's recipe and the quick start's).")
flags.DEFINE_list("forms", None, "The layer's forms (default: stride2 patches,shifted; conv7 "
                  "lax,even).")
flags.DEFINE_bool("forward_only", False, "Time the output alone, no gradients.")
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


def layer_inputs(shape: tuple[int, int, int, int], layer: str = "stride2"
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The input, the kernel and the output's weights w of a timed call (loss sum(y * w))."""
    batch, size, cin, cout = shape
    _, kernel, stride, _, _ = LAYERS[layer]
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    return (jax.random.normal(keys[0], (batch, size, size, cin)),
            0.02 * jax.random.normal(keys[1], (kernel, kernel, cin, cout)),
            jax.random.normal(keys[2], (batch, size // stride, size // stride, cout)))


def layer_call(form: Callable, shape: tuple[int, int, int, int], layer: str = "stride2",
               forward_only: bool = False) -> Callable[[], object]:
    """A no-argument call that runs the form's forward pass and both gradients once, and
    returns (loss, (input gradient, kernel gradient)); forward_only: the output alone."""
    if forward_only:
        step = jax.jit(lambda x, k, w: form(x, k))
    else:
        # The weights are an argument: as a constant, XLA folds their share of the gradients
        # into the program. The value keeps the forward pass live (a linear loss's gradients
        # skip it).
        step = jax.jit(jax.value_and_grad(lambda x, k, w: jnp.sum(form(x, k) * w),
                                          argnums=(0, 1)))
    inputs = layer_inputs(shape, layer)
    return lambda: jax.block_until_ready(step(*inputs))


def time_forms(shape: tuple[int, int, int, int], forms: Sequence[str], rounds: int,
               repeats: int, layer: str = "stride2",
               forward_only: bool = False) -> dict[str, float]:
    """Median seconds per call of each form, the forms alternating round by round."""
    table = LAYERS[layer][0]
    calls = {name: layer_call(table[name], shape, layer, forward_only) for name in forms}
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
    table, _, _, default_forms, default_shapes = LAYERS[FLAGS.layer]
    forms = FLAGS.forms or list(default_forms)
    unknown = sorted(set(forms) - set(table))
    if unknown:
        raise app.UsageError(f"--forms: unknown {', '.join(unknown)} for --layer {FLAGS.layer}; "
                             f"choose from {', '.join(table)}")
    shapes = [parse_shape(s) for s in FLAGS.shapes or default_shapes]
    what = "forward only" if FLAGS.forward_only else "forward + input and kernel gradients"
    print(f"{jax.device_count()} x {jax.devices()[0].platform}, jax {jax.__version__}; "
          f"{FLAGS.layer}: ms per call ({what}), median of {FLAGS.rounds} rounds "
          f"x {FLAGS.repeats} calls")
    last = " DownConv picks |" if FLAGS.layer == "stride2" else ""
    print("| batch x size x in x out | " + " | ".join(f"{f} ms" for f in forms) + " |" + last)
    print("| --- |" + " --- |" * (len(forms) + bool(last)))
    for shape in shapes:
        ms = time_forms(shape, forms, FLAGS.rounds, FLAGS.repeats, FLAGS.layer,
                        FLAGS.forward_only)
        batch, size, cin, cout = shape
        pick = ""
        if last:
            shifted = models.uses_shifted_output(cin, cout, size // 2, size // 2)
            pick = f" {'shifted' if shifted else 'patches'} |"
        print(f"| {batch}x{size}x{cin}x{cout} | "
              + " | ".join(f"{1e3 * ms[f]:.1f}" for f in forms) + " |" + pick, flush=True)


if __name__ == "__main__":
    app.run(main)
