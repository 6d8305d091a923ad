"""Training: the state, a pure jitted iteration (d_steps D steps + 1 G step), and the loop.

    state, metrics = train_iteration(state, batch)

is a pure function of its inputs. `batch` holds d_steps + 1 batches stacked on a leading axis
(image (K, B, H, W, 3), label (K, B), mask (K, B, H, W, 1)): the D steps read the first
d_steps, the G step the last, as the public SaGAN/AttGAN code gives every step its own batch.
`compile_train_iteration` jits it over a device mesh (parallel.py). `train_and_evaluate` runs
it in the one loop (loop.py), with sample grids and, given a judge, the evaluator on a fixed
validation subset every eval_every iterations; then evaluates on the test split.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pathlib
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.sharding import Mesh

from msagan_jax import config_lib, errors, evaluate, input_pipeline, judge_lib, loop, losses, models
from msagan_jax import parallel, visualize

Batch = dict[str, jax.Array]
# Config fields that fix the state's shapes: a workdir's checkpoints only fit a run that agrees.
SHAPE_FIELDS = ("structure", "image_size", "width", "num_down", "num_res_blocks", "image_skip",
                "conditional_norm", "attribute_image", "d_width", "d_num_layers",
                "d_region_size")


@flax.struct.dataclass
class TrainState:
    """Everything a run carries from one iteration to the next."""

    step: jax.Array  # iterations done
    g_params: Any
    d_params: Any
    g_opt_state: Any
    d_opt_state: Any
    rng: jax.Array  # raw uint32 key data; each iteration folds in its step


@flax.struct.dataclass
class EmaTrainState(TrainState):
    """A TrainState that also keeps a moving average of G's weights (config.ema_decay > 0).
    A subclass, not an optional field: runs without it keep the checkpoint layout they had."""

    g_ema: Any = None


def generator_params(state: TrainState) -> Any:
    """The G weights that samples, evaluation and editing use: the average when kept."""
    return state.g_ema if isinstance(state, EmaTrainState) else state.g_params


def update_ema(ema: Any, params: Any, decay: float, step: jax.Array) -> Any:
    """One step of the moving average after `step` updates; the decay ramps up as
    min(decay, (1 + step) / (10 + step)), so the first iterations' weights soon wash out."""
    rate = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return optax.incremental_update(params, ema, 1.0 - rate)


# --- Building blocks -----------------------------------------------------------------------

def learning_rate_schedule(config: ml_collections.ConfigDict, num_steps: int,
                           rate: float | None = None) -> optax.Schedule:
    """Constant at `rate` (default learning_rate), or falling linearly to 0 from iteration
    lr_decay_start to the end."""
    rate = config.learning_rate if rate is None else rate
    if not config_lib.rate_falls(config, num_steps):
        return optax.constant_schedule(rate)
    return optax.join_schedules([
        optax.constant_schedule(rate),
        optax.linear_schedule(rate, 0.0, num_steps - config.lr_decay_start)],
        [config.lr_decay_start])


