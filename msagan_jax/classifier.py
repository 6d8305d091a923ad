"""The judge: a ResNet attribute classifier that scores the editors (METHOD.md, section 4).

The paper measures attribute-editing accuracy with a ResNet-50 trained for 50 epochs on the
training split (93.42% test accuracy on Mouth_Slightly_Open). Train one with

    python main.py --config=configs/classifier.py --workdir=runs/judge

It writes checkpoints, TensorBoard logs and <workdir>/results.json (validation and test
accuracy). `load_classifier(workdir)` restores it for evaluation. The depth is a config field
(10, 18, 34, 50, 101, 152) so that tests and CPU runs can use a small one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from msagan_jax import checkpoint, input_pipeline, loop, losses, parallel

RESULTS_FILE = "results.json"
# Shape-fixing fields of a judge's checkpoints.
SHAPE_FIELDS = ("classifier_depth", "classifier_width", "image_size")


def _bn(train: bool, dtype: Any, **kwargs) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=dtype, **kwargs)


def _conv(filters: int, kernel: int, strides: int, dtype: Any) -> nn.Conv:
    return nn.Conv(filters, (kernel, kernel), strides, use_bias=False, dtype=dtype)


def _add_shortcut(x, y, strides: int, train: bool, dtype: Any):
    """relu(x + y), x projected by a strided 1x1 conv where the shapes differ. The last norm of
    y starts at zero scale, so each block starts as the identity."""
    if x.shape != y.shape:
        x = _bn(train, dtype)(_conv(y.shape[-1], 1, strides, dtype)(x))
    return nn.relu(x + y)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (ResNet-18/34)."""

    filters: int
    strides: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool):
        y = nn.relu(_bn(train, self.dtype)(_conv(self.filters, 3, self.strides, self.dtype)(x)))
        y = _conv(self.filters, 3, 1, self.dtype)(y)
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
        y = nn.relu(_bn(train, self.dtype)(_conv(self.filters, 1, 1, self.dtype)(x)))
        y = nn.relu(_bn(train, self.dtype)(_conv(self.filters, 3, self.strides, self.dtype)(y)))
        y = _conv(4 * self.filters, 1, 1, self.dtype)(y)
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


def create_model(config: ml_collections.ConfigDict | dict) -> ResNet:
    """The judge that config's classifier_depth and classifier_width describe."""
    depth = config["classifier_depth"]
    if depth not in ARCHITECTURES:
        raise ValueError(f"classifier_depth={depth} is not one of "
                         f"{', '.join(map(str, ARCHITECTURES))}")
    if config["classifier_width"] <= 0:
        raise ValueError(f"classifier_width={config['classifier_width']} must be positive")
    block, stages = ARCHITECTURES[depth]
    return ResNet(stages, block, config["classifier_width"])


@flax.struct.dataclass
class ClassifierState:
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


def num_classifier_steps(config: ml_collections.ConfigDict, train_examples: int) -> int:
    """Steps of classifier_epochs over the train split."""
    return max(1, math.ceil(config.classifier_epochs * train_examples
                            / config.classifier_batch_size))


def create_optimizer(config: ml_collections.ConfigDict,
                     num_steps: int) -> optax.GradientTransformation:
    """AdamW with a linear warm-up (5% of the run) and a cosine decay to 0."""
    warmup = max(1, num_steps // 20)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.classifier_learning_rate, warmup, max(num_steps, warmup + 1))
    return optax.adamw(schedule, weight_decay=config.classifier_weight_decay)


def init_state(config: ml_collections.ConfigDict, num_steps: int) -> ClassifierState:
    """The initial state, from config.seed."""
    model = create_model(config)
    image = jnp.zeros((1, config.image_size, config.image_size, 3), jnp.float32)
    variables = model.init(jax.random.PRNGKey(config.seed), image, train=False)
    tx = create_optimizer(config, num_steps)
    return ClassifierState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                           batch_stats=variables["batch_stats"],
                           opt_state=tx.init(variables["params"]))


