"""One experiment, as `python main.py --config=... --workdir=...` runs it.

An editor config: make sure its judge exists (training it once in judge.workdir when it has no
results yet: the judge does not depend on the editor), then train the editor with evaluation
on a validation subset as it learns, then evaluate it on the test split (train.py). A judge
config (what_to_train="judge"): train the judge. Each part resumes where it stopped.
"""

from __future__ import annotations

import copy
import os

import ml_collections

from msagan_jax import checkpoint, classifier, config_lib, console, judge_lib, loop, parallel
from msagan_jax import train


def judge_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """An editor config as the config of its judge."""
    judge = copy.deepcopy(config)
    judge.what_to_train = "judge"
    return judge


def ensure_judge(config: ml_collections.ConfigDict, workdir: os.PathLike) -> loop.Result | None:
    """Trains (or finishes training) the judge an editor of `config` in `workdir` names, when
    it has no results yet or its checkpoints are gone (a folder that kept only its results, as
    results/sweep_synthetic in this repository does: the same seed trains the same judge on
    the same machine). None when it already had both."""
    judge_dir = judge_lib.judge_dir(config, workdir)
    if judge_lib.read_results(judge_dir) is not None and checkpoint.has_checkpoint(judge_dir):
        return None
    console.say(f"training the judge (ResNet-{config.judge.depth}) in {judge_dir}")
    return classifier.train_judge(judge_config(config), judge_dir)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: os.PathLike,
                       allow_config_change: bool = False) -> loop.Result:
    """What main.py's train mode does with a validated config (see the module docstring)."""
    if config.what_to_train == "judge":
        return classifier.train_judge(config, workdir, allow_config_change)
    if config.evaluate or config.eval_every:
        judged = ensure_judge(config, workdir)
        if judged is not None and not judged.finished:
            return judged  # stopped by a signal; the same command resumes
    return train.train_and_evaluate(config, workdir, allow_config_change=allow_config_change)


def run(config: ml_collections.ConfigDict, workdir: os.PathLike,
        allow_config_change: bool = False) -> loop.Result:
    """Validates `config`, then trains and evaluates what it describes in `workdir`. The
    result's `finished` is False when a signal stopped it; `metrics` holds the editor's test
    metrics or the judge's accuracy."""
    parallel.use_cpu_cores(config.cpu_devices, config_lib.batch_sizes(config))
    config_lib.validate(config)
    return train_and_evaluate(config, workdir, allow_config_change)
