"""The editing networks, the generator and the discriminator."""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from msagan_jax import models

TINY = dict(width=4, num_down=2, num_res_blocks=1)


def _init(module, *inputs):
    return module.init(jax.random.PRNGKey(0), *inputs)


def _image(batch=2, size=32, seed=0):
    return jax.random.uniform(jax.random.PRNGKey(seed), (batch, size, size, 3), minval=-1, maxval=1)


def _plain_and_option(structure, **option):
    """(image, c, the plain G, its params, G with `option`, its params): one option's test bed."""
    image, c = _image(), jnp.array([0.0, 1.0])
    plain, net = models.Generator(structure, **TINY), models.Generator(structure, **TINY, **option)
    return image, c, plain, _init(plain, image, c), net, _init(net, image, c)


@pytest.mark.parametrize("structure", models.STRUCTURES)
def test_every_structure_returns_an_attribute_image_in_tanh_range_and_a_mask_in_0_1(structure):
    image, c = _image(), jnp.array([0.0, 1.0])
    net = models.EditingNetwork(structure, **TINY)
    attribute_image, mask = net.apply(_init(net, image, c), image, c)
    assert attribute_image.shape == (2, 32, 32, 3) and mask.shape == (2, 32, 32, 1)
    assert attribute_image.dtype == mask.dtype == jnp.float32
    assert float(jnp.min(mask)) >= 0 and float(jnp.max(mask)) <= 1
    assert float(jnp.max(jnp.abs(attribute_image))) <= 1


@pytest.mark.parametrize("structure", models.STRUCTURES)
def test_the_generator_returns_its_input_wherever_the_mask_is_zero(structure):
    image, c = _image(), jnp.array([1.0, 0.0])
    generator = models.Generator(structure, **TINY)
    params = jax.tree.map(lambda x: x, _init(generator, image, c))  # a mutable copy
    f = params["params"]["F"]
    # The mask comes from the last conv of the mask path: zero weights and a bias of -200 make
    # sigmoid exactly 0 in float32.
    if structure.endswith("d2"):
        last, channel = f["decoder_s"], 0
    else:
        last, channel = f["decoder"], 3
    conv = last[max(k for k in last if k.startswith("Conv_"))]
    conv["kernel"] = conv["kernel"].at[..., channel].set(0.0)
    conv["bias"] = conv["bias"].at[channel].set(-200.0)
    output, attribute_image, mask = generator.apply(params, image, c)
    assert float(jnp.max(mask)) == 0.0
    np.testing.assert_array_equal(output, image)
    assert float(jnp.max(jnp.abs(attribute_image - image))) > 0.1  # I_a itself is no copy


def test_compose_pastes_the_attribute_image_only_inside_the_mask():
    image, attribute_image = jnp.zeros((1, 4, 4, 3)), jnp.ones((1, 4, 4, 3))
    mask = jnp.zeros((1, 4, 4, 1)).at[:, :2].set(1.0)
    out = models.compose(image, attribute_image, mask)
    np.testing.assert_array_equal(out[:, :2], 1.0)
    np.testing.assert_array_equal(out[:, 2:], 0.0)


@pytest.mark.parametrize("conditional_norm", [False, True])
def test_sagan_attention_mask_ignores_the_target_value_but_its_attribute_image_does_not(
        conditional_norm):
    image = _image()
    net = models.EditingNetwork("e2d2", **TINY, conditional_norm=conditional_norm)
    params = _init(net, image, jnp.zeros(2))
    a0, b0 = net.apply(params, image, jnp.zeros(2))
    a1, b1 = net.apply(params, image, jnp.ones(2))
    np.testing.assert_array_equal(b0, b1)  # SAN sees the image alone
    assert float(jnp.max(jnp.abs(a0 - a1))) > 0


@pytest.mark.parametrize("structure,expected", [
    ("e2d2", 12_220_644), ("e2d1", 12_056_580), ("e1d2", 6_802_596), ("e1d1", 6_114_244)])