def make_train_step(config: ml_collections.ConfigDict, num_steps: int) -> Callable:
    """The pure (state, batch) -> (state, metrics) of one step. BatchNorm's statistics are
    those of the global batch: under jit over a mesh XLA reduces them across devices."""
    model = create_model(config)
    tx = create_optimizer(config, num_steps)

    def loss_fn(params, state, batch):
        logits, updates = model.apply({"params": params, "batch_stats": state.batch_stats},
                                      batch["image"], train=True, mutable=["batch_stats"])
        loss = losses.classification_loss(logits, batch["label"])
        accuracy = jnp.mean((logits > 0) == (batch["label"] > 0.5))
        return loss, (updates["batch_stats"], {"loss": loss, "accuracy": accuracy})

    def train_step(state: ClassifierState, batch):
        grads, (batch_stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.params, state,
                                                                         batch)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return state.replace(step=state.step + 1, params=optax.apply_updates(state.params,
                                                                             updates),
                             batch_stats=batch_stats, opt_state=opt_state), metrics

    return train_step


@dataclasses.dataclass
class Classifier:
    """A restored judge: `logits(images)` for [-1, 1] images (N, H, W, 3) of its image_size."""

    model: ResNet
    variables: Any
    config: dict
    workdir: pathlib.Path | None = None

    def __post_init__(self):
        apply = self.apply_fn()
        self._apply = jax.jit(apply)
        # Correct answers among a batch's real (weight 1) examples; jitted once per judge.
        self._count_correct = jax.jit(lambda variables, image, label, weight: jnp.sum(
            weight * ((apply(variables, image) > 0) == (label > 0.5))))

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    def logits(self, images: jax.Array) -> jax.Array:
        return self._apply(self.variables, images)

    def predict(self, images: jax.Array) -> np.ndarray:
        """1 where the judge sees the attribute, else 0 (float32)."""
        return np.asarray(self.logits(images) > 0, np.float32)

    def apply_fn(self) -> Callable[[Any, jax.Array], jax.Array]:
        """(variables, images) -> logits, to call inside another jitted function."""
        return lambda variables, x: self.model.apply(variables, x, train=False)

    def split_accuracy(self, task: input_pipeline.Task, split: str, batch_size: int,
                       mesh: jax.sharding.Mesh) -> tuple[float, int]:
        """(accuracy, examples) of the judge on every example of `split`."""
        correct = total = 0.0
        for batch in input_pipeline.padded_eval_batches(task, batch_size=batch_size,
                                                        split=split):
            total += float(batch["weight"].sum())
            batch = parallel.global_batch({k: batch[k] for k in ("image", "label", "weight")},
                                          mesh)
            correct += float(self._count_correct(self.variables, batch["image"],
                                                 batch["label"], batch["weight"]))
        total = loop.process_sum(total)  # each process counted its own examples
        return correct / max(total, 1.0), int(total)


def abstract_state(config: ml_collections.ConfigDict, num_steps: int,
                   mesh: jax.sharding.Mesh) -> ClassifierState:
    """Shapes, dtypes and shardings of the judge's state, for restoring a checkpoint into."""
    return parallel.abstract_replicated(functools.partial(init_state, config, num_steps), mesh)


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming a classifier field the judge cannot use."""
    create_model(config)
    input_pipeline.task_from_config(config)
    for name in ("classifier_batch_size", "image_size", "log_every", "checkpoint_every",
                 "keep_checkpoints"):
        if config[name] <= 0:
            raise ValueError(f"{name}={config[name]} must be positive")
    if config.classifier_epochs <= 0:
        raise ValueError(f"classifier_epochs={config.classifier_epochs} must be positive")


def read_results(workdir: os.PathLike) -> dict | None:
    """A finished judge's <workdir>/results.json, or None when it has not finished."""
    try:
        return json.loads((pathlib.Path(workdir) / RESULTS_FILE).read_text())
    except FileNotFoundError:
        return None


