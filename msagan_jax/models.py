"""The editing network F in the paper's four structures, the generator G, and the discriminator.

    I_a, b = F(I, c)                          attribute image (tanh, 3 ch), attention mask (sigmoid)
    G(I, c) = I_a * b + I * (1 - b)           outside the mask the output is the input

Options that are not the paper's, for small models (README, Quick start): `attribute_image=
"colour_transform"` draws I_a as a per-pixel affine map of the input's colours, `"warp"` as the
input moved by a per-pixel flow and blended with painted colour, `conditional_norm` gives
the residual blocks' norms a scale and bias that depend on c; the discriminator's
`region_size` adds a second D over a crop around the guide mask, and its `spectral_norm`
divides each of its kernels by its largest singular value (Miyato et al. 2018).

Structures (paper Fig. 2; "encoder" = the down-sampling convolutions plus the residual
bottleneck, "decoder" = the up-sampling path and the output convolution):

    e2d2  SaGAN: AMN = encoder+decoder on [I, c] -> I_a;  SAN = encoder+decoder on I -> b
    e2d1  an AMN encoder on [I, c] and a SAN encoder on I, features concatenated, one decoder -> 4 ch
    e1d2  one encoder on [I, c], two decoders: one -> I_a, one -> b
    e1d1  one encoder on [I, c], one decoder -> 4 ch (3 tanh for I_a, 1 sigmoid for b)

The layer recipe is METHOD.md's (SaGAN as the public re-implementations build it): PyTorch's
paddings, N(0, 0.02) weights, InstanceNorm (with a learned scale and bias in the residual blocks,
where the public code has BatchNorm; see `_norm`). Instance norm keeps no batch statistics, so
every apply is a pure function of (params, inputs).

The judge, a ResNet attribute classifier that scores the editors (METHOD.md section 4), is at
the end. `create_models(config)` and `create_judge(config)` build them from a config.
"""

from __future__ import annotations

from typing import Any, Sequence

import ml_collections

import flax.linen as nn
import jax
import jax.numpy as jnp

from msagan_jax import parallel

STRUCTURES = ("e2d2", "e2d1", "e1d2", "e1d1")
# How the stride-2 layers compute (same parameters, same results within float32 rounding):
# "matmul" as strided slices and matrix products, "xla" as lax's own convolutions, "auto" the
# one measured faster on the platform (resolve_conv_impl).
CONV_IMPLS = ("auto", "matmul", "xla")
# How F draws I_a, and from how many decoder channels: "direct", the paper's tanh of 3;
# "colour_transform" (not the paper's), a per-pixel 3x3 matrix and offset (12) applied to the
# input's colour; "warp" (not the paper's), a flow (2), a blend weight (1) and a painted colour
# (3) (EditingNetwork._draw).
ATTRIBUTE_IMAGE_CHANNELS = {"direct": 3, "colour_transform": 12, "warp": 6}
# The warp's largest shift, as a share of the image's side (an open mouth at 64 px is 3-6 px).
WARP_REACH = 1 / 8
ATTRIBUTE_IMAGES = tuple(ATTRIBUTE_IMAGE_CHANNELS)
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# SaGAN's re-implementations initialise every weight from N(0, 0.02), biases from zero.
_init = nn.initializers.normal(stddev=0.02)
# Power-iteration steps for D's spectral norm (spectral_normalize): stateless, so more than
# Miyato et al.'s one a step with a kept vector.
SPECTRAL_ITERATIONS = 8
Dtype = Any


def tile_condition(image: jax.Array, c: jax.Array) -> jax.Array:
    """[I, c]: the target value c (B,) tiled to an extra input channel."""
    plane = jnp.broadcast_to(c.astype(image.dtype)[:, None, None, None], image.shape[:3] + (1,))
    return jnp.concatenate([image, plane], axis=-1)


def edit_condition(config: Any, target: Any) -> Any:
    """The c that G is given at inference to edit toward `target` (0 or 1, or between; numpy
    or jax): config.edit_condition_to_0 and _to_1 at the ends, linear between. Training always
    gives 0 and 1; a c past them strengthens the edit (AttGAN's test_int; not the paper's)."""
    to_0, to_1 = config.edit_condition_to_0, config.edit_condition_to_1
    return to_0 + target * (to_1 - to_0)