def test_parameter_counts_at_the_paper_recipe(structure, expected):
    # e2d2 is the public PyTorch SaGAN's 12,220,644 (AMN 6,112,675 + SAN 6,107,969).
    image, c = jnp.zeros((1, 128, 128, 3)), jnp.zeros(1)
    generator = models.Generator(structure)
    shapes = jax.eval_shape(functools.partial(generator.init, jax.random.PRNGKey(0)), image, c)
    assert models.parameter_count(shapes) == expected
    if structure == "e2d2":
        parts = models.subtree_counts(shapes, ["encoder_a", "decoder_a", "encoder_s", "decoder_s"])
        assert parts["encoder_a"] + parts["decoder_a"] == 6_112_675  # AMN
        assert parts["encoder_s"] + parts["decoder_s"] == 6_107_969  # SAN


@pytest.mark.parametrize("structure", models.STRUCTURES)
def test_image_skip_feeds_the_input_to_the_last_conv_of_i_a_and_with_zero_weights_changes_nothing(
        structure):
    image, c, plain, p_plain, skip, p_skip = _plain_and_option(structure, image_skip=True)
    last = "decoder_a" if structure.endswith("d2") else "decoder"
    out = 3 if structure.endswith("d2") else 4
    # Three more input channels on one 7x7 conv, nothing else.
    assert models.parameter_count(p_skip) - models.parameter_count(p_plain) == 7 * 7 * 3 * out
    conv = max(k for k in p_skip["params"]["F"][last] if k.startswith("Conv_"))
    kernel = p_skip["params"]["F"][last][conv]["kernel"]
    merged = jax.tree.map(lambda x: x, p_plain)  # a mutable copy
    merged["params"]["F"][last][conv]["kernel"] = kernel.at[..., -3:, :].set(0.0).at[
        ..., :-3, :].set(p_plain["params"]["F"][last][conv]["kernel"])
    for a, b in zip(plain.apply(p_plain, image, c), skip.apply(merged, image, c)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # Non-zero weights on the input's channels alone change I_a (and, with two decoders, not b).
    perturbed = jax.tree.map(lambda x: x, merged)
    perturbed["params"]["F"][last][conv]["kernel"] = merged["params"]["F"][last][conv][
        "kernel"].at[..., -3:, :].set(kernel[..., -3:, :])
    (_, a0, b0), (_, a1, b1) = plain.apply(p_plain, image, c), skip.apply(perturbed, image, c)
    assert float(jnp.max(jnp.abs(a1 - a0))) > 1e-3
    if structure.endswith("d2"):
        np.testing.assert_array_equal(b0, b1)


def test_the_papers_condition_plane_changes_the_first_norms_output_inside_only_by_a_channel_affine():
    # Why conditional_norm exists: away from the zero-padded border, c's plane adds the same
    # amount to every pixel of a channel, so after the first instance norm each channel for
    # c = 1 is a scale and offset of itself for c = 0, both set by the border's statistics.
    image = _image()
    params = _init(models.Encoder(**TINY), models.tile_condition(image, jnp.zeros(2)))
    conv = models._conv(TINY["width"], 7, 1, 3, jnp.float32)  # the encoder's first conv
    norm = models._norm(jnp.float32)

    def features(c):
        y = conv.apply({"params": params["params"]["Conv_0"]},
                       models.tile_condition(image, jnp.full(2, c)))
        return np.asarray(norm.apply({}, y))[:, 3:-3, 3:-3].reshape(2, -1, TINY["width"])

    f0, f1 = features(0.0), features(1.0)
    assert np.max(np.abs(f1 - f0)) > 1e-3  # c changes the features inside...
    for b in range(2):
        for k in range(TINY["width"]):  # ...by a least-squares exact affine map of each channel
            design = np.stack([f0[b, :, k], np.ones_like(f0[b, :, k])], axis=1)
            fit, *_ = np.linalg.lstsq(design, f1[b, :, k], rcond=None)
            np.testing.assert_allclose(design @ fit, f1[b, :, k], atol=1e-4)


@pytest.mark.parametrize("structure", models.STRUCTURES)
def test_conditional_norm_starts_as_the_plain_network_and_then_makes_the_output_depend_on_c(
        structure):
    image, c, plain, p_plain, conditioned, p_cond = _plain_and_option(structure,
                                                                      conditional_norm=True)
    # A scale and a bias per channel for each of a residual block's two norms, in the encoder
    # on [I, c] alone (SaGAN's SAN never sees c).
    bottleneck = TINY["width"] * 2 ** TINY["num_down"]
    added = models.parameter_count(p_cond) - models.parameter_count(p_plain)
    assert added == TINY["num_res_blocks"] * 2 * 2 * bottleneck
    # Zero-initialised: the same network at the start.
    for a, b in zip(plain.apply(p_plain, image, c), conditioned.apply(p_cond, image, c)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # Learned shifts change the edit of both target values.
    shifted = jax.tree_util.tree_map_with_path(
        lambda path, x: x + 0.5 if "ConditionalAffine" in jax.tree_util.keystr(path) else x,
        p_cond)
    for target in (0.0, 1.0):
        t = jnp.full(2, target)
        before, after = conditioned.apply(p_cond, image, t)[1], conditioned.apply(shifted, image, t)[1]
        assert float(jnp.max(jnp.abs(after - before))) > 1e-3


def _i_a_from_bias(net, params, last, image, c, bias):
    """I_a with the kernel of `last`'s output conv zeroed and the bias of its first I_a channels
    set: the decoder's raw I_a channels are then `bias` at every pixel."""
    p = jax.tree.map(lambda x: x, params)  # a mutable copy
    conv = max(k for k in p["params"]["F"][last] if k.startswith("Conv_"))
    layer = p["params"]["F"][last][conv]
    layer["kernel"] = jnp.zeros_like(layer["kernel"])
    layer["bias"] = layer["bias"].at[:len(bias)].set(bias)
    return net.apply(p, image, c)[1]


@pytest.mark.parametrize("structure", models.STRUCTURES)
def test_the_colour_transform_draws_i_a_as_an_affine_map_of_each_input_pixels_colour(structure):
    image, c, _, p_plain, net, params = _plain_and_option(structure,
                                                          attribute_image="colour_transform")
    last = "decoder_a" if structure.endswith("d2") else "decoder"
    # Nine more output channels (a 3x3 matrix per pixel) on the 7x7 conv that draws I_a.
    assert (models.parameter_count(params) - models.parameter_count(p_plain)
            == 7 * 7 * TINY["width"] * 9 + 9)
    attribute_image = functools.partial(_i_a_from_bias, net, params, last, image, c)
    zero = jnp.zeros(12)
    np.testing.assert_allclose(attribute_image(zero), 0.0, atol=1e-6)  # grey, as tanh(0)
    colour = jnp.array([0.5, -0.5, 0.0])
    np.testing.assert_allclose(attribute_image(zero.at[9:].set(colour)),  # t alone: one colour
                               jnp.broadcast_to(jnp.tanh(colour), image.shape), atol=1e-6)
    mix = jnp.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, -1.0]])  # A: from the input
    np.testing.assert_allclose(attribute_image(zero.at[:9].set(mix.reshape(-1))),
                               jnp.tanh(image @ mix.T), atol=1e-6)


