"""A PyTorch reference for timing: SaGAN's E2D2 training iteration, written from METHOD.md.

torch is not a dependency of this project; install it into the same environment first:

    pip install torch        # this repo's measurements used torch==2.13.0 (the CPU wheel)

Then:

    python -m benchmarks.torch_reference [--iterations 3] [--batch_size 16] [--image_size 128]
        [--json out.json] [--passes shared|separate] [--device auto|cpu|cuda]
    python -m benchmarks.torch_reference --params_only     # the parameter-count check alone
    python -m benchmarks.torch_reference --compare         # one tiny iteration against ours

It exists only to time msagan_jax against what a user would otherwise run
(benchmarks/side_by_side.py runs both and prints the ratio). It is the same iteration as
msagan_jax.train.make_train_iteration at the paper's recipe: the same layers and shapes (a check
asserts the parameter counts, G 12,220,644 and D 11,190,754 at 128 px), WGAN-GP + BCE for D,
adversarial + BCE + L1 reconstruction + SDE guide-mask loss for G, Adam(2e-4, 0.5, 0.999),
3 D steps and 1 G step, each on its own batch of random data as benchmarks/train_speed.py
makes it. Like ours, D sees real and edited images in one pass, and the parts of G that see
only the image (SaGAN's SAN) run once for the edit and identity passes (`--passes separate`
runs G three times and D twice, as the public SaGAN code does). PyTorch's own threading is left
at its default (one thread per physical core); the output records `torch.get_num_threads()`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from typing import Any

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # torch is optional for this project: say how to get it
    sys.exit("benchmarks.torch_reference needs PyTorch: pip install torch")

import numpy as np

from benchmarks import machine

# The paper's (and our configs/default.py's) counts at 128 px, width 32: the check that the
# reference builds the same networks.
EXPECTED_G_PARAMS = 12_220_644
EXPECTED_D_PARAMS = 11_190_754


# --- The networks (METHOD.md section 1; NCHW) ------------------------------------------------

def _conv(c_in: int, c_out: int, kernel: int, stride: int, pad: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, stride, pad)


class ResidualBlock(nn.Module):
    """Conv3x3-IN(affine)-ReLU-Conv3x3-IN(affine), plus the input."""

    def __init__(self, features: int):
        super().__init__()
        self.conv0 = _conv(features, features, 3, 1, 1)
        self.norm0 = nn.InstanceNorm2d(features, affine=True)
        self.conv1 = _conv(features, features, 3, 1, 1)
        self.norm1 = nn.InstanceNorm2d(features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm0(self.conv0(x)))
        return x + self.norm1(self.conv1(y))


class Encoder(nn.Module):
    """Conv7x7/1 -> width, num_down Conv4x4/2 doubling the width (each IN + ReLU), then the
    residual bottleneck."""

    def __init__(self, c_in: int, width: int = 32, num_down: int = 3, num_res_blocks: int = 4):
        super().__init__()
        self.stem = _conv(c_in, width, 7, 1, 3)
        self.downs = nn.ModuleList(_conv(width * 2 ** i, width * 2 ** (i + 1), 4, 2, 1)
                                   for i in range(num_down))
        self.blocks = nn.ModuleList(ResidualBlock(width * 2 ** num_down)
                                    for _ in range(num_res_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # InstanceNorm2d(affine=False) has no parameters, so the functional form is the same.
        x = F.relu(F.instance_norm(self.stem(x), eps=1e-5))
        for down in self.downs:
            x = F.relu(F.instance_norm(down(x), eps=1e-5))
        for block in self.blocks:
            x = block(x)
        return x


class Decoder(nn.Module):
    """num_up ConvTranspose4x4/2 halving the width (IN + ReLU), then Conv7x7/1 -> out_channels
    (no activation: the caller applies tanh or sigmoid)."""

    def __init__(self, c_out: int, width: int = 32, num_up: int = 3):
        super().__init__()
        self.ups = nn.ModuleList(nn.ConvTranspose2d(width * 2 ** (i + 1), width * 2 ** i, 4, 2, 1)
                                 for i in reversed(range(num_up)))
        self.head = _conv(width, c_out, 7, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for up in self.ups:
            x = F.relu(F.instance_norm(up(x), eps=1e-5))
        return self.head(x)


class GeneratorE2D2(nn.Module):
    """SaGAN's G: AMN (encoder + decoder on [I, c] -> I_a, tanh) and SAN (encoder + decoder on I
    -> b, sigmoid); G(I, c) = I_a * b + I * (1 - b)."""

    def __init__(self, width: int = 32, num_down: int = 3, num_res_blocks: int = 4):
        super().__init__()
        self.amn_encoder = Encoder(4, width, num_down, num_res_blocks)
        self.amn_decoder = Decoder(3, width, num_down)
        self.san_encoder = Encoder(3, width, num_down, num_res_blocks)
        self.san_decoder = Decoder(1, width, num_down)

    def forward(self, image: torch.Tensor, c: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """image (B, 3, H, W); c (B,) or (K, B): K target values per image, as in ours, with the
        SAN (which does not see c) run once for all K. Returns (G(I, c), I_a, b), each with a
        leading K axis when c has one."""
        several = c.ndim == 2
        cs = c if several else c[None]
        k, batch = cs.shape
        images = image.repeat(k, 1, 1, 1) if k > 1 else image
        plane = cs.reshape(-1, 1, 1, 1).to(image.dtype).expand(-1, 1, *image.shape[2:])
        attribute_image = torch.tanh(
            self.amn_decoder(self.amn_encoder(torch.cat([images, plane], 1))))
        mask = torch.sigmoid(self.san_decoder(self.san_encoder(image)))
        if k > 1:
            mask = mask.repeat(k, 1, 1, 1)
        out = attribute_image * mask + images * (1.0 - mask)
        if several:
            return tuple(t.reshape((k, batch) + t.shape[1:]) for t in (out, attribute_image, mask))
        return out, attribute_image, mask


class Discriminator(nn.Module):
    """num_layers Conv4x4/2 + LeakyReLU(0.2), then D_src (Conv3x3/1 -> 1 patch scores) and D_cls
    (Conv over the whole final map -> 1 logit). Returns (src (B, h, w), cls (B,))."""

    def __init__(self, image_size: int = 128, width: int = 32, num_layers: int = 6):
        super().__init__()
        if image_size % 2 ** num_layers:
            raise ValueError(f"image size {image_size} is not divisible by {2 ** num_layers}")
        widths = [3] + [width * 2 ** i for i in range(num_layers)]
        self.trunk = nn.ModuleList(_conv(widths[i], widths[i + 1], 4, 2, 1)
                                   for i in range(num_layers))
        final = image_size // 2 ** num_layers  # 2 at 128 px
        self.src = _conv(widths[-1], 1, 3, 1, 1)
        self.cls = nn.Conv2d(widths[-1], 1, final)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for conv in self.trunk:
            x = F.leaky_relu(conv(x), 0.2)
        return self.src(x)[:, 0], self.cls(x).reshape(-1)


def init_weights(module: nn.Module) -> None:
    """SaGAN's initialisation, as ours: conv weights N(0, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        nn.init.zeros_(module.bias)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- The losses (METHOD.md section 2; msagan_jax/losses.py) ---------------------------------