def create_optimizers(config: ml_collections.ConfigDict,
                      num_steps: int) -> tuple[optax.GradientTransformation,
                                               optax.GradientTransformation]:
    """Adam for G and for D (SaGAN: lr 2e-4, betas 0.5, 0.999); schedules run in iterations.
    D's rate is d_learning_rate where set (a two time-scale rule), else G's."""
    d_steps = config.d_steps
    g_tx = optax.adam(learning_rate_schedule(config, num_steps), b1=config.adam_b1,
                      b2=config.adam_b2)
    d_schedule = learning_rate_schedule(config, num_steps,
                                        config.d_learning_rate or config.learning_rate)
    d_tx = optax.adam(lambda count: d_schedule(count // d_steps), b1=config.adam_b1,
                      b2=config.adam_b2)
    return g_tx, d_tx


def init_state(config: ml_collections.ConfigDict, num_steps: int) -> TrainState:
    """The initial state, from config.seed alone."""
    generator, discriminator = models.create_models(config)
    g_tx, d_tx = create_optimizers(config, num_steps)
    key = jax.random.PRNGKey(config.seed)
    g_key, d_key, run_key = jax.random.split(key, 3)
    image = jnp.zeros((1, config.image_size, config.image_size, 3), jnp.float32)
    g_params = generator.init(g_key, image, jnp.zeros((1,), jnp.float32))
    d_params = models.init_discriminator(discriminator, d_key, image)
    state = TrainState(step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
                       g_opt_state=g_tx.init(g_params), d_opt_state=d_tx.init(d_params),
                       rng=run_key)
    if config.ema_decay > 0:
        return EmaTrainState(**vars(state), g_ema=g_params)
    return state


def _guide_statistics(mask: jax.Array, guide: jax.Array) -> dict[str, jax.Array]:
    """How the attention mask b sits on the guide mask m: its mean inside m (near 0 when the
    mask collapses), the share of m with b > 0.5 (coverage), and its mean outside m."""
    area = jnp.maximum(jnp.sum(guide), 1.0)
    outside = jnp.maximum(jnp.sum(1.0 - guide), 1.0)
    return {"mask/guide_mean": jnp.sum(mask * guide) / area,
            "mask/guide_coverage": jnp.sum((mask > 0.5) * guide) / area,
            "mask/outside_mean": jnp.sum(mask * (1.0 - guide)) / outside}


# --- The pure iteration --------------------------------------------------------------------

def _region_terms(config: ml_collections.ConfigDict, discriminator: flax.linen.Module,
                  d_params: Any, scores: jax.Array, image: jax.Array, fake: jax.Array,
                  guide: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
    """The region critic's part of D's loss (d_region_size): its adversarial term on the real
    and edited crops (the same window for a face and its edit), and WGAN-GP's penalty on it."""
    real_scores, fake_scores = parallel.deinterleave(scores, 2)
    terms = {"d/src_region": losses.adversarial_loss_d(config.adversarial_loss, real_scores,
                                                       fake_scores)}
    if config.adversarial_loss == "wgan_gp":
        terms["d/gp_region"] = _penalty(lambda x: discriminator.apply(d_params, x, guide)[2],
                                        image, fake, key)
    return terms


def _penalty(critic: Callable, image: jax.Array, fake: jax.Array, key: jax.Array) -> jax.Array:
    """WGAN-GP's penalty on `critic` at random points between the real and edited images."""
    epsilon = jax.random.uniform(key, (image.shape[0],))
    return losses.gradient_penalty(critic, image, fake, epsilon)


def _d_loss_fn(config: ml_collections.ConfigDict, discriminator: flax.linen.Module) -> Callable:
    """D's loss (eq. 7, WGAN-GP's penalty included; with d_region_size the region critic's
    terms too) as (d_params, image, label, fake, guide, key) -> (loss, metrics)."""
    adversarial = config.adversarial_loss

    def d_loss(d_params, image, label, fake, guide, key):
        region = config.d_region_size > 0
        # Real and edited images in one pass: D has no batch statistics, so this equals two.
        outputs = discriminator.apply(
            d_params, parallel.interleave([image, fake]),
            *([parallel.interleave([guide, guide])] if region else []))
        real_scores, fake_scores = parallel.deinterleave(outputs[0], 2)
        logits = parallel.deinterleave(outputs[1], 2)[0]
        src = losses.adversarial_loss_d(adversarial, real_scores, fake_scores)
        terms = {"d/src": src}
        if adversarial == "wgan_gp":
            terms["d/gp"] = _penalty(lambda x: discriminator.apply(d_params, x)[0], image, fake,
                                     key)
            src = src + config.gp_weight * terms["d/gp"]
        if region:
            terms.update(_region_terms(config, discriminator, d_params, outputs[2], image, fake,
                                       guide, jax.random.fold_in(key, 1)))
            src = src + config.d_region_weight * (
                terms["d/src_region"] + config.gp_weight * terms.get("d/gp_region", 0.0))
        terms["d/cls"] = losses.classification_loss(logits, label)
        terms["d/cls_accuracy"] = jnp.mean((logits > 0) == (label > 0.5))
        loss = losses.discriminator_loss(src, config.cls_weight * terms["d/cls"])
        return loss, {"d/loss": loss, **terms}

    return d_loss


def _mask_terms(config: ml_collections.ConfigDict, guide: jax.Array, b_id: jax.Array,
                b_dual: jax.Array, b_edit: jax.Array) -> dict[str, jax.Array]:
    """The guide-mask loss (eqs. 4-5) on the identity and dual passes (and, with
    mask_edit_weight, the edit pass): its terms and their weighted sum "g/mask"."""
    kind = config.mask_loss
    terms = {"g/mask_id": losses.mask_term(kind, guide, b_id),
             "g/mask_dual": losses.mask_term(kind, guide, b_dual)}
    terms["g/mask"] = losses.mask_loss(terms["g/mask_id"], terms["g/mask_dual"],
                                       config.mask_id_weight, config.mask_dual_weight)
    if config.mask_edit_weight:
        terms["g/mask_edit"] = losses.mask_term(kind, guide, b_edit)
        terms["g/mask"] += config.mask_edit_weight * terms["g/mask_edit"]
    return terms


def _g_loss_fn(config: ml_collections.ConfigDict, generator: flax.linen.Module,
               discriminator: flax.linen.Module) -> Callable:
    """G's loss (eq. 6: adversarial, classification, reconstruction, guide mask) as
    (g_params, d_params, image, label, guide) -> (loss, metrics)."""
    adversarial = config.adversarial_loss

    def g_loss(g_params, d_params, image, label, guide):
        # The edit pass G(I, 1-c) and the identity pass G(I, c) in one call: what sees only
        # the image (SaGAN's SAN) runs once for both.
        both, _, b_both = generator.apply(g_params, image, jnp.stack([1.0 - label, label]))
        edit, identity, b_edit, b_id = both[0], both[1], b_both[0], b_both[1]
        dual, _, b_dual = generator.apply(g_params, edit, label)
        region = config.d_region_size > 0
        outputs = discriminator.apply(d_params, edit, *([guide] if region else []))
        scores, logits = outputs[:2]
        terms = {"g/adv": losses.adversarial_loss_g(adversarial, scores),
                 "g/cls": losses.classification_loss(logits, 1.0 - label),
                 "g/rec_id": losses.l1_distance(identity, image),
                 "g/rec_dual": losses.l1_distance(dual, image),
                 "g/mask": jnp.zeros((), jnp.float32)}
        rec = losses.reconstruction_loss(terms["g/rec_id"], terms["g/rec_dual"],
                                         config.rec_id_weight, config.rec_dual_weight)
        adv = terms["g/adv"]
        if region:
            terms["g/adv_region"] = losses.adversarial_loss_g(adversarial, outputs[2])
            adv = adv + config.d_region_weight * terms["g/adv_region"]
        stats = {"mask/mean": jnp.mean(b_edit)}
        if guide is not None:
            # The guide statistics are logged without a mask loss too: they show the collapse.
            stats.update(_guide_statistics(b_edit, guide))
        if guide is not None and config.mask_loss != "none":
            terms.update(_mask_terms(config, guide, b_id, b_dual, b_edit))
        loss = losses.generator_loss(adv, config.cls_weight * terms["g/cls"], rec,
                                     terms["g/mask"])
        return loss, {"g/loss": loss, **terms, **stats}

    return g_loss


def make_d_step(config: ml_collections.ConfigDict, discriminator: flax.linen.Module,
                d_tx: optax.GradientTransformation) -> Callable:
    """One D step as a scan body: ((d_params, d_opt_state), (image, label, fake, guide, key))
    -> ((d_params, d_opt_state), metrics), the edited images `fake` given; guide may be None."""
    d_loss = _d_loss_fn(config, discriminator)

    def d_step(carry, xs):
        d_params, d_opt_state = carry
        grads, metrics = jax.grad(d_loss, has_aux=True)(d_params, *xs)
        updates, d_opt_state = d_tx.update(grads, d_opt_state, d_params)
        return (optax.apply_updates(d_params, updates), d_opt_state), metrics

    return d_step


def make_g_step(config: ml_collections.ConfigDict, generator: flax.linen.Module,
                discriminator: flax.linen.Module, g_tx: optax.GradientTransformation) -> Callable:
    """One G step: (g_params, g_opt_state, d_params, image, label, guide) -> (g_params,
    g_opt_state, metrics); guide may be None."""
    g_loss = _g_loss_fn(config, generator, discriminator)

    def g_step(g_params, g_opt_state, d_params, image, label, guide):
        grads, metrics = jax.grad(g_loss, has_aux=True)(g_params, d_params, image, label, guide)
        updates, g_opt_state = g_tx.update(grads, g_opt_state, g_params)
        return optax.apply_updates(g_params, updates), g_opt_state, metrics

    return g_step


def make_train_iteration(config: ml_collections.ConfigDict,
                         num_steps: int) -> Callable[[TrainState, Batch],
                                                     tuple[TrainState, dict[str, jax.Array]]]:
    """The pure function (state, batch) -> (state, metrics) of one iteration (not jitted)."""
    generator, discriminator = models.create_models(config)
    g_tx, d_tx = create_optimizers(config, num_steps)
    d_step = make_d_step(config, discriminator, d_tx)
    g_step = make_g_step(config, generator, discriminator, g_tx)

    def train_iteration(state: TrainState, batch: Batch):
        k = config.d_steps
        key = jax.random.fold_in(state.rng, state.step)
        images, labels = batch["image"], batch["label"]
        guides = batch.get("mask")
        # G is fixed during the D steps, so their edited images come from one pass over all k
        # batches: one larger pass runs faster than k small ones.
        fakes, _, _ = generator.apply(state.g_params, parallel.interleave(images[:k]),
                                      parallel.interleave(1.0 - labels[:k]))
        fakes = jax.lax.stop_gradient(parallel.deinterleave(fakes, k))
        # Unrolled: XLA's CPU backend runs a scanned (while-loop) body far slower (README).
        (d_params, d_opt_state), d_metrics = jax.lax.scan(
            d_step, (state.d_params, state.d_opt_state),
            (images[:k], labels[:k], fakes, None if guides is None else guides[:k],
             jax.random.split(key, k)), unroll=True)
        g_params, g_opt_state, g_metrics = g_step(
            state.g_params, state.g_opt_state, d_params, images[k], labels[k],
            None if guides is None else guides[k])
        if isinstance(state, EmaTrainState):
            state = state.replace(g_ema=update_ema(state.g_ema, g_params, config.ema_decay,
                                                   state.step))
        state = state.replace(step=state.step + 1, g_params=g_params, d_params=d_params,
                              g_opt_state=g_opt_state, d_opt_state=d_opt_state)
        metrics = {**jax.tree.map(jnp.mean, d_metrics), **g_metrics}
        return state, metrics

    return train_iteration


def compile_train_iteration(config: ml_collections.ConfigDict, num_steps: int, mesh: Mesh):
    """train_iteration jitted over `mesh`: state replicated and donated, batch split along its
    example axis (axis 1), metrics replicated."""
    replicated = parallel.replicated(mesh)
    return jax.jit(make_train_iteration(config, num_steps),
                   in_shardings=(replicated, parallel.batch_sharding(mesh, example_axis=1)),
                   out_shardings=(replicated, replicated), donate_argnums=0)


def create_state(config: ml_collections.ConfigDict, num_steps: int, mesh: Mesh) -> TrainState:
    """The initial state, created directly as replicated arrays on the mesh."""
    return jax.jit(functools.partial(init_state, config, num_steps),
                   out_shardings=parallel.replicated(mesh))()


def abstract_state(config: ml_collections.ConfigDict, num_steps: int, mesh: Mesh) -> TrainState:
    """Shapes, dtypes and shardings of the state, for restoring a checkpoint into."""
    return parallel.abstract_replicated(functools.partial(init_state, config, num_steps), mesh)


def make_sample_fn(config: ml_collections.ConfigDict) -> Callable:
    """jitted (g_params, images) -> (outputs, masks, attribute_images), each stacked over the
    targets 0, 1 on a leading axis (G given models.edit_condition of each)."""
    generator, _ = models.create_models(config)

    @jax.jit
    def sample(g_params, images):
        n = images.shape[0]
        targets = jnp.stack([jnp.zeros(n), jnp.ones(n)])
        outputs, attribute_images, masks = generator.apply(
            g_params, images, models.edit_condition(config, targets))
        return outputs, masks, attribute_images

    return sample


# --- The loop ------------------------------------------------------------------------------

def num_train_steps(config: ml_collections.ConfigDict, train_examples: int) -> int:
    """Iterations of the run: num_train_steps, or num_epochs over the train split."""
    if config.num_train_steps > 0:
        return int(config.num_train_steps)
    per_iteration = (config.d_steps + 1) * config.batch_size
    return max(1, math.ceil(config.num_epochs * train_examples / per_iteration))


@dataclasses.dataclass
class CollapseWatch:
    """Counts consecutive logs where the mask's mean inside the guide region is near zero: the
    paper's failure, where G learns b = 0 and returns its input unchanged."""

    threshold: float = 0.05
    patience: int = 3
    streak: int = 0
    warnings: int = 0

    def update(self, guide_mean: float) -> bool:
        """Records one log's value; True when it is time to warn."""
        self.streak = self.streak + 1 if guide_mean < self.threshold else 0
        if self.streak == self.patience:
            self.warnings += 1
            return True
        return False


def _read_speeds(workdir: pathlib.Path) -> list[float]:
    """Iterations per second of each earlier log of this run (kept across resumes)."""
    try:
        return json.loads((workdir / evaluate.TIMING_FILE).read_text())["iterations_per_s_by_log"]
    except (FileNotFoundError, KeyError, ValueError):
        return []


def write_timing(workdir: os.PathLike, speeds: list[float], config: ml_collections.ConfigDict,
                 train_examples: int) -> dict[str, Any]:
    """Writes <workdir>/timing.json: the median speed over the run's logs (the first log of
    each start, which includes compilation, left out) and the time of one epoch, i.e. one
    read of the train split by the D and G steps (the paper's Fig. 8)."""
    per_iteration = (config.d_steps + 1) * config.batch_size
    timing: dict[str, Any] = {"iterations_per_s_by_log": [float(s) for s in speeds],
                              "train_examples": int(train_examples),
                              "images_per_iteration": per_iteration,
                              "device": jax.devices()[0].device_kind,
                              "device_count": jax.device_count()}
    if speeds:
        rate = float(np.median(speeds))
        timing.update(seconds_per_iteration=1.0 / rate, images_per_s=rate * per_iteration,
                      seconds_per_epoch=train_examples / per_iteration / rate)
    path = pathlib.Path(workdir) / evaluate.TIMING_FILE
    path.write_text(json.dumps(timing, indent=2) + "\n")
    return timing


def _stack_iteration_batch(batch: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """The loader's (K * b, ...) batch -> (K, b, ...): one batch per D step and the G step."""
    return {name: value.reshape((k, -1) + value.shape[1:])
            for name, value in batch.items() if name in ("image", "label", "mask")}


def _sample_images(task: input_pipeline.Task, config: ml_collections.ConfigDict) -> np.ndarray:
    """The first num_samples faces of the validation split (the test split, or train, when the
    dataset has none): the same faces in every grid of the run."""
    for split in ("validation", "test", "train"):
        try:
            loader = input_pipeline.create_eval_loader(task, batch_size=config.num_samples,
                                                       split=split, shard_index=0, shard_count=1)
            return next(iter(loader))["image"]
        except (input_pipeline.DatasetNotFoundError, StopIteration, ValueError):
            continue
    raise errors.InputError(f"{task.dataset} has no split to draw sample faces from")




def _sample_hook(config: ml_collections.ConfigDict, task: input_pipeline.Task,
                 mesh: Mesh) -> loop.Hook:
    """Every sample_every iterations: the Figs 3-5 grid of the same validation faces."""
    sample_fn = make_sample_fn(config)
    faces = _sample_images(task, config)  # host copy, for the grids
    samples = parallel.replicate_host_data(faces, mesh)

    def run(step: int, state: TrainState, writer: loop.Writer) -> None:
        outputs, masks, attribute_images = jax.device_get(sample_fn(generator_params(state),
                                                                    samples))
        writer.grid(step, visualize.sample_grid(faces, outputs, masks, attribute_images))

    return loop.Hook(config.sample_every, run)


def _collapse_log(config: ml_collections.ConfigDict) -> Callable[[int, dict], dict]:
    """A log's check for mask collapse: a warning, and the count as a scalar."""
    watch = CollapseWatch(config.collapse_threshold, config.collapse_patience)

    def on_log(step: int, means: dict[str, float]) -> dict[str, float]:
        if "mask/guide_mean" in means and watch.update(means["mask/guide_mean"]):
            logging.warning(
                "mask collapse at iteration %d: the attention mask's mean inside the guide "
                "region has stayed below %.3g for %d logs (now %.4f), so the editor returns its "
                "input unchanged. The paper saw this without a mask loss (e.g. E2D1); try "
                "mask_loss='sde'.", step, watch.threshold, watch.patience,
                means["mask/guide_mean"])
        return {"mask/collapse_warnings": watch.warnings}

    return on_log


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: os.PathLike,
                       judge: judge_lib.Classifier | None = None,
                       allow_config_change: bool = False) -> loop.Result:
    """Trains the editor that a validated `config` describes in `workdir`, resuming from its
    latest checkpoint, and evaluates it.

    Writes TensorBoard logs, sample grids, checkpoints and timing.json. With a judge (`judge`,
    or a finished one in config.judge.workdir), also the learning curve (eval_every iterations,
    eval_examples validation faces: TensorBoard eval_val/* and eval_curve.csv) and, when the
    run finishes and config.evaluate is set, the test-split evaluation (eval/); its metrics are
    the result's `metrics`. `allow_config_change`: see loop.run.
    """
    workdir = pathlib.Path(workdir)
    info = input_pipeline.prepare(config)
    splits = ", ".join(f"{name} {split.num_examples}" for name, split in info.splits.items())
    logging.info("%s: %s (in %s)", info.full_name, splits, info.data_dir)
    task = input_pipeline.task_from_config(config)
    train_examples = info.splits["train"].num_examples
    num_steps = num_train_steps(config, train_examples)
    judge = judge or judge_lib.find_judge(config, workdir)
    mesh = parallel.create_mesh()
    k = config.d_steps + 1
    batches = iter(input_pipeline.create_train_loader(
        task, batch_size=k * config.batch_size, seed=config.seed,
        random_flip=config.random_flip,
        worker_count=input_pipeline.resolve_worker_count(config.input_workers)))
    hooks = [_sample_hook(config, task, mesh)]
    if judge is not None and "validation" in info.splits:
        hooks.append(evaluate.training_hook(config, judge, workdir, generator_params))
    trainer = loop.Trainer(
        name=f"{config.structure}+{config.mask_loss}", num_steps=num_steps,
        init=functools.partial(create_state, config, num_steps, mesh),
        abstract=functools.partial(abstract_state, config, num_steps, mesh),
        step=compile_train_iteration(config, num_steps, mesh), batches=batches,
        to_device=lambda batch: parallel.global_batch(_stack_iteration_batch(batch, k), mesh,
                                                      example_axis=1),
        shape_fields=SHAPE_FIELDS, hooks=hooks, on_log=_collapse_log(config),
        postfix=lambda m: {"D": f"{m['d/loss']:.3f}", "G": f"{m['g/loss']:.3f}",
                           "mask": f"{m['mask/mean']:.3f}"},
        images_per_step=k * config.batch_size)
    result = loop.run(trainer, config, workdir, allow_config_change)
    if jax.process_index() == 0:
        write_timing(workdir, _read_speeds(workdir) + result.speeds, config, train_examples)
    if result.finished and config.evaluate and judge is not None:
        result.metrics = evaluate.evaluate_run(workdir, judge)
    return result