@pytest.mark.parametrize("structure", models.STRUCTURES)
def test_the_warp_draws_i_a_as_the_input_moved_by_a_flow_blended_with_a_painted_colour(structure):
    image, c, _, p_plain, net, params = _plain_and_option(structure, attribute_image="warp")
    last = "decoder_a" if structure.endswith("d2") else "decoder"
    # Three more output channels (a flow and a blend weight) on the 7x7 conv that draws I_a.
    assert (models.parameter_count(params) - models.parameter_count(p_plain)
            == 7 * 7 * TINY["width"] * 3 + 3)
    attribute_image = functools.partial(_i_a_from_bias, net, params, last, image, c)
    zero, keep, paint = jnp.zeros(6), 30.0, jnp.array([0.5, -0.5, 0.0])
    np.testing.assert_allclose(attribute_image(zero), 0.5 * image, atol=1e-6)  # half the input
    np.testing.assert_allclose(attribute_image(zero.at[2].set(keep)), image, atol=1e-6)  # a copy
    np.testing.assert_allclose(attribute_image(zero.at[2].set(-keep).at[3:].set(paint)),
                               jnp.broadcast_to(jnp.tanh(paint), image.shape), atol=1e-6)
    # A flow of 2 rows down and half a column left: each pixel takes the mean of the two
    # pixels 2 rows below, half a column apart; the last rows repeat the bottom edge.
    size = image.shape[1]
    rows = jnp.arctanh(2.0 / (models.WARP_REACH * size))
    cols = jnp.arctanh(-0.5 / (models.WARP_REACH * size))
    moved = attribute_image(zero.at[0].set(rows).at[1].set(cols).at[2].set(keep))
    expected = 0.5 * (image[:, 2:, :-1] + image[:, 2:, 1:])
    np.testing.assert_allclose(moved[:, :-2, 1:], expected, atol=1e-5)
    bottom = jnp.broadcast_to(expected[:, -1:], (2, 2) + expected.shape[2:])
    np.testing.assert_allclose(moved[:, -2:, 1:], bottom, atol=1e-5)