def gradient_penalty(d: Discriminator, real: torch.Tensor, fake: torch.Tensor,
                     epsilon: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: E[(||grad_x D_src(x)||_2 - 1)^2], per image, at x = eps real + (1 - eps) fake."""
    eps = epsilon.reshape(-1, 1, 1, 1)
    x = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    # create_graph: the penalty's own gradient w.r.t. D's weights is part of D's step.
    (grad,) = torch.autograd.grad(d(x)[0].sum(), x, create_graph=True)
    norm = torch.sqrt(grad.square().flatten(1).sum(1) + 1e-12)
    return (norm - 1.0).square().mean()


def sde(m: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Set-difference error, eq. 4: E[max(m - b, 0)]."""
    return F.relu(m - b).mean()


class Reference:
    """The two networks, their optimisers, and one training iteration."""

    def __init__(self, image_size: int = 128, width: int = 32, num_down: int = 3,
                 num_res_blocks: int = 4, d_width: int = 32, d_num_layers: int = 6,
                 passes: str = "shared", device: str = "cpu", seed: int = 0,
                 gp_weight: float = 10.0, rec_id_weight: float = 100.0,
                 rec_dual_weight: float = 20.0, mask_id_weight: float = 100.0,
                 mask_dual_weight: float = 20.0):
        if passes not in ("shared", "separate"):
            raise ValueError(f"passes must be shared or separate, not {passes!r}")
        torch.manual_seed(seed)
        self.device, self.passes = torch.device(device), passes
        self.g = GeneratorE2D2(width, num_down, num_res_blocks).to(self.device)
        self.d = Discriminator(image_size, d_width, d_num_layers).to(self.device)
        self.g.apply(init_weights)
        self.d.apply(init_weights)
        self.g_opt = torch.optim.Adam(self.g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.d_opt = torch.optim.Adam(self.d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.gp_weight = gp_weight
        self.rec_weights = (rec_id_weight, rec_dual_weight)
        self.mask_weights = (mask_id_weight, mask_dual_weight)

    def d_step(self, image: torch.Tensor, label: torch.Tensor,
               epsilon: torch.Tensor) -> dict[str, torch.Tensor]:
        """One D step: L_D = mean D(fake) - mean D(real) + 10 GP + BCE(D_cls(real), c)."""
        with torch.no_grad():  # ours: stop_gradient on the edit, so G's backward never runs
            fake = self.g(image, 1.0 - label)[0]
        if self.passes == "shared":
            # Real and edited in one pass, as ours: D has no batch statistics.
            scores, logits = self.d(torch.cat([image, fake]))
            n = image.shape[0]
            real_scores, fake_scores, logits = scores[:n], scores[n:], logits[:n]
        else:
            real_scores, logits = self.d(image)
            fake_scores = self.d(fake)[0]
        src = fake_scores.mean() - real_scores.mean()
        gp = gradient_penalty(self.d, image, fake, epsilon)
        cls = F.binary_cross_entropy_with_logits(logits, label)
        loss = src + self.gp_weight * gp + cls
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.d_opt.step()
        return {"d/loss": loss.detach(), "d/src": src.detach(), "d/gp": gp.detach(),
                "d/cls": cls.detach()}

    def g_step(self, image: torch.Tensor, label: torch.Tensor,
               guide: torch.Tensor) -> dict[str, torch.Tensor]:
        """One G step: -mean D_src(edit) + BCE(D_cls(edit), 1 - c) + 100 L1(identity) + 20
        L1(dual) + 100 SDE(m, b_id) + 20 SDE(m, b_dual)."""
        # Ours differentiates w.r.t. G's parameters only; so does this (no D weight gradients).
        self.d.requires_grad_(False)
        if self.passes == "shared":
            both, _, b_both = self.g(image, torch.stack([1.0 - label, label]))
            edit, identity, b_id = both[0], both[1], b_both[1]
        else:
            edit = self.g(image, 1.0 - label)[0]
            identity, _, b_id = self.g(image, label)
        dual, _, b_dual = self.g(edit, label)
        scores, logits = self.d(edit)
        adv = -scores.mean()
        cls = F.binary_cross_entropy_with_logits(logits, 1.0 - label)
        rec_id, rec_dual = (identity - image).abs().mean(), (dual - image).abs().mean()
        mask_id, mask_dual = sde(guide, b_id), sde(guide, b_dual)
        loss = (adv + cls + self.rec_weights[0] * rec_id + self.rec_weights[1] * rec_dual
                + self.mask_weights[0] * mask_id + self.mask_weights[1] * mask_dual)
        self.g_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.g_opt.step()
        self.d.requires_grad_(True)
        return {"g/loss": loss.detach(), "g/adv": adv.detach(), "g/cls": cls.detach(),
                "g/rec_id": rec_id.detach(), "g/rec_dual": rec_dual.detach(),
                "g/mask_id": mask_id.detach(), "g/mask_dual": mask_dual.detach()}

    def iteration(self, batch: dict[str, torch.Tensor],
                  epsilons: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """len(batch) - 1 D steps (3 at the recipe), each on its own batch, then one G step on
        the last. batch: image (K, B, 3, H, W), label (K, B), mask (K, B, 1, H, W); epsilons
        (K - 1, B), the interpolation weights of the penalty (drawn here when None)."""
        k = batch["image"].shape[0] - 1
        if epsilons is None:
            epsilons = torch.rand(k, batch["image"].shape[1], device=self.device)
        d_metrics = [self.d_step(batch["image"][i], batch["label"][i], epsilons[i])
                     for i in range(k)]
        metrics = {name: torch.stack([m[name] for m in d_metrics]).mean() for name in d_metrics[0]}
        metrics.update(self.g_step(batch["image"][k], batch["label"][k], batch["mask"][k]))
        return metrics


# --- The benchmark -----------------------------------------------------------------------------

def random_batch(k: int, batch_size: int, size: int,
                 device: torch.device) -> dict[str, torch.Tensor]:
    """benchmarks/train_speed.py's random batch (same generator, seed and draws), NHWC -> NCHW."""
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (k, batch_size, size, size, 3)).astype(np.float32)
    label = rng.integers(0, 2, (k, batch_size)).astype(np.float32)
    mask = (rng.uniform(size=(k, batch_size, size, size, 1)) > 0.9).astype(np.float32)
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    return {"image": to(image.transpose(0, 1, 4, 2, 3)), "label": to(label),
            "mask": to(mask.transpose(0, 1, 4, 2, 3))}


def check_parameter_counts(reference: Reference, image_size: int) -> tuple[int, int]:
    """Prints G's and D's parameter counts and asserts they are ours (D's at 128 px: its D_cls
    kernel is the final map, so it depends on the image size)."""
    g, d = parameter_count(reference.g), parameter_count(reference.d)
    print(f"parameters: G (E2D2) {g:,} (ours {EXPECTED_G_PARAMS:,}), D {d:,}"
          + (f" (ours {EXPECTED_D_PARAMS:,})" if image_size == 128
             else " (not checked: not 128 px)"))
    assert g == EXPECTED_G_PARAMS, f"G has {g:,} parameters, ours {EXPECTED_G_PARAMS:,}"
    assert image_size != 128 or d == EXPECTED_D_PARAMS, \
        f"D has {d:,} parameters, ours {EXPECTED_D_PARAMS:,}"
    print("parameter-count check: OK (" + ("G and D equal" if image_size == 128 else "G equals")
          + " msagan_jax's)")
    return g, d


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark(iterations: int, batch_size: int, image_size: int, passes: str,
              device: str) -> dict[str, Any]:
    """Times a warm-up iteration and `iterations` more; returns the figures."""
    reference = Reference(image_size=image_size, passes=passes, device=device)
    g_params, d_params = check_parameter_counts(reference, image_size)
    batch = random_batch(4, batch_size, image_size, reference.device)
    name = torch.cuda.get_device_name(reference.device) if reference.device.type == "cuda" \
        else machine.cpu_line()
    print(f"torch {torch.__version__} on {reference.device.type} ({name}), "
          f"{torch.get_num_threads()} threads (torch's default), batch {batch_size}, "
          f"{image_size} px, float32, passes {passes}", flush=True)

    start = time.perf_counter()
    reference.iteration(batch)  # warm-up: allocator, oneDNN/cuDNN kernel choices
    _sync(reference.device)
    warmup_s = time.perf_counter() - start
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        reference.iteration(batch)
        _sync(reference.device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"warm-up {warmup_s:.2f} s (excluded); s/iteration {median:.3f} (median of "
          f"{iterations}: {', '.join(f'{t:.2f}' for t in times)}), {4 * batch_size / median:.1f} "
          f"images/s", flush=True)
    return {"system": "torch", "structure": "e2d2", "passes": passes,
            "torch_version": torch.__version__, "device": reference.device.type,
            "device_name": name, "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "cpu_count": os.cpu_count(),
            "batch_size": batch_size, "image_size": image_size, "warmup_s": warmup_s,
            "iteration_s": median, "iteration_times_s": times, "iterations_per_s": 1 / median,
            "images_per_s": 4 * batch_size / median, "g_params": g_params, "d_params": d_params,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


# --- The check against ours --------------------------------------------------------------------

def _load_from_flax(reference: Reference, g_params: Any, d_params: Any) -> None:
    """Copies msagan_jax's E2D2 parameters into the torch networks (HWIO -> OIHW; our UpConv's
    (4, 4, in, out) kernel is ConvTranspose2d's (in, out, 4, 4) weight, unflipped)."""
    def conv(module: nn.Module, p: Any, transposed: bool = False) -> None:
        kernel = torch.from_numpy(np.array(p["kernel"]))
        module.weight.data.copy_(kernel.permute(2, 3, 0, 1) if transposed
                                 else kernel.permute(3, 2, 0, 1))
        module.bias.data.copy_(torch.from_numpy(np.array(p["bias"])))

    def encoder(module: Encoder, p: Any) -> None:
        conv(module.stem, p["Conv_0"])
        for i, down in enumerate(module.downs):
            conv(down, p[f"DownConv_{i}"])
        for i, block in enumerate(module.blocks):
            q = p[f"ResidualBlock_{i}"]
            for j in (0, 1):
                conv(getattr(block, f"conv{j}"), q[f"Conv_{j}"])
                norm = getattr(block, f"norm{j}")
                norm_params = q[f"InstanceNorm_{j}"]
                norm.weight.data.copy_(torch.from_numpy(np.array(norm_params["scale"])))
                norm.bias.data.copy_(torch.from_numpy(np.array(norm_params["bias"])))

    def decoder(module: Decoder, p: Any) -> None:
        for i, up in enumerate(module.ups):
            conv(up, p[f"UpConv_{i}"], transposed=True)
        conv(module.head, p["Conv_0"])

    f = g_params["params"]["F"]
    encoder(reference.g.amn_encoder, f["encoder_a"])
    decoder(reference.g.amn_decoder, f["decoder_a"])
    encoder(reference.g.san_encoder, f["encoder_s"])
    decoder(reference.g.san_decoder, f["decoder_s"])
    p = d_params["params"]
    for i, layer in enumerate(reference.d.trunk):
        conv(layer, p[f"DownConv_{i}"])
    conv(reference.d.src, p["D_src"])
    conv(reference.d.cls, p["D_cls"])


def compare_with_ours(batch_size: int = 2, image_size: int = 64, width: int = 8) -> float:
    """One iteration of ours and of this reference from the same parameters, batch and penalty
    weights, at a tiny size; prints each loss term of both and returns the largest relative
    difference. (It imports jax; run it with nothing else heavy running.)"""
    from msagan_jax.console import choose_platform
    choose_platform()
    import jax
    import jax.numpy as jnp
    from configs import default
    from msagan_jax import train

    config = default.get_config()
    config.structure, config.image_size, config.batch_size = "e2d2", image_size, batch_size
    config.width = config.d_width = width
    state = train.init_state(config, 1000)
    rng = np.random.default_rng(0)
    k = config.d_steps + 1
    shape = (k, batch_size, image_size, image_size)
    batch = {"image": rng.uniform(-1, 1, shape + (3,)).astype(np.float32),
             "label": rng.integers(0, 2, (k, batch_size)).astype(np.float32),
             "mask": (rng.uniform(size=shape + (1,)) > 0.9).astype(np.float32)}
    # The penalty's interpolation weights, drawn exactly as train_iteration draws them.
    keys = jax.random.split(jax.random.fold_in(state.rng, state.step), config.d_steps)
    epsilons = np.stack([np.asarray(jax.random.uniform(key, (batch_size,))) for key in keys])

    reference = Reference(image_size=image_size, width=width, d_width=width)
    _load_from_flax(reference, jax.device_get(state.g_params), jax.device_get(state.d_params))
    theirs = reference.iteration(
        {"image": torch.from_numpy(batch["image"].transpose(0, 1, 4, 2, 3).copy()),
         "label": torch.from_numpy(batch["label"]),
         "mask": torch.from_numpy(batch["mask"].transpose(0, 1, 4, 2, 3).copy())},
        torch.from_numpy(epsilons))
    _, ours = jax.jit(train.make_train_iteration(config, 1000))(
        state, jax.tree.map(jnp.asarray, batch))
    worst = 0.0
    print(f"one iteration at {image_size} px, batch {batch_size}, width {width}:")
    for name, value in theirs.items():
        a, b = float(ours[name]), float(value)
        rel = abs(a - b) / max(abs(a), 1e-6)
        worst = max(worst, rel)
        print(f"  {name:12s} ours {a: .6e}  torch {b: .6e}  relative difference {rel:.1e}")
    print(f"largest relative difference {worst:.1e}")
    return worst


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=3,
                        help="timed iterations (after a warm-up one)")
    parser.add_argument("--batch_size", type=int, default=16, help="batch of each D or G step")
    parser.add_argument("--image_size", type=int, default=128, help="pixels")
    parser.add_argument("--passes", choices=("shared", "separate"), default="shared",
                        help="shared: the passes ours shares (D on real+fake at once, the SAN once "
                             "for edit and identity); separate: the public SaGAN code's")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda")
    parser.add_argument("--json", default="", help="also write the results to this JSON file")
    parser.add_argument("--params_only", action="store_true", help="only the parameter-count check")
    parser.add_argument("--compare", action="store_true",
                        help="one tiny iteration of ours and this reference from the same weights")
    args = parser.parse_args(argv)
    if args.compare:
        sys.exit(0 if compare_with_ours() < 1e-3 else 1)
    if args.params_only:
        check_parameter_counts(Reference(image_size=args.image_size), args.image_size)
        return
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    result = benchmark(args.iterations, args.batch_size, args.image_size, args.passes, device)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