def train_classifier(config: ml_collections.ConfigDict, workdir: os.PathLike) -> dict:
    """Trains the judge in `workdir` (resuming from its latest checkpoint), then writes and
    returns its validation and test accuracy (<workdir>/results.json)."""
    validate_config(config)
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    info = input_pipeline.prepare(config)
    task = input_pipeline.task_from_config(config)
    batch_size = config.classifier_batch_size
    if batch_size % jax.device_count():
        raise ValueError(f"classifier_batch_size={batch_size} must be a multiple of the "
                         f"{jax.device_count()} devices")
    num_steps = num_classifier_steps(config, info.splits["train"].num_examples)
    mesh = parallel.create_mesh()
    iterator = iter(input_pipeline.create_train_loader(task, batch_size=batch_size,
                                                       seed=config.seed,
                                                       worker_count=config.input_workers))
    manager = checkpoint.create_manager(workdir, config.keep_checkpoints)
    replicated = parallel.replicated(mesh)
    start = checkpoint.latest_step(manager)
    if start is None:
        state = jax.jit(functools.partial(init_state, config, num_steps),
                        out_shardings=replicated)()
        start = 0
    else:
        checkpoint.check_compatible(checkpoint.saved_config(manager, start), config,
                                    checkpoint.checkpoint_dir(workdir), SHAPE_FIELDS)
        state = checkpoint.restore(manager, start, abstract_state(config, num_steps, mesh),
                                   iterator)
        logging.info("judge: resumed from the checkpoint of step %d in %s", start, workdir)
    checkpoint.write_config(workdir, config)
    step_fn = jax.jit(make_train_step(config, num_steps),
                      in_shardings=(replicated, parallel.batch_sharding(mesh)),
                      out_shardings=(replicated, replicated), donate_argnums=0)
    writer = loop.Writer(workdir)

    import tqdm
    bar = tqdm.tqdm(total=num_steps, initial=start, disable=jax.process_index() != 0,
                    unit="step", desc=f"judge ResNet-{config.classifier_depth}")
    pending: list = []
    step = start
    try:
        with loop.StopRequest() as stop:
            while step < num_steps:
                batch = next(iterator)
                batch = parallel.global_batch({"image": batch["image"],
                                               "label": batch["label"]}, mesh)
                state, metrics = step_fn(state, batch)
                step += 1
                pending.append(metrics)
                bar.update()
                if step % config.log_every == 0 or step == num_steps:
                    means = {f"judge/{k}": float(np.mean(v))
                             for k, v in jax.device_get(_stack(pending)).items()}
                    pending.clear()
                    if not all(map(math.isfinite, means.values())):
                        raise ValueError(f"judge: non-finite loss at step {step} ({means}); "
                                         "lower classifier_learning_rate")
                    writer.scalars(step, means)
                    bar.set_postfix({"loss": f"{means['judge/loss']:.3f}",
                                     "acc": f"{means['judge/accuracy']:.3f}"}, refresh=False)
                if step % config.checkpoint_every == 0 or step == num_steps:
                    checkpoint.save(manager, step, state, iterator, config)
                if (jax.process_count() == 1 or step % config.log_every == 0) and \
                        loop.any_process(stop.requested):
                    if step % config.checkpoint_every and step != num_steps:
                        checkpoint.save(manager, step, state, iterator, config)
                    logging.warning("judge: stopped at step %d of %d; run again to resume",
                                    step, num_steps)
                    return {}
    finally:
        manager.wait_until_finished()
        bar.close()

    judge = Classifier(create_model(config), {"params": state.params,
                                              "batch_stats": state.batch_stats},
                       config.to_dict(), workdir)
    results: dict[str, Any] = {"classifier_depth": config.classifier_depth,
                               "attribute": config.attribute, "dataset": config.dataset,
                               "steps": num_steps}
    for split in ("validation", "test"):
        if split in info.splits and info.splits[split].num_examples:
            accuracy, count = judge.split_accuracy(task, split, config.eval_batch_size, mesh)
            results[f"{split}_accuracy"] = accuracy
            results[f"{split}_examples"] = count
            writer.scalars(step, {f"judge/{split}_accuracy": accuracy})
    writer.close()
    logging.info("judge: %s", results)
    if jax.process_index() == 0:
        (workdir / RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    return results


def _stack(metrics: list[dict]) -> dict:
    return {k: jnp.stack([m[k] for m in metrics]) for k in metrics[0]}


def load_classifier(workdir: os.PathLike, step: int | None = None) -> Classifier:
    """Restores the judge trained in `workdir` (its latest checkpoint, or `step`)."""
    workdir = pathlib.Path(workdir)
    config = checkpoint.read_config(workdir)
    if config.get("model") != "classifier":
        raise ValueError(f"{workdir} is not a classifier run (its config.json has model="
                         f"{config.get('model')!r})")
    config_dict = ml_collections.ConfigDict(config)
    manager = checkpoint.create_manager(workdir, config["keep_checkpoints"])
    step = checkpoint.latest_step(manager) if step is None else step
    if step is None:
        raise FileNotFoundError(f"{checkpoint.checkpoint_dir(workdir)} holds no checkpoint")
    state = checkpoint.restore(manager, step, abstract_state(config_dict, 1,
                                                             parallel.create_mesh()))
    return Classifier(create_model(config), {"params": state.params,
                                             "batch_stats": state.batch_stats}, config,
                      workdir)