def test_the_warps_flow_gets_a_gradient_from_what_it_samples():
    image = _image(batch=1, size=8)
    target = models.warp(image, jnp.full((1, 8, 8, 2), 1.0).at[..., 1].set(0.0))
    def loss(shift):
        return jnp.sum(jnp.square(models.warp(image, shift) - target))

    flow = jnp.full((1, 8, 8, 2), 0.6).at[..., 1].set(0.0)
    step = jax.grad(loss)(flow)
    assert float(jnp.sum(step[..., 0] * (1.0 - flow[..., 0]))) < 0  # downhill points to 1 row


def test_the_discriminator_matches_sagan_and_has_a_patch_head_and_a_logit_head():
    image = jnp.zeros((3, 128, 128, 3))
    d = models.Discriminator()
    shapes = jax.eval_shape(functools.partial(d.init, jax.random.PRNGKey(0)), image)
    assert models.parameter_count(shapes) == 11_190_754
    src, cls = jax.eval_shape(d.apply, shapes, image)
    assert src.shape == (3, 2, 2) and cls.shape == (3,)


def test_the_discriminator_refuses_an_image_its_layers_cannot_halve():
    d = models.Discriminator(width=4, num_layers=6)
    with pytest.raises(ValueError, match="divisible by 64, not 48"):
        d.init(jax.random.PRNGKey(0), jnp.zeros((1, 48, 48, 3)))


def test_the_region_crop_is_centred_on_the_guide_masks_centroid_and_kept_inside_the_image():
    images = jnp.arange(2 * 16 * 16, dtype=jnp.float32).reshape(2, 16, 16, 1)
    guides = jnp.zeros((2, 16, 16, 1))
    guides = guides.at[0, 9:12, 4:7].set(1.0)  # centroid (10, 5) at (3, 3): from (7, 2)
    guides = guides.at[1, 14:16, 14:16].set(1.0)  # near the corner: moved inside, to (10, 10)
    crops = models.region_crop(images, guides, 6)
    np.testing.assert_array_equal(crops[0], images[0, 7:13, 2:8])
    np.testing.assert_array_equal(crops[1], images[1, 10:16, 10:16])


def test_an_empty_guide_mask_crops_the_images_centre():
    images = jnp.arange(16 * 16, dtype=jnp.float32).reshape(1, 16, 16, 1)
    crops = models.region_crop(images, jnp.zeros((1, 16, 16, 1)), 8)
    np.testing.assert_array_equal(crops[0], images[0, 4:12, 4:12])


@pytest.mark.parametrize("size,layers", [(16, 3), (24, 3), (32, 4), (64, 5), (4, 1)])
def test_the_region_critic_halves_a_crop_down_to_a_map_of_two_or_more(size, layers):
    assert models.region_layers(size) == layers


