"""Training the judge: the ResNet attribute classifier that scores the editors (METHOD.md 4).

The paper measures attribute-editing accuracy with a ResNet-50 trained for 50 epochs on the
training split (93.42% test accuracy on Mouth_Slightly_Open). Train one with

    python main.py --config=configs/classifier.py --workdir=runs/judge

It runs the one training loop (loop.py) and writes checkpoints, TensorBoard logs and
<workdir>/results.json (validation and test accuracy). The network is models.ResNet;
config.judge.* describes it and its training; judge_lib.py restores and uses a trained one.
"""

from __future__ import annotations

import functools
import json
import math
import os
import pathlib
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from msagan_jax import console, input_pipeline, judge_lib, loop, losses
from msagan_jax import models, parallel

# Config fields that fix the shapes of a judge's checkpoints.
SHAPE_FIELDS = ("judge.depth", "judge.width", "image_size")


@flax.struct.dataclass
class ClassifierState:
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


def num_classifier_steps(config: ml_collections.ConfigDict, train_examples: int) -> int:
    """Steps of classifier_epochs over the train split."""
    return max(1, math.ceil(config.judge.epochs * train_examples / config.judge.batch_size))


def create_optimizer(config: ml_collections.ConfigDict,
                     num_steps: int) -> optax.GradientTransformation:
    """AdamW with a linear warm-up (5% of the run) and a cosine decay to 0."""
    warmup = max(1, num_steps // 20)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.judge.learning_rate, warmup, max(num_steps, warmup + 1))
    return optax.adamw(schedule, weight_decay=config.judge.weight_decay)


def init_state(config: ml_collections.ConfigDict, num_steps: int) -> ClassifierState:
    """The initial state, from config.seed."""
    model = models.create_judge(config)
    image = jnp.zeros((1, config.image_size, config.image_size, 3), jnp.float32)
    variables = model.init(jax.random.PRNGKey(config.seed), image, train=False)
    tx = create_optimizer(config, num_steps)
    return ClassifierState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                           batch_stats=variables["batch_stats"],
                           opt_state=tx.init(variables["params"]))


def make_train_step(config: ml_collections.ConfigDict, num_steps: int) -> Callable:
    """The pure (state, batch) -> (state, metrics) of one step. BatchNorm's statistics are
    those of the global batch: under jit over a mesh XLA reduces them across devices."""
    model = models.create_judge(config)
    tx = create_optimizer(config, num_steps)

    def loss_fn(params, state, batch):
        logits, updates = model.apply({"params": params, "batch_stats": state.batch_stats},
                                      batch["image"], train=True, mutable=["batch_stats"])
        loss = losses.classification_loss(logits, batch["label"])
        accuracy = jnp.mean((logits > 0) == (batch["label"] > 0.5))
        return loss, (updates["batch_stats"], {"judge/loss": loss, "judge/accuracy": accuracy})

    def train_step(state: ClassifierState, batch):
        grads, (batch_stats, metrics) = jax.grad(loss_fn, has_aux=True)(state.params, state,
                                                                         batch)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return state.replace(step=state.step + 1, params=optax.apply_updates(state.params,
                                                                             updates),
                             batch_stats=batch_stats, opt_state=opt_state), metrics

    return train_step


def abstract_state(config: ml_collections.ConfigDict, num_steps: int,
                   mesh: jax.sharding.Mesh) -> ClassifierState:
    """Shapes, dtypes and shardings of the judge's state, for restoring a checkpoint into."""
    return parallel.abstract_replicated(functools.partial(init_state, config, num_steps), mesh)


def train_judge(config: ml_collections.ConfigDict, workdir: os.PathLike,
                allow_config_change: bool = False) -> loop.Result:
    """Trains the judge that a validated `config` describes in `workdir` (resuming from its
    latest checkpoint); when it finishes, writes its validation and test accuracy to
    <workdir>/results.json, which are also the result's `metrics`."""
    info = input_pipeline.prepare(config)
    task = input_pipeline.task_from_config(config)
    batch_size = config.judge.batch_size
    num_steps = num_classifier_steps(config, info.splits["train"].num_examples)
    mesh = parallel.create_mesh()
    replicated = parallel.replicated(mesh)
    batches = iter(input_pipeline.create_train_loader(
        task, batch_size=batch_size, seed=config.seed, random_flip=config.judge.random_flip,
        worker_count=input_pipeline.resolve_worker_count(config.input_workers)))
    trainer = loop.Trainer(
        name=f"judge ResNet-{config.judge.depth}", num_steps=num_steps, unit="step",
        init=jax.jit(functools.partial(init_state, config, num_steps), out_shardings=replicated),
        abstract=functools.partial(abstract_state, config, num_steps, mesh),
        step=jax.jit(make_train_step(config, num_steps),
                     in_shardings=(replicated, parallel.batch_sharding(mesh)),
                     out_shardings=(replicated, replicated), donate_argnums=0),
        batches=batches,
        to_device=lambda b: parallel.global_batch({"image": b["image"], "label": b["label"]},
                                                  mesh),
        shape_fields=SHAPE_FIELDS, images_per_step=batch_size,
        postfix=lambda m: {"loss": f"{m['judge/loss']:.3f}", "acc": f"{m['judge/accuracy']:.3f}"})
    result = loop.run(trainer, config, workdir, allow_config_change)
    if result.finished:
        judge = judge_lib.Classifier(models.create_judge(config),
                           {"params": result.state.params,
                            "batch_stats": result.state.batch_stats}, config,
                           pathlib.Path(workdir))
        result.metrics = _write_results(judge, config, info, num_steps, mesh)
    return result


def _write_results(judge: judge_lib.Classifier, config: ml_collections.ConfigDict, info: Any,
                   num_steps: int, mesh: jax.sharding.Mesh) -> dict[str, Any]:
    """The judge's accuracy on the validation and test splits, in results.json and
    TensorBoard."""
    task = input_pipeline.task_from_config(config)
    results: dict[str, Any] = {"judge_depth": config.judge.depth, "attribute": config.attribute,
                               "dataset": config.dataset, "steps": num_steps}
    writer = loop.Writer(judge.workdir)
    for split in ("validation", "test"):
        if split in info.splits and info.splits[split].num_examples:
            accuracy, count = judge.split_accuracy(task, split, config.eval_batch_size, mesh)
            results[f"{split}_accuracy"] = accuracy
            results[f"{split}_examples"] = count
            writer.scalars(num_steps, {f"judge/{split}_accuracy": accuracy})
    writer.close()
    if jax.process_index() == 0:
        (judge.workdir / judge_lib.RESULTS_FILE).write_text(json.dumps(results, indent=2) + "\n")
    console.say(f"judge: validation accuracy {results.get('validation_accuracy', float('nan')):.2%}"
                f", test accuracy {results.get('test_accuracy', float('nan')):.2%}")
    return results


