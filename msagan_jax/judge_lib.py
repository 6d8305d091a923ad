"""The judge as a scorer: restore a trained ResNet attribute classifier and use it.

    judge = judge_lib.load_classifier("runs/judge")
    judge.predict(images)                # 1 where it sees the attribute
    judge_lib.find_judge(config, workdir)  # the finished judge an editor's config names

The paper scores attribute editing with a ResNet-50 trained on the training split (METHOD.md
section 4). Its network is models.ResNet; its training is classifier.py, which an editor or a
notebook that only scores never imports.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from msagan_jax import checkpoint, errors, input_pipeline, models, parallel

RESULTS_FILE = "results.json"


@dataclasses.dataclass
class Classifier:
    """A restored judge: `logits(images)` for [-1, 1] images (N, H, W, 3) of its image_size."""

    model: models.ResNet
    variables: Any
    config: ml_collections.ConfigDict
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
        total = parallel.process_sum(total)  # each process counted its own examples
        return correct / max(total, 1.0), int(total)


def read_results(workdir: os.PathLike) -> dict | None:
    """A finished judge's <workdir>/results.json, or None when it has not finished."""
    try:
        return json.loads((pathlib.Path(workdir) / RESULTS_FILE).read_text())
    except FileNotFoundError:
        return None


def abstract_variables(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Shapes and shardings of a judge's params and batch_stats, to restore them into."""
    model = models.create_judge(config)
    image = jnp.zeros((1, config.image_size, config.image_size, 3))
    return parallel.abstract_replicated(
        lambda: model.init(jax.random.PRNGKey(0), image, train=False), parallel.create_mesh())


def load_classifier(workdir: os.PathLike, step: int | None = None) -> Classifier:
    """Restores the judge trained in `workdir` (its latest checkpoint, or `step`)."""
    workdir = pathlib.Path(workdir)
    config, manager = checkpoint.open_run(workdir, "judge")
    _, variables = checkpoint.restore_parameters(manager, abstract_variables(config), step)
    return Classifier(models.create_judge(config), variables, config, workdir)


def judge_dir(config: ml_collections.ConfigDict, workdir: os.PathLike) -> pathlib.Path:
    """The judge's workdir that an editor's config names (relative paths: from `workdir`)."""
    path = pathlib.Path(os.path.expanduser(config.judge.workdir))
    return path if path.is_absolute() else (pathlib.Path(workdir).absolute() / path).resolve()


def find_judge(config: ml_collections.ConfigDict, workdir: os.PathLike) -> Classifier | None:
    """The finished judge that an editor's config names, checked against it; None if none."""
    path = judge_dir(config, workdir)
    if read_results(path) is None:
        return None
    judge = load_classifier(path)
    check_judge(judge, config)
    return judge


def check_judge(judge: Classifier, config: ml_collections.ConfigDict) -> None:
    """Raises errors.InputError when a judge learned another attribute, image size or kind of
    faces (celebamask vs celebamask_synthetic; their configs may differ, e.g. 64 and
    64_n96_s3)."""
    kind = lambda c: str(c.dataset).split("/")[0]  # noqa: E731
    for name, theirs, ours in (("attribute", judge.config.attribute, config.attribute),
                               ("image_size", judge.config.image_size, config.image_size),
                               ("dataset", kind(judge.config), kind(config))):
        if theirs != ours:
            raise errors.InputError(f"the judge in {judge.workdir} was trained with {name}="
                                    f"{theirs!r}, the editor with {ours!r}")


def how_to_train(config: ml_collections.ConfigDict, judge_workdir: os.PathLike) -> str:
    """The command that trains the judge an editor of `config` needs, in `judge_workdir`."""
    fields = {"dataset": config.dataset, "image_size": config.image_size,
              "attribute": config.attribute}
    if config.data_dir:
        fields["data_dir"] = config.data_dir
    for name in ("depth", "width", "epochs", "batch_size"):
        fields[f"judge.{name}"] = config.judge[name]
    flags = " ".join(f"--config.{name}={value}" for name, value in fields.items())
    return (f"train one with `python main.py --config=configs/classifier.py "
            f"--workdir={judge_workdir} {flags}`")