def test_a_region_critic_leaves_the_whole_image_discriminator_as_it_was():
    image = jax.random.normal(jax.random.PRNGKey(3), (2, 32, 32, 3))
    guide = jnp.zeros((2, 32, 32, 1)).at[:, 20:24, 12:20].set(1.0)
    plain = models.Discriminator(width=4, num_layers=3)
    with_region = models.Discriminator(width=4, num_layers=3, region_size=16)
    key = jax.random.PRNGKey(0)
    params = models.init_discriminator(with_region, key, image)
    own = {k: v for k, v in params["params"].items() if k != "region"}
    assert jax.tree.structure(own) == jax.tree.structure(plain.init(key, image)["params"])
    src, cls = with_region.apply(params, image)  # without guides: the first D alone
    want_src, want_cls = plain.apply({"params": own}, image)
    np.testing.assert_array_equal(src, want_src)
    np.testing.assert_array_equal(cls, want_cls)
    src, cls, region = with_region.apply(params, image, guide)
    np.testing.assert_array_equal(src, want_src)
    assert region.shape == (2, 2, 2) and "D_cls" not in params["params"]["region"]


def test_a_spectrally_normalized_kernel_has_top_singular_value_one_and_holds_u_and_v():
    kernel = jax.random.normal(jax.random.PRNGKey(4), (4, 4, 16, 32)) * 0.02
    kernel = kernel.at[..., 0].multiply(5.0)  # a dominant direction, as training makes
    normalized = models.spectral_normalize(kernel)
    top = np.linalg.svd(np.asarray(normalized).reshape(-1, 32), compute_uv=False)[0]
    np.testing.assert_allclose(top, 1.0, rtol=1e-3)
    # At N(0, 0.02) initialisation the top singular values cluster; the estimate still holds.
    init = jax.random.normal(jax.random.PRNGKey(5), (4, 4, 64, 128)) * 0.02
    top = np.linalg.svd(np.asarray(models.spectral_normalize(init)).reshape(-1, 128),
                        compute_uv=False)[0]
    assert 1.0 <= top < 1.06
    # With u and v held, sum(W / sigma) differentiates to 1 / sigma - sum(W) u v^T / sigma^2.
    matrix = kernel.reshape(-1, 32)
    u, s, vt = np.linalg.svd(np.asarray(matrix))
    grad = jax.grad(lambda k: jnp.sum(models.spectral_normalize(k)))(kernel).reshape(-1, 32)
    want = (1.0 - float(jnp.sum(matrix)) / s[0] * np.outer(u[:, 0], vt[0])) / s[0]
    np.testing.assert_allclose(grad, want, rtol=2e-3, atol=1e-3)


def test_the_spectral_norm_keeps_ds_parameters_and_applies_to_every_kernel():
    image = jax.random.normal(jax.random.PRNGKey(3), (2, 32, 32, 3))
    plain = models.Discriminator(width=4, num_layers=3)
    spectral = models.Discriminator(width=4, num_layers=3, spectral_norm=True)
    params = plain.init(jax.random.PRNGKey(0), image)
    own = spectral.init(jax.random.PRNGKey(0), image)
    for got, want in zip(jax.tree.leaves(own), jax.tree.leaves(params)):
        np.testing.assert_array_equal(got, want)
    assert jax.tree.structure(own) == jax.tree.structure(params)
    normalized = jax.tree_util.tree_map_with_path(
        lambda path, x: models.spectral_normalize(x) if path[-1].key == "kernel" else x, params)
    for got, want in zip(spectral.apply(params, image), plain.apply(normalized, image)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_normalized_kernel_is_computed_apart_from_the_layer_that_reads_it():
    # Fused into the layer, XLA's CPU backend ran the quick start's iteration with d_width=32
    # about 1.2x slower (README); the barrier keeps the division a step of its own.
    image = jax.random.normal(jax.random.PRNGKey(3), (2, 32, 32, 3))
    spectral = models.Discriminator(width=4, num_layers=3, spectral_norm=True)
    params = spectral.init(jax.random.PRNGKey(0), image)
    jaxpr = str(jax.make_jaxpr(spectral.apply)(params, image))
    kernels = [x for x in jax.tree.leaves_with_path(params) if x[0][-1].key == "kernel"]
    assert jaxpr.count("optimization_barrier") == len(kernels) == 5


def test_bfloat16_compute_keeps_float32_parameters_and_outputs_close_to_float32():
    image, c = _image(), jnp.array([0.0, 1.0])
    g32 = models.Generator("e1d1", **TINY)
    g16 = models.Generator("e1d1", **TINY, dtype=jnp.bfloat16)
    params = _init(g32, image, c)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(_init(g16, image, c)))
    out32, _, _ = g32.apply(params, image, c)
    out16, _, _ = g16.apply(params, image, c)
    assert out16.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(out16 - out32))) < 0.1