def warp(image: jax.Array, flow: jax.Array) -> jax.Array:
    """image (N, H, W, C) sampled bilinearly at each pixel's position plus flow (N, H, W, 2:
    rows, columns, in pixels); positions past the border take the nearest edge pixel."""
    rows = jnp.arange(image.shape[1])[:, None] + flow[..., 0]
    cols = jnp.arange(image.shape[2])[None, :] + flow[..., 1]

    def sample(plane, r, c):
        return jax.scipy.ndimage.map_coordinates(plane, [r, c], order=1, mode="nearest")

    per_channel = jax.vmap(sample, in_axes=(-1, None, None), out_axes=-1)
    return jax.vmap(per_channel)(image, rows, cols)


def _conv(features: int, kernel: int, stride: int, pad: int, dtype: Dtype, name: str | None = None,
          conv: Any = nn.Conv):
    return conv(features, (kernel, kernel), strides=(stride, stride),
                padding=((pad, pad), (pad, pad)), kernel_init=_init, dtype=dtype, name=name,
                conv_general_dilated=even_channels_conv)


def _odd(n: int) -> int:
    return n % 2 if n > 1 else 0


def even_channels_conv(lhs: jax.Array, rhs: jax.Array, *args: Any,
                       dimension_numbers: Any, **kwargs: Any) -> jax.Array:
    """lax.conv_general_dilated (flax's NHWC / HWIO) with an odd number of input or output
    channels above 1 made even by a zero channel (and the extra output dropped): the same
    result and gradients. XLA's CPU backend runs odd channel counts far slower: at 128 px and
    batch 16, E2D2's last 7x7 layer (32 -> 3) forward and both gradients in 201 against 124 ms,
    SaGAN's attention network's first (3 -> 32) forward in 102 against 35 ms
    (benchmarks/layer_speed.py --layer conv7; README, Measured)."""
    numbers = dimension_numbers
    if numbers.rhs_spec[:2] != (3, 2) or numbers.lhs_spec[1] != 3 or numbers.out_spec[1] != 3:
        raise ValueError(f"even_channels_conv expects NHWC inputs and HWIO kernels, not "
                         f"{dimension_numbers}")
    extra_in, extra_out = _odd(rhs.shape[2]), _odd(rhs.shape[3])
    if extra_in:
        lhs = jnp.pad(lhs, ((0, 0),) * 3 + ((0, 1),))
    if extra_in or extra_out:
        rhs = jnp.pad(rhs, ((0, 0), (0, 0), (0, extra_in), (0, extra_out)))
    y = jax.lax.conv_general_dilated(lhs, rhs, *args, dimension_numbers=dimension_numbers,
                                     **kwargs)
    return y[..., :-1] if extra_out else y


def _norm(dtype: Dtype, affine: bool = False) -> nn.Module:
    # PyTorch's InstanceNorm2d: eps 1e-5, per-image, per-channel statistics. The public SaGAN
    # code's conv blocks use InstanceNorm2d (affine=False); its residual blocks use BatchNorm2d,
    # which learns a scale and bias. Ours are InstanceNorm with a learned scale and bias there:
    # the same parameters (E2D2 matches its 12,220,644) and a pure function of each image, with
    # no running statistics and so no train/eval mismatch (an edit does not depend on the batch).
    return nn.InstanceNorm(epsilon=1e-5, dtype=dtype, use_scale=affine, use_bias=affine)


_NHWC = ("NHWC", "HWIO", "NHWC")


