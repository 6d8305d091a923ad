"""Each of the paper's losses (eqs. 3-7) against a value worked out by hand."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from msagan_jax import losses

# A guide mask m and an attention mask b over four pixels.
M = jnp.array([1.0, 1.0, 0.0, 0.0])
B = jnp.array([0.25, 1.0, 0.5, 0.0])


def test_sde_counts_only_where_the_mask_falls_short_of_the_guide():
    # max(m - b, 0) = [0.75, 0, 0, 0]
    assert float(losses.set_difference_error(M, B)) == pytest.approx(0.75 / 4)


def test_the_sde_loss_is_zero_when_the_mask_covers_the_guide_mask():
    rng = np.random.default_rng(0)
    m = jnp.asarray(rng.uniform(size=(2, 8, 8, 1)) > 0.7, jnp.float32)
    b = jnp.clip(m + jnp.asarray(rng.uniform(0, 0.5, m.shape)), 0, 1)  # b >= m everywhere
    assert float(losses.set_difference_error(m, b)) == 0.0


def test_the_sde_loss_ignores_mask_outside_the_guide_region_but_mae_and_mse_do_not():
    spill = B.at[3].set(1.0)  # b > m = 0 at pixel 3
    assert float(losses.set_difference_error(M, spill)) == float(losses.set_difference_error(M, B))
    assert float(losses.mean_absolute_error(M, spill)) > float(losses.mean_absolute_error(M, B))
    assert float(losses.mean_squared_error(M, spill)) > float(losses.mean_squared_error(M, B))


def test_mae_and_mse_by_hand():
    # |m - b| = [0.75, 0, 0.5, 0];  (m - b)^2 = [0.5625, 0, 0.25, 0]
    assert float(losses.mean_absolute_error(M, B)) == pytest.approx(1.25 / 4)
    assert float(losses.mean_squared_error(M, B)) == pytest.approx(0.8125 / 4)


@pytest.mark.parametrize("kind", ["sde", "mae", "mse"])
def test_the_mask_loss_weighs_the_identity_mask_by_alpha_and_the_dual_mask_by_beta(kind):
    b_dual = jnp.array([0.0, 0.5, 0.0, 0.0])
    expected = (100 * losses.MASK_TERMS[kind](M, B) + 20 * losses.MASK_TERMS[kind](M, b_dual))
    term_id, term_dual = losses.mask_term(kind, M, B), losses.mask_term(kind, M, b_dual)
    assert float(losses.mask_loss(term_id, term_dual, 100.0, 20.0)) == pytest.approx(
        float(expected))


def test_wgan_losses_by_hand():
    real, fake = jnp.array([[1.0, 3.0]]), jnp.array([[-1.0, 0.0]])
    assert float(losses.adversarial_loss_d("wgan_gp", real, fake)) == pytest.approx(-0.5 - 2.0)
    assert float(losses.adversarial_loss_g("wgan_gp", fake)) == pytest.approx(0.5)


def test_nonsaturating_and_lsgan_losses_by_hand():
    real, fake = jnp.array([0.0]), jnp.array([0.0])
    # At logit 0 each cross-entropy is log 2.
    assert float(losses.adversarial_loss_d("nonsaturating", real, fake)) == pytest.approx(
        2 * math.log(2))
    assert float(losses.adversarial_loss_g("nonsaturating", fake)) == pytest.approx(math.log(2))
    real, fake = jnp.array([0.5]), jnp.array([2.0])
    assert float(losses.adversarial_loss_d("lsgan", real, fake)) == pytest.approx(0.25 + 4.0)
    assert float(losses.adversarial_loss_g("lsgan", fake)) == pytest.approx(1.0)


@pytest.mark.parametrize("scale,expected", [(1.0, 0.0), (2.0, 1.0), (0.5, 0.25)])
def test_the_gradient_penalty_on_a_linear_critic_is_its_weight_norm_minus_one_squared(scale,
                                                                                      expected):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 4, 3))
    w = jnp.asarray(scale * w / np.linalg.norm(w), jnp.float32)  # ||w|| = scale

    def critic(x):  # a patch map (B, 2, 2) whose sum is <w, x>: gradient w at every x
        return (x * w).reshape(x.shape[0], 2, 2, -1).sum(-1)

    real = jnp.asarray(rng.normal(size=(3, 4, 4, 3)), jnp.float32)
    fake = jnp.asarray(rng.normal(size=(3, 4, 4, 3)), jnp.float32)
    gp = losses.gradient_penalty(critic, real, fake, jnp.array([0.0, 0.5, 1.0]))
    assert float(gp) == pytest.approx(expected, abs=1e-5)


def test_the_gradient_penalty_takes_each_images_own_gradient_norm():
    def critic(x):  # image 0 has gradient norm 2, image 1 gradient norm 0
        return jnp.sum(x * jnp.array([1.0, 0.0])[:, None], axis=1)

    x = jnp.ones((2, 4))
    assert float(losses.gradient_penalty(critic, x, x, jnp.ones(2))) == pytest.approx(
        ((2 - 1) ** 2 + (0 - 1) ** 2) / 2, abs=1e-5)


def test_classification_loss_is_binary_cross_entropy():
    logits, labels = jnp.array([0.0, 2.0]), jnp.array([1.0, 0.0])
    expected = (math.log(2) + math.log(1 + math.exp(2))) / 2
    assert float(losses.classification_loss(logits, labels)) == pytest.approx(expected, rel=1e-6)


def test_reconstruction_loss_weighs_the_identity_and_dual_paths():
    image = jnp.zeros((1, 2, 2, 3))
    identity, dual = image + 0.1, image - 0.5
    l1_id, l1_dual = losses.l1_distance(identity, image), losses.l1_distance(dual, image)
    assert float(losses.reconstruction_loss(l1_id, l1_dual, 100.0, 20.0)) == pytest.approx(
        100 * 0.1 + 20 * 0.5)


def test_the_totals_add_their_terms():
    assert float(losses.generator_loss(1.0, 2.0, 3.0, 4.0)) == 10.0
    assert float(losses.discriminator_loss(1.5, 2.0)) == 3.5
    np.testing.assert_array_equal(losses.compose(jnp.zeros(2), jnp.ones(2), jnp.array([1.0, 0.0])),
                                  [1.0, 0.0])