def _pytorch_conv_transpose(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """ConvTranspose2d(4, stride 2, padding 1) by its definition: y[2i - 1 + k] += x[i] K[k]."""
    b, h, w, _ = x.shape
    y = np.zeros((b, 2 * h, 2 * w, kernel.shape[-1]))
    for i in range(h):
        for j in range(w):
            for ky in range(4):
                for kx in range(4):
                    r, s = 2 * i - 1 + ky, 2 * j - 1 + kx
                    if 0 <= r < 2 * h and 0 <= s < 2 * w:
                        y[:, r, s] += x[:, i, j] @ kernel[ky, kx]
    return y


@pytest.mark.parametrize("impl", ["matmul", "xla"])
def test_the_up_layer_is_pytorchs_transposed_convolution(impl):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
    kernel = rng.normal(size=(4, 4, 3, 2)).astype(np.float32)
    bias = np.array([0.5, -1.0], np.float32)
    y = models.UpConv(2, impl=impl).apply({"params": {"kernel": kernel, "bias": bias}}, x)
    np.testing.assert_allclose(y, _pytorch_conv_transpose(x, kernel) + bias, atol=1e-4)


@pytest.mark.parametrize("impl", ["matmul", "xla"])
def test_the_down_layer_is_a_stride_2_convolution_with_padding_1(impl):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 8, 6, 3)).astype(np.float32)
    kernel = rng.normal(size=(4, 4, 3, 5)).astype(np.float32)
    bias = rng.normal(size=(5,)).astype(np.float32)
    y = models.DownConv(5, impl=impl).apply({"params": {"kernel": kernel, "bias": bias}}, x)
    expected = jax.lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
    assert y.shape == (2, 4, 3, 5)
    np.testing.assert_allclose(y, expected, atol=1e-4)


# (input, features): a shallow layer (more patches than kernel) and a deep one (the reverse).
@pytest.mark.parametrize("shape,features", [((2, 10, 6, 3), 5), ((2, 4, 6, 8), 16)])
@pytest.mark.parametrize("form", [models.stride2_by_patches, models.stride2_by_shifted_output])
def test_both_matmul_forms_of_the_down_layer_are_laxs_convolution_and_its_gradients(
        form, shape, features):
    rng = np.random.default_rng(2)
    x = rng.normal(size=shape).astype(np.float32)
    kernel = rng.normal(size=(4, 4, shape[-1], features)).astype(np.float32)
    weights = rng.normal(size=(2, shape[1] // 2, shape[2] // 2, features)).astype(np.float32)

    def lax_form(x, k):
        return jax.lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)),
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    np.testing.assert_allclose(form(x, kernel), lax_form(x, kernel), atol=1e-4)
    grads = [jax.grad(lambda x, k: jnp.sum(f(x, k) * weights), argnums=(0, 1))(x, kernel)
             for f in (form, lax_form)]
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_the_down_layer_sums_shifted_outputs_only_where_that_copies_less():
    # The paper's recipe (128 px): G's encoder 32->64->128->256, D 3->32->...->1024.
    shifted = models.uses_shifted_output
    assert all(shifted(c, 2 * c, s, s) for c, s in ((32, 64), (64, 32), (128, 16)))
    assert not shifted(3, 32, 64, 64)  # D's first: 32 > 4 * 3 numbers a pixel
    assert not shifted(256, 512, 4, 4)  # D's next to last: a 4x4 output, 25 / 16 the work
    assert not shifted(512, 1024, 2, 2)  # D's last: a 2x2 output, 9 / 4 the work


# (input channels, output channels, stride): odd outputs (E2D2's 32 -> 3, the colour transform's
# 13), odd inputs (SaGAN's attention network's 3; at stride 1 and 2), both, one channel.
@pytest.mark.parametrize("channels,features,stride", [(4, 3, 1), (6, 13, 1), (3, 8, 1),
                                                      (3, 4, 2), (5, 3, 1), (4, 1, 1)])
