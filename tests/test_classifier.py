"""The judge: ResNet architectures, training on the synthetic faces, results, restore."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import tiny_config
from msagan_jax import errors, experiment, input_pipeline, judge_lib, models

# The judge of these tests: ResNet-10, 8 channels, 20 epochs of the 77 tiny train faces.
TINY_JUDGE = dict(what_to_train="judge", judge__depth=10, judge__width=8, judge__epochs=20,
                  judge__batch_size=8, judge__learning_rate=3e-3, eval_batch_size=8,
                  log_every=10, checkpoint_every=20)


def _judge(depth: int, width: int) -> models.ResNet:
    return models.create_judge(tiny_config(".", judge__depth=depth, judge__width=width))


def _count(model: models.ResNet, size: int = 64) -> int:
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                               jnp.zeros((1, size, size, 3)), train=False))
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))


def test_resnet50_has_torchvisions_parameters_plus_a_one_logit_head():
    # torchvision's resnet50: 25,557,032 parameters, 2,049,000 of them in its 1000-class fc.
    assert _count(_judge(50, 64)) == \
        25_557_032 - 2_049_000 + 2_049


def test_resnet18_has_torchvisions_parameters_plus_a_one_logit_head():
    # torchvision's resnet18: 11,689,512 parameters, 513,000 of them in its fc.
    assert _count(_judge(18, 64)) == \
        11_689_512 - 513_000 + 513


def test_the_judge_gives_one_logit_per_image_at_any_size_that_halves_five_times():
    model = _judge(10, 4)
    x = jnp.zeros((3, 64, 64, 3))
    variables = model.init(jax.random.PRNGKey(0), x)
    assert model.apply(variables, x).shape == (3,)


def test_padded_eval_batches_read_every_example_once_in_equal_shapes(synthetic_data_dir):
    task = input_pipeline.task_from_config(tiny_config(synthetic_data_dir))
    batches = list(input_pipeline.padded_eval_batches(task, batch_size=4, split="test"))
    assert {b["image"].shape for b in batches} == {(4, 64, 64, 3)}
    weights = np.concatenate([b["weight"] for b in batches])
    indices = np.concatenate([b["index"] for b in batches])[weights > 0]
    assert weights.sum() == len(input_pipeline.data_source(task, "test")) == 10
    assert len(set(indices.tolist())) == 10


def test_the_judge_learns_the_mouth_and_reports_validation_and_test_accuracy(
        synthetic_data_dir, tmp_path):
    config = tiny_config(synthetic_data_dir, **TINY_JUDGE)
    result = experiment.run(config, tmp_path)
    assert result.finished
    results = result.metrics
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == results
    assert results["validation_examples"] == 10 and results["test_examples"] == 10
    # 20 val + test faces; chance is about 50%.
    assert (results["validation_accuracy"] + results["test_accuracy"]) / 2 >= 0.8, results
    judge = judge_lib.load_classifier(tmp_path)
    task = input_pipeline.task_from_config(config)
    batch = next(iter(input_pipeline.create_eval_loader(task, batch_size=10, split="test")))
    assert np.mean(judge.predict(batch["image"]) == batch["label"]) == results["test_accuracy"]
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_load_classifier_refuses_an_editor_workdir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"what_to_train": "editor"}))
    with pytest.raises(errors.InputError, match="holds an editor, not a judge"):
        judge_lib.load_classifier(tmp_path)
