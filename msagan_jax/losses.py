"""The paper's objectives, eqs. 3-7, one function each, named as in the paper.

    eq. 3   G(I, c) = I_a * b + I * (1 - b)                 models.compose (the generator's output)
    eq. 4   L_m,id = E[max(m - b_id, 0)],  L_m,dual = E[max(m - b_dual, 0)]     set_difference_error
            alternatives: E|m - b|, E[(m - b)^2]            mean_absolute_error, mean_squared_error
    eq. 5   L_mask = alpha * L_m,id + beta * L_m,dual                         mask_loss
    eq. 6   L_G = L_adv^G + L_cls^G + L_rec^G + L_mask^G                      generator_loss
    eq. 7   L_D = L_src^D + L_cls^D                                            discriminator_loss

The terms of eqs. 6-7 follow SaGAN, as its public re-implementations build it (the paper defers
to SaGAN): WGAN-GP adversarial losses (non-saturating and LSGAN as options), binary cross-entropy
attribute classification, L1 reconstruction on the identity and dual paths. Every E[.] is a mean
over images and pixels. Names are checked once, with the config (config_lib.validate).
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from msagan_jax import models

MASK_LOSSES = ("none", "mae", "mse", "sde")
ADVERSARIAL_LOSSES = ("wgan_gp", "nonsaturating", "lsgan")

compose = models.compose  # eq. 3; it lives with the generator it defines


# --- Guide-mask loss (eqs. 4-5): the paper's contribution -----------------------------------

def set_difference_error(m: jax.Array, b: jax.Array) -> jax.Array:
    """SDE, eq. 4: E[max(m - b, 0)]. Punishes only mask pixels that fall short of the guide
    mask m; mask outside the guide region (b > m) costs nothing."""
    return jnp.mean(jnp.maximum(m - b, 0.0))


def mean_absolute_error(m: jax.Array, b: jax.Array) -> jax.Array:
    """MAE, the paper's first alternative to SDE: E[|m - b|]."""
    return jnp.mean(jnp.abs(m - b))


def mean_squared_error(m: jax.Array, b: jax.Array) -> jax.Array:
    """MSE, the paper's second alternative to SDE: E[(m - b)^2]."""
    return jnp.mean(jnp.square(m - b))


MASK_TERMS: Mapping[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "sde": set_difference_error, "mae": mean_absolute_error, "mse": mean_squared_error}


def mask_term(kind: str, m: jax.Array, b: jax.Array) -> jax.Array:
    """L_m of one pass (eq. 4) with the chosen distance ("sde", "mae" or "mse")."""
    return MASK_TERMS[kind](m, b)


def mask_loss(term_id: jax.Array, term_dual: jax.Array, alpha: float = 100.0,
              beta: float = 20.0) -> jax.Array:
    """L_mask, eq. 5: alpha * L_m,id + beta * L_m,dual.

    L_m,id is the mask term (eq. 4) of the identity pass G(I, c); L_m,dual that of the pass
    that restores the original attribute, G(G(I, 1 - c), c). The edit pass G(I, 1 - c) has
    none: its mask is where the edit happens, which the guide mask does not dictate.
    """
    return alpha * term_id + beta * term_dual


# --- Adversarial losses: L_adv^G (eq. 6) and L_src^D (eq. 7) -------------------------------

def adversarial_loss_d(kind: str, real_scores: jax.Array, fake_scores: jax.Array) -> jax.Array:
    """L_src^D: D_src scores real images high and edited ones low (patch scores, averaged)."""
    if kind == "wgan_gp":
        return jnp.mean(fake_scores) - jnp.mean(real_scores)
    if kind == "nonsaturating":
        return (jnp.mean(optax.sigmoid_binary_cross_entropy(real_scores, jnp.ones_like(real_scores)))
                + jnp.mean(optax.sigmoid_binary_cross_entropy(fake_scores,
                                                              jnp.zeros_like(fake_scores))))
    return jnp.mean(jnp.square(real_scores - 1.0)) + jnp.mean(jnp.square(fake_scores))


def adversarial_loss_g(kind: str, fake_scores: jax.Array) -> jax.Array:
    """L_adv^G: G is rewarded when D_src scores its edited images as real."""
    if kind == "wgan_gp":
        return -jnp.mean(fake_scores)
    if kind == "nonsaturating":
        return jnp.mean(optax.sigmoid_binary_cross_entropy(fake_scores, jnp.ones_like(fake_scores)))
    return jnp.mean(jnp.square(fake_scores - 1.0))


def gradient_penalty(critic: Callable[[jax.Array], jax.Array], real: jax.Array,
                     fake: jax.Array, epsilon: jax.Array) -> jax.Array:
    """WGAN-GP: E[(||grad_x critic(x)||_2 - 1)^2] at x = eps * real + (1 - eps) * fake.

    critic maps a batch to per-image scores (B, ...); epsilon is (B,) uniform in [0, 1].
    The norm is per image, over all its pixels and channels.
    """
    eps = epsilon.reshape((-1,) + (1,) * (real.ndim - 1))
    x = eps * real + (1.0 - eps) * fake
    # Scores of different images depend only on their own input, so the gradient of the sum
    # holds every image's own gradient.
    grad = jax.grad(lambda y: jnp.sum(critic(y)))(x)
    norm = jnp.sqrt(jnp.sum(jnp.square(grad), axis=tuple(range(1, grad.ndim))) + 1e-12)
    return jnp.mean(jnp.square(norm - 1.0))


# --- Attribute classification: L_cls^G (eq. 6), L_cls^D (eq. 7) ----------------------------

def classification_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Binary cross-entropy of D_cls's logits against 0/1 attribute values.

    L_cls^D: real images against their own labels. L_cls^G: G(I, 1 - c) against 1 - c.
    """
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))


# --- Reconstruction: L_rec^G (eq. 6) -------------------------------------------------------

def l1_distance(output: jax.Array, image: jax.Array) -> jax.Array:
    """E[|output - I|]."""
    return jnp.mean(jnp.abs(output - image))


def reconstruction_loss(l1_id: jax.Array, l1_dual: jax.Array, identity_weight: float = 100.0,
                        dual_weight: float = 20.0) -> jax.Array:
    """L_rec^G (SaGAN): 100 * E|G(I, c) - I| + 20 * E|G(G(I, 1 - c), c) - I|, c being I's own
    attribute value, from the two l1_distance terms: the identity and the dual (edit, then
    restore) paths."""
    return identity_weight * l1_id + dual_weight * l1_dual


# --- The totals ----------------------------------------------------------------------------

def generator_loss(adv: jax.Array, cls: jax.Array, rec: jax.Array, mask: jax.Array) -> jax.Array:
    """L_G, eq. 6: L_adv^G + L_cls^G + L_rec^G + L_mask^G (each term already weighted)."""
    return adv + cls + rec + mask


def discriminator_loss(src: jax.Array, cls: jax.Array) -> jax.Array:
    """L_D, eq. 7: L_src^D + L_cls^D (L_src^D including WGAN-GP's weighted penalty)."""
    return src + cls