class DownConv(nn.Module):
    """PyTorch's Conv2d(kernel 4, stride 2, padding 1): halves the size.

    Computed as one matrix product, of the input's patches (im2col) or of the input with the
    kernel's 4 windows side by side (stride2_by_patches, stride2_by_shifted_output: whichever
    copies less): the same kernel (4, 4, in, out) and result, but its gradients, and the
    gradients of its gradients that WGAN-GP's penalty needs, are slices, pads and matrix
    products. XLA's CPU backend runs the dilated convolutions these otherwise become many times
    slower (README, "Measured").
    """

    features: int
    dtype: Dtype = jnp.float32
    impl: str = "matmul"  # or "xla": lax.conv_general_dilated, the same kernel and result

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, height, width, channels = x.shape
        if height % 2 or width % 2:
            raise ValueError(f"a stride-2 layer needs an even size, not {height}x{width}")
        kernel = self.param("kernel", _init, (4, 4, channels, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        if self.impl == "xla":
            return stride2_by_lax(x, kernel) + bias
        if uses_shifted_output(channels, self.features, height // 2, width // 2):
            return stride2_by_shifted_output(x, kernel) + bias
        return stride2_by_patches(x, kernel) + bias


def stride2_by_lax(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Conv2d(4, stride 2, padding 1) without bias as lax's own convolution (conv_impl=xla)."""
    return jax.lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                                        dimension_numbers=_NHWC)


def _space_to_depth(x: jax.Array) -> jax.Array:
    """The input padded by 1, (B, 2h, 2w, C) -> (B, h + 1, w + 1, 4C), channels (py, px, c).

    Output pixel (i, j) of the 4x4 / 2 convolution reads padded input (2i + ky, 2j + kx). With
    ky = 2 qy + py that is space-to-depth row i + qy, phase py: the convolution is a 2x2
    convolution of this array, its 4 windows (qy, qx) contiguous, not 16 strided slices."""
    batch, height, width, channels = x.shape
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = height // 2 + 1, width // 2 + 1
    s2d = x.reshape(batch, h, 2, w, 2, channels).transpose(0, 1, 3, 2, 4, 5)
    return s2d.reshape(batch, h, w, 4 * channels)


def stride2_by_patches(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Conv2d(4, stride 2, padding 1) without bias as one product of the input's patches (the 4
    windows of _space_to_depth side by side, 16 * C numbers a pixel) with the kernel."""
    batch, height, width, channels = x.shape
    s2d, features = _space_to_depth(x), kernel.shape[-1]
    h, w = height // 2, width // 2
    patches = jnp.concatenate([s2d[:, qy:qy + h, qx:qx + w] for qy in (0, 1) for qx in (0, 1)],
                              axis=-1)
    k = kernel.reshape(2, 2, 2, 2, channels, features)  # (qy, py, qx, px, c, out)
    k = k.transpose(0, 2, 1, 3, 4, 5).reshape(16 * channels, features)
    return jnp.dot(patches.reshape(-1, 16 * channels), k).reshape(batch, h, w, features)


def stride2_by_shifted_output(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The same as stride2_by_patches as one product of _space_to_depth's array with the 4
    windows' kernels side by side (4 * features numbers a pixel), then the sum of the 4 windows
    of that output: nothing of the input copied, one more row and column computed."""
    batch, height, width, channels = x.shape
    s2d, features = _space_to_depth(x), kernel.shape[-1]
    h, w = height // 2, width // 2
    k = kernel.reshape(2, 2, 2, 2, channels, features)  # (qy, py, qx, px, c, out)
    k = k.transpose(1, 3, 4, 0, 2, 5).reshape(4 * channels, 4 * features)
    z = jnp.dot(s2d.reshape(-1, 4 * channels), k).reshape(batch, h + 1, w + 1, 4, features)
    return sum(z[:, qy:qy + h, qx:qx + w, 2 * qy + qx] for qy in (0, 1) for qx in (0, 1))


def uses_shifted_output(channels: int, features: int, out_height: int,
                        out_width: int) -> bool:
    """Whether DownConv uses stride2_by_shifted_output rather than stride2_by_patches. It
    writes 4 * features numbers a pixel where the patches copy 16 * channels, but computes one
    more row and column of output, so it pays for a layer that widens by less than 4x at an
    output of 8 or more a side: at the paper's recipe G's encoder's stride-2 layers and D's but
    its first and last two (benchmarks/layer_speed.py on the CPU; README, Measured)."""
    return features < 4 * channels and min(out_height, out_width) >= 8


# Output row 2m + a of a 4x4, stride-2, padding-1 transposed convolution reads input rows
# m - 1 + a and m + a through these kernel rows (the same for columns).
_PHASE_ROWS = {0: (3, 1), 1: (2, 0)}


class UpConv(nn.Module):
    """PyTorch's ConvTranspose2d(kernel 4, stride 2, padding 1): doubles the size.

    y[2i - 1 + k] += x[i] @ kernel[k] (in each spatial axis). Computed as a 2x2 convolution
    of the input (padded by 1) to 4x the channels, one group per output phase (a, b), then
    depth-to-space: the FLOPs of the transposed convolution with no zeros inserted. The 2x2
    convolution is itself one matrix product over its 4 shifted windows, so that its gradients
    are matrix products too, which XLA's CPU backend runs much faster than those of
    lax.conv_transpose or of a 2x2 convolution. Same kernel (4, 4, in, out) and result.
    """

    features: int
    dtype: Dtype = jnp.float32
    impl: str = "matmul"  # or "xla": the input dilated by 2, the kernel flipped (a transpose)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, height, width, channels = x.shape
        kernel = self.param("kernel", _init, (4, 4, channels, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
        if self.impl == "xla":
            # y[o] = sum_t dilated(x)[o + t - 2] kernel[3 - t]: PyTorch's padding 1 is 4 - 1 - 1.
            return jax.lax.conv_general_dilated(x, kernel[::-1, ::-1], (1, 1), ((2, 2), (2, 2)),
                                                lhs_dilation=(2, 2),
                                                dimension_numbers=_NHWC) + bias
        rows = {a: jnp.asarray(r) for a, r in _PHASE_ROWS.items()}
        phases = jnp.stack([jnp.stack([kernel[rows[a]][:, rows[b]] for b in (0, 1)], axis=-2)
                            for a in (0, 1)], axis=-3)  # (2, 2, in, a, b, out)
        # im2col: as a convolution, XLA's CPU backend ran this layer's weight gradient at
        # ~3 GFLOP/s, a quarter of E2D2's G step (README, Measured).
        x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        patches = jnp.concatenate([x[:, dy:dy + height + 1, dx:dx + width + 1]
                                   for dy in (0, 1) for dx in (0, 1)], axis=-1)
        y = jnp.dot(patches.reshape(-1, 4 * channels),
                    phases.reshape(4 * channels, 4 * self.features))
        y = y.reshape(batch, height + 1, width + 1, 2, 2, self.features)
        # Phase (a, b) of output pixel (m, n) is window (m + a, n + b) of channel group (a, b).
        y = jnp.stack([jnp.stack([y[:, a:a + height, b:b + width, a, b] for b in (0, 1)], axis=3)
                       for a in (0, 1)], axis=2)  # (batch, height, a, width, b, out)
        return y.reshape(batch, 2 * height, 2 * width, self.features) + bias


class ConditionalAffine(nn.Module):
    """x * (1 + s * scale) + s * bias, s = 2c - 1 = -1 or +1 per image: a norm's learned scale
    and bias made to depend on the target c (conditional instance norm; not the paper's).

    The paper's only path for c is a constant input plane. Away from the first conv's
    zero-padded border it adds the same amount to every pixel of a channel, so after the first
    instance norm it only scales and shifts each channel, by amounts the border's statistics
    set (README, Quick start). This makes that scale and shift learned, at the bottleneck.
    Zero-initialised: it starts as the plain network."""

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.zeros, (features,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
        s = (2.0 * c - 1.0).astype(x.dtype)[:, None, None, None]
        return x * (1.0 + s * scale.astype(x.dtype)) + s * bias.astype(x.dtype)


class ResidualBlock(nn.Module):
    """Conv3x3-Norm-ReLU-Conv3x3-Norm, plus the input. With c, each norm is conditioned on it
    (ConditionalAffine)."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array | None = None) -> jax.Array:
        features = x.shape[-1]

        def norm(y):
            y = _norm(self.dtype, True)(y)
            return y if c is None else ConditionalAffine()(y, c)

        y = nn.relu(norm(_conv(features, 3, 1, 1, self.dtype)(x)))
        y = norm(_conv(features, 3, 1, 1, self.dtype)(y))
        return x + y


class Encoder(nn.Module):
    """Conv 7x7/1 -> width, then `num_down` Conv 4x4/2 doubling the width, then the residual
    bottleneck. At the defaults: 32, 64, 128, 256 channels and 4 blocks, 128 px -> 16 px."""

    width: int = 32
    num_down: int = 3
    num_res_blocks: int = 4
    dtype: Dtype = jnp.float32
    conv_impl: str = "matmul"

    @nn.compact
    def __call__(self, x: jax.Array, c: jax.Array | None = None) -> jax.Array:
        """x: the input (with c's plane, for the encoder on [I, c]); c (B,): given, the
        residual blocks' norms are conditioned on it as well."""
        x = nn.relu(_norm(self.dtype)(_conv(self.width, 7, 1, 3, self.dtype)(x)))
        for i in range(self.num_down):
            down = DownConv(self.width * 2 ** (i + 1), self.dtype, self.conv_impl)
            x = nn.relu(_norm(self.dtype)(down(x)))
        for _ in range(self.num_res_blocks):
            x = ResidualBlock(dtype=self.dtype)(x, c)
        return x


class Decoder(nn.Module):
    """`num_up` Deconv 4x4/2 halving the width, then Conv 7x7/1 -> out_channels (no activation:
    the caller splits the channels and applies tanh / sigmoid). With `skip` (an image at the
    output's size) the last conv also sees it (`image_skip`, not the paper's)."""

    width: int = 32
    num_up: int = 3
    out_channels: int = 3
    dtype: Dtype = jnp.float32
    conv_impl: str = "matmul"

    @nn.compact
    def __call__(self, x: jax.Array, skip: jax.Array | None = None) -> jax.Array:
        for i in reversed(range(self.num_up)):
            up = UpConv(self.width * 2 ** i, self.dtype, self.conv_impl)
            x = nn.relu(_norm(self.dtype)(up(x)))
        if skip is not None:
            x = jnp.concatenate([x, skip.astype(x.dtype)], -1)
        return _conv(self.out_channels, 7, 1, 3, self.dtype)(x)


class EditingNetwork(nn.Module):
    """F(I, c) -> (I_a, b) in one of the four structures; I in [-1, 1] (B, H, W, 3), c (B,) or
    (K, B)."""

    structure: str = "e1d1"
    width: int = 32
    num_down: int = 3
    num_res_blocks: int = 4
    dtype: Dtype = jnp.float32
    conv_impl: str = "matmul"
    image_skip: bool = False
    conditional_norm: bool = False
    attribute_image: str = "direct"

    def setup(self):
        encoder = dict(width=self.width, num_down=self.num_down,
                       num_res_blocks=self.num_res_blocks, dtype=self.dtype,
                       conv_impl=self.conv_impl)
        decoder = dict(width=self.width, num_up=self.num_down, dtype=self.dtype,
                       conv_impl=self.conv_impl)
        two_encoders, two_decoders = self.structure[1] == "2", self.structure[3] == "2"
        a_channels = ATTRIBUTE_IMAGE_CHANNELS[self.attribute_image]
        # Names say which role a part plays, so parameter trees read like the paper's figure.
        self.encoder_a = Encoder(**encoder)  # on [I, c]
        self.encoder_s = Encoder(**encoder) if two_encoders else None  # SaGAN's SAN, on I
        if two_decoders:
            self.decoder_a = Decoder(out_channels=a_channels, **decoder)
            self.decoder_s = Decoder(out_channels=1, **decoder)
        else:
            self.decoder = Decoder(out_channels=a_channels + 1, **decoder)

    def _draw(self, raw: jax.Array, image: jax.Array) -> jax.Array:
        """I_a from the decoder's channels: tanh(raw) (the paper), tanh(A I + t) per pixel, or
        k W(I, f) + (1 - k) tanh(p): the input moved by a flow f, blended with a paint p.

        Every norm in F removes each channel's mean and scale, and with them a face's own
        colours: its identity pass repaints a red lipstick brown (README, Quick start). The
        colour transform takes the colour from the input pixel itself; the warp from anywhere
        within WARP_REACH, so an opening mouth can carry its own lower lip down. Zero channels
        draw grey (the colour transform) or half the input (the warp): starting from a copy of
        the input, G never learned to edit."""
        if self.attribute_image == "direct":
            return jnp.tanh(raw)
        if self.attribute_image == "warp":
            flow = jnp.tanh(raw[..., :2]) * (WARP_REACH * image.shape[1])
            keep = jax.nn.sigmoid(raw[..., 2:3])
            return keep * warp(image, flow) + (1.0 - keep) * jnp.tanh(raw[..., 3:])
        a = raw[..., :9].reshape(raw.shape[:-1] + (3, 3))
        return jnp.tanh(jnp.einsum("...ij,...j->...i", a, image) + raw[..., 9:])

    def __call__(self, image: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
        """c (B,) gives (I_a, b) shaped (B, H, W, C); c (K, B), K target values per image, gives
        them shaped (K, B, H, W, C). The parts that see only the image (SaGAN's SAN, E2D1's
        second encoder) then run once for all K, not K times: the same numbers, less work."""
        several = c.ndim == 2
        cs = c if several else c[None]
        k = cs.shape[0]
        x = image.astype(self.dtype)
        # The K passes run as one batch of B * K, each image's K copies side by side.
        repeat = (lambda y: parallel.interleave([y] * k)) if k > 1 else (lambda y: y)
        xs = repeat(x)
        flat_c = parallel.interleave(list(cs))
        h_a = self.encoder_a(tile_condition(xs, flat_c),
                             flat_c if self.conditional_norm else None)
        # The decoder that draws I_a may see the input at full size, to copy its colours.
        skip = xs if self.image_skip else None
        if self.structure == "e2d2":
            raw_a, raw_b = self.decoder_a(h_a, skip), repeat(self.decoder_s(self.encoder_s(x)))
        elif self.structure == "e1d2":
            raw_a, raw_b = self.decoder_a(h_a, skip), self.decoder_s(h_a)
        else:
            h = h_a if self.encoder_s is None else jnp.concatenate(
                [h_a, repeat(self.encoder_s(x))], -1)
            out = self.decoder(h, skip)
            raw_a, raw_b = out[..., :-1], out[..., -1:]
        # Activations in float32: the mask and image feed every loss.
        attribute_image = self._draw(raw_a.astype(jnp.float32), xs.astype(jnp.float32))
        mask = jax.nn.sigmoid(raw_b.astype(jnp.float32))
        if several:
            return parallel.deinterleave(attribute_image, k), parallel.deinterleave(mask, k)
        return attribute_image, mask


def compose(image: jax.Array, attribute_image: jax.Array, mask: jax.Array) -> jax.Array:
    """G(I, c) = I_a * b + I * (1 - b): the attribute image pasted in through the mask."""
    return attribute_image * mask + image * (1.0 - mask)


class Generator(nn.Module):
    """G: returns (G(I, c), I_a, b); with c (K, B), each has a leading axis of K."""

    structure: str = "e1d1"
    width: int = 32
    num_down: int = 3
    num_res_blocks: int = 4
    dtype: Dtype = jnp.float32
    conv_impl: str = "matmul"
    image_skip: bool = False
    conditional_norm: bool = False
    attribute_image: str = "direct"

    @nn.compact
    def __call__(self, image: jax.Array, c: jax.Array):
        attribute_image, mask = EditingNetwork(
            self.structure, self.width, self.num_down, self.num_res_blocks, self.dtype,
            self.conv_impl, self.image_skip, self.conditional_norm, self.attribute_image,
            name="F")(image, c)
        return compose(image, attribute_image, mask), attribute_image, mask


def region_layers(size: int) -> int:
    """Stride-2 layers of the region critic for a size x size crop: as many as leave a map of 2
    or more a side (2x2 for 16, 32 or 64; 3x3 for 24)."""
    layers = 0
    while size % 2 ** (layers + 1) == 0 and size // 2 ** (layers + 1) >= 2:
        layers += 1
    return layers


def region_crop(images: jax.Array, guides: jax.Array, size: int) -> jax.Array:
    """A size x size window of each image (B, H, W, C) with the pixel nearest the centroid of its
    guide mask (B, H, W, 1) at (size // 2, size // 2), or the image's centre where the mask is
    empty; moved to lie inside the image."""
    height, width = images.shape[1:3]
    weight = jax.lax.stop_gradient(guides[..., 0].astype(jnp.float32))
    total = jnp.sum(weight, axis=(1, 2))

    def corner(axis: int, extent: int) -> jax.Array:
        coords = jnp.arange(extent, dtype=jnp.float32)
        along = jnp.sum(weight, axis=axis)  # (B, extent)
        centre = jnp.where(total > 0, along @ coords / jnp.maximum(total, 1e-6),
                           (extent - 1) / 2)
        first = jnp.floor(centre + 0.5) - size // 2  # the nearest pixel at size // 2
        return jnp.clip(first, 0, extent - size).astype(jnp.int32)

    tops, lefts = corner(2, height), corner(1, width)
    window = (size, size, images.shape[-1])
    return jax.vmap(lambda x, t, l: jax.lax.dynamic_slice(x, (t, l, 0), window))(
        images, tops, lefts)


def spectral_normalize(kernel: jax.Array, iterations: int = SPECTRAL_ITERATIONS) -> jax.Array:
    """The kernel divided by the largest singular value of its (-1, out) matrix (Miyato et al.
    2018), found by power iteration from a fixed vector, so that D needs no state; as in their
    method, the gradient flows through sigma = u^T W v but not through u and v."""
    matrix = kernel.reshape(-1, kernel.shape[-1]).astype(jnp.float32)
    normalized = lambda x: x / (jnp.linalg.norm(x) + 1e-12)
    v = normalized(jnp.ones((matrix.shape[1],), jnp.float32).at[::2].set(-1.0) + 0.5)
    for _ in range(iterations):
        u = normalized(matrix @ v)
        v = normalized(matrix.T @ u)
    u, v = jax.lax.stop_gradient(normalized(matrix @ v)), jax.lax.stop_gradient(v)
    # The barrier keeps XLA from fusing the division into the layers that read the kernel:
    # fused, the quick start's iteration with d_width=32 took about 1.2x as long as the plain
    # D's on a CPU; kept apart, as long within the noise (README).
    return jax.lax.optimization_barrier(kernel / (u @ matrix @ v).astype(kernel.dtype))


def _spectral(variables: Any) -> Any:
    return jax.tree_util.tree_map_with_path(
        lambda path, x: spectral_normalize(x) if path[-1].key == "kernel" else x, variables)


def _layer(module: type[nn.Module], spectral_norm: bool, initializing: bool) -> Any:
    """`module`, its kernels spectrally normalized where D asks for it (same parameters).
    Initialisation takes the plain module: map_variables would store the normalized kernels."""
    if not spectral_norm or initializing:
        return module
    return nn.map_variables(module, "params", trans_in_fn=_spectral)


class Discriminator(nn.Module):
    """SaGAN's D: `num_layers` Conv 4x4/2 + LeakyReLU(0.2), no normalization, then two heads:
    D_src, a Conv 3x3/1 -> 1 patch score map, and D_cls, a Conv over the whole final map -> one
    attribute logit. Returns (src (B, h, w), cls (B,)); cls is None without `classify`.

    With `region_size` (not the paper's) it holds a second D, "region": the same layers, no
    D_cls, over a region_size crop around the guide mask (region_crop). Called with the guide
    masks it returns (src, cls, region_src); without, it runs the first D alone. With
    `spectral_norm` (not the paper's) every kernel is used spectrally normalized (the same
    parameters)."""

    width: int = 32
    num_layers: int = 6
    dtype: Dtype = jnp.float32
    conv_impl: str = "matmul"
    region_size: int = 0
    classify: bool = True
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, image: jax.Array, guide: jax.Array | None = None) -> tuple:
        size = image.shape[1]
        if size % 2 ** self.num_layers:
            raise ValueError(f"the discriminator's {self.num_layers} stride-2 layers need an "
                             f"image size divisible by {2 ** self.num_layers}, not {size}")
        down, conv = (_layer(m, self.spectral_norm, self.is_initializing())
                      for m in (DownConv, nn.Conv))
        x = image.astype(self.dtype)
        for i in range(self.num_layers):
            x = nn.leaky_relu(down(self.width * 2 ** i, self.dtype, self.conv_impl,
                                   name=f"DownConv_{i}")(x), 0.2)
        src = _conv(1, 3, 1, 1, self.dtype, "D_src", conv)(x)[..., 0].astype(jnp.float32)
        cls = None
        if self.classify:
            final = x.shape[1]  # 2 at 128 px with 6 layers
            cls = conv(1, (final, final), padding="VALID", kernel_init=_init,
                       dtype=self.dtype, name="D_cls")(x).reshape(-1).astype(jnp.float32)
        if guide is None or not self.region_size:
            return src, cls
        region = Discriminator(self.width, region_layers(self.region_size), self.dtype,
                               self.conv_impl, classify=False, spectral_norm=self.spectral_norm,
                               name="region")
        return src, cls, region(region_crop(image, guide, self.region_size))[0]


def init_discriminator(discriminator: Discriminator, key: jax.Array, image: jax.Array) -> Any:
    """D's parameters, its region critic's included when it has one."""
    if not discriminator.region_size:
        return discriminator.init(key, image)
    return discriminator.init(key, image, jnp.ones(image.shape[:3] + (1,), image.dtype))


def parameter_count(params: Any) -> int:
    """Number of scalars in a parameter tree."""
    return sum(x.size for x in jax.tree.leaves(params))


def subtree_counts(params: Any, names: Sequence[str]) -> dict[str, int]:
    """Parameter count of each named child of the editing network (encoder_a, decoder, ...)."""
    f = params["params"]["F"] if "F" in params.get("params", {}) else params["params"]
    return {name: parameter_count(f[name]) for name in names if name in f}


def resolve_conv_impl(conv_impl: str, platform: str | None = None) -> str:
    """"auto" -> the stride-2 form measured faster on `platform` (default: JAX's backend).

    CPU and GPU: "matmul". XLA's CPU backend runs the dilated convolutions of lax's forms, and
    the gradients of their gradients that WGAN-GP needs, several times slower; on an H200 the
    matmul forms made the paper's iteration 1.2-1.4x faster than cuDNN's convolutions, in
    float32 and bfloat16, for a longer compile and more memory (README, Measured). Elsewhere
    (TPU, not measured) "xla". benchmarks/train_speed.py --conv_impl compares them.
    """
    if conv_impl != "auto":
        return conv_impl
    return "matmul" if (platform or jax.default_backend()) in ("cpu", "gpu") else "xla"


def create_models(config: ml_collections.ConfigDict) -> tuple[Generator, Discriminator]:
    """G and D as a (validated) editor config describes them."""
    dtype = DTYPES[config.compute_dtype]
    impl = resolve_conv_impl(config.conv_impl)
    generator = Generator(config.structure, config.width, config.num_down,
                          config.num_res_blocks, dtype, impl, config.image_skip,
                          config.conditional_norm, config.attribute_image)
    return generator, Discriminator(config.d_width, config.d_num_layers, dtype=dtype,
                                    conv_impl=impl, region_size=config.d_region_size,
                                    spectral_norm=config.d_spectral_norm)


# --- The judge: a ResNet attribute classifier ------------------------------------------------

def _bn(train: bool, dtype: Any, **kwargs) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=dtype, **kwargs)


def _judge_conv(filters: int, kernel: int, strides: int, dtype: Any) -> nn.Conv:
    return nn.Conv(filters, (kernel, kernel), strides, use_bias=False, dtype=dtype)


def _add_shortcut(x, y, strides: int, train: bool, dtype: Any):
    """relu(x + y), x projected by a strided 1x1 conv where the shapes differ. The last norm of
    y starts at zero scale, so each block starts as the identity."""
    if x.shape != y.shape:
        x = _bn(train, dtype)(_judge_conv(y.shape[-1], 1, strides, dtype)(x))
    return nn.relu(x + y)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (ResNet-18/34)."""

    filters: int
    strides: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        y = _judge_conv(self.filters, 3, self.strides, self.dtype)(x)
        y = nn.relu(_bn(train, self.dtype)(y))
        y = _judge_conv(self.filters, 3, 1, self.dtype)(y)
        y = _bn(train, self.dtype, scale_init=nn.initializers.zeros)(y)
        return _add_shortcut(x, y, self.strides, train, self.dtype)


class BottleneckBlock(nn.Module):
    """1x1, 3x3 (strided, as in ResNet v1.5), 1x1 with 4x the channels, and a shortcut
    (ResNet-50 and deeper)."""

    filters: int
    strides: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        y = nn.relu(_bn(train, self.dtype)(_judge_conv(self.filters, 1, 1, self.dtype)(x)))
        y = _judge_conv(self.filters, 3, self.strides, self.dtype)(y)
        y = nn.relu(_bn(train, self.dtype)(y))
        y = _judge_conv(4 * self.filters, 1, 1, self.dtype)(y)
        y = _bn(train, self.dtype, scale_init=nn.initializers.zeros)(y)
        return _add_shortcut(x, y, self.strides, train, self.dtype)


# depth -> (block, blocks per stage)
ARCHITECTURES: dict[int, tuple[type[nn.Module], tuple[int, ...]]] = {
    10: (BasicBlock, (1, 1, 1, 1)),
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (BottleneckBlock, (3, 4, 6, 3)),
    101: (BottleneckBlock, (3, 4, 23, 3)),
    152: (BottleneckBlock, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """ResNet (v1.5) with one logit: the attribute's log-odds. Images in [-1, 1]."""

    stage_sizes: Sequence[int]
    block: type[nn.Module]
    width: int = 64
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(self.width, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], use_bias=False,
                    dtype=self.dtype)(x.astype(self.dtype))
        x = _bn(train, self.dtype)(x)
        x = nn.max_pool(nn.relu(x), (3, 3), (2, 2), padding="SAME")
        for i, blocks in enumerate(self.stage_sizes):
            for j in range(blocks):
                x = self.block(self.width * 2 ** i, strides=2 if i > 0 and j == 0 else 1,
                               dtype=self.dtype)(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(1)(x.astype(jnp.float32))[:, 0]


def create_judge(config: ml_collections.ConfigDict) -> ResNet:
    """The ResNet that config.judge.depth and config.judge.width describe."""
    block, stages = ARCHITECTURES[config.judge.depth]
    return ResNet(stages, block, config.judge.width)
