"""One experiment, as `python main.py --config=... --workdir=...` runs it.

An editor config: train the editor (train.py), make sure its judge exists (training it once in
judge_workdir if it has no results yet), then evaluate (evaluate.py). A classifier config
(model="classifier"): train the judge. Each part resumes where it stopped.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import ml_collections
from absl import logging

from msagan_jax import classifier, editor, evaluate, input_pipeline, train


def judge_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The editor config's classifier fields, as a classifier config."""
    judge = ml_collections.ConfigDict(config.to_dict())
    judge.model = "classifier"
    return judge


def ensure_judge(config: ml_collections.ConfigDict, judge_dir: os.PathLike) -> dict | None:
    """The results of the judge in `judge_dir`, training it first (or finishing its training)
    when it has none. None when its training was stopped by a signal."""
    results = classifier.read_results(judge_dir)
    if results is None:
        logging.info("training the judge (ResNet-%d) in %s", config.classifier_depth, judge_dir)
        results = classifier.train_classifier(judge_config(config), judge_dir) or None
    return results


def run(config: ml_collections.ConfigDict, workdir: os.PathLike) -> dict[str, Any] | None:
    """Trains (and, for an editor with evaluate=True, evaluates) what `config` describes in
    `workdir`. Returns the judge's results or the editor's metrics; None when stopped early."""
    if config.model == "classifier":
        return classifier.train_classifier(config, workdir) or None
    if config.model != "editor":
        raise ValueError(f"unknown model {config.model!r}; choose editor or classifier")
    train.validate_config(config)
    state = train.train_and_evaluate(config, workdir)
    info = input_pipeline.prepare(config)
    if int(state.step) < train.num_train_steps(config, info.splits["train"].num_examples):
        return None  # stopped by a signal; the same command resumes
    if not config.evaluate:
        return None
    judge_dir = editor.judge_dir_of(config.to_dict(), workdir)
    if ensure_judge(config, judge_dir) is None:
        return None
    return evaluate.evaluate_run(pathlib.Path(workdir), judge_dir)