def test_a_conv_with_odd_channels_is_flaxs_conv_in_parameters_values_and_gradients(
        channels, features, stride):
    # Computed with a zero channel more on the odd side (a speed choice on the CPU).
    ours = models._conv(features, 7, stride, 3, jnp.float32)
    flax_conv = models.nn.Conv(features, (7, 7), (stride, stride), padding=((3, 3), (3, 3)))
    x = jax.random.normal(jax.random.PRNGKey(4), (2, 12, 12, channels))
    params = _init(ours, x)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, _init(flax_conv, x))
    np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(params, x), atol=1e-5)
    grads = [jax.grad(lambda p, x: jnp.sum(m.apply(p, x) ** 2), argnums=(0, 1))(params, x)
             for m in (ours, flax_conv)]
    for a, b in zip(*map(jax.tree.leaves, grads)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_odd_channels_are_padded_to_even_in_the_program_and_one_channel_is_left_alone():
    def kernel_shapes(channels, features):
        conv = models._conv(features, 7, 1, 3, jnp.float32)
        x = jnp.zeros((1, 8, 8, channels))
        text = jax.jit(conv.apply).lower(_init(conv, x), x).as_text()
        return set(re.findall(r"tensor<7x7x(\d+x\d+)xf32>", text))

    assert kernel_shapes(3, 3) == {"3x3", "4x4"}  # the parameter, and the padded kernel
    assert kernel_shapes(4, 1) == {"4x1"}
    assert kernel_shapes(4, 4) == {"4x4"}


@pytest.mark.parametrize("structure", ["e2d2", "e1d1"])
def test_both_conv_impls_share_parameters_outputs_and_gradients_of_gradients(structure):
    image = jax.random.uniform(jax.random.PRNGKey(3), (2, 32, 32, 3), minval=-1.0, maxval=1.0)
    c = jnp.array([0.0, 1.0])
    g_mat, g_xla = (models.Generator(structure, **TINY, conv_impl=i) for i in ("matmul", "xla"))
    d_mat, d_xla = (models.Discriminator(4, 3, conv_impl=i) for i in ("matmul", "xla"))
    g_params, d_params = _init(g_mat, image, c), d_mat.init(jax.random.PRNGKey(1), image)
    # One parameter tree: a checkpoint of either form restores into the other.
    assert jax.tree.structure(g_params) == jax.tree.structure(_init(g_xla, image, c))
    assert jax.tree.structure(d_params) == jax.tree.structure(
        d_xla.init(jax.random.PRNGKey(1), image))

    def g_out(g, params):
        return g.apply(params, image, c)[0]

    np.testing.assert_allclose(g_out(g_mat, g_params), g_out(g_xla, g_params), atol=2e-5)
    g_loss = lambda g: jax.grad(lambda p: jnp.sum(g_out(g, p) ** 2))(g_params)  # noqa: E731
    for a, b in zip(jax.tree.leaves(g_loss(g_mat)), jax.tree.leaves(g_loss(g_xla))):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)

    def penalty(d, params):  # WGAN-GP differentiates D's input gradient again
        grad = jax.grad(lambda x: sum(map(jnp.sum, d.apply(params, x))))(image)  # both heads
        return jnp.sum(grad ** 2)

    for a, b in zip(d_mat.apply(d_params, image), d_xla.apply(d_params, image)):  # src, cls
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    # D's weights are N(0, 0.02): its gradients are ~1e-5, so the tolerance is relative.
    for a, b in zip(jax.tree.leaves(jax.grad(lambda p: penalty(d_mat, p))(d_params)),
                    jax.tree.leaves(jax.grad(lambda p: penalty(d_xla, p))(d_params))):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * np.abs(b).max())


def test_auto_picks_matmul_on_the_cpu_and_the_gpu_and_xla_elsewhere():
    assert models.resolve_conv_impl("auto", "cpu") == "matmul"
    assert models.resolve_conv_impl("auto", "gpu") == "matmul"
    assert models.resolve_conv_impl("auto", "tpu") == "xla"
    assert models.resolve_conv_impl("xla", "cpu") == "xla"
