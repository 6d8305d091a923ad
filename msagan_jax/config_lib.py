"""Configs: the one place that checks them, and the one way to read a run's config back.

    config_lib.validate(config)        at the entry point: errors.ConfigError naming the field
    config_lib.restore(workdir)        <workdir>/config.json read over configs/default.py
    config_lib.save(workdir, config)   writes it

Defaults live only in `configs/default.py`; a restored config is the defaults updated with
what the run saved, so a field added after the run was made gets its default. Runs saved
before the judge's fields were nested (`model`, `classifier_*`, `judge_workdir`) load too.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any

import ml_collections

from configs import default
from msagan_jax import errors, losses, models

CONFIG_FILE = "config.json"
TRAINABLE = ("editor", "judge")
# Names that runs saved before the judge's fields were nested under `judge`.
_RENAMED = {"judge_workdir": "judge.workdir", "classifier_depth": "judge.depth",
            "classifier_width": "judge.width", "classifier_epochs": "judge.epochs",
            "classifier_batch_size": "judge.batch_size",
            "classifier_learning_rate": "judge.learning_rate",
            "classifier_weight_decay": "judge.weight_decay"}


def flatten(config: ml_collections.ConfigDict | dict, prefix: str = "") -> dict[str, Any]:
    """{"judge.depth": 50, ...}: every leaf under its dotted name."""
    items = config.items() if isinstance(config, dict) else config.items()
    flat = {}
    for name, value in items:
        if isinstance(value, (dict, ml_collections.ConfigDict)):
            flat.update(flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def _upgrade(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config in today's names (see _RENAMED; `model` became `what_to_train`)."""
    flat = flatten(saved)
    if "random_flip" not in flat and "judge" not in saved:
        flat["random_flip"] = True  # before the switch existed, every run flipped
    if "model" in flat:
        flat["what_to_train"] = {"classifier": "judge"}.get(flat["model"], flat.pop("model"))
        flat.pop("model", None)
    return {_RENAMED.get(name, name): value for name, value in flat.items()}


def merge(saved: dict[str, Any]) -> ml_collections.ConfigDict:
    """configs/default.py updated with a saved config's values; unknown fields are kept."""
    config = default.get_config()
    with config.unlocked():
        for name, value in _upgrade(saved).items():
            node, *path = name.split(".")[::-1]
            target = config
            for part in reversed(path):
                target = target[part]
            if isinstance(target.get(node), float) and isinstance(value, int):
                value = float(value)  # JSON writes 3.0 as 3
            target[node] = value
    return config


def restore(workdir: os.PathLike) -> ml_collections.ConfigDict:
    """The config a run saved in <workdir>/config.json, over today's defaults."""
    path = pathlib.Path(workdir) / CONFIG_FILE
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise errors.InputError(f"{path} does not exist: is {workdir} a training workdir?") \
            from None
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.InputError(f"{path} is not a readable config ({e})") from None
    if not isinstance(saved, dict):
        raise errors.InputError(f"{path} is not a readable config (not a JSON object)")
    return merge(saved)


def check_holds(config: ml_collections.ConfigDict, wanted: str, workdir: os.PathLike) -> None:
    """errors.InputError when the run in `workdir` (its `config`) is not a `wanted` one."""
    if config.what_to_train != wanted:
        article = lambda what: "an" if what[0] in "aeiou" else "a"  # noqa: E731
        raise errors.InputError(
            f"{workdir} holds {article(config.what_to_train)} {config.what_to_train}, not "
            f"{article(wanted)} {wanted}: use another --workdir")


def save(workdir: os.PathLike, config: ml_collections.ConfigDict) -> None:
    """Writes <workdir>/config.json (process 0 only)."""
    import jax
    if jax.process_index() == 0:
        text = json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n"
        path = pathlib.Path(workdir) / CONFIG_FILE
        temporary = path.with_name(f".{CONFIG_FILE}.tmp")
        temporary.write_text(text)
        os.replace(temporary, path)  # a kill mid-write never leaves a half-written config


# --- Validation ------------------------------------------------------------------------------

_CHOICES = {"what_to_train": TRAINABLE, "structure": models.STRUCTURES,
            "mask_loss": losses.MASK_LOSSES, "adversarial_loss": losses.ADVERSARIAL_LOSSES,
            "compute_dtype": tuple(models.DTYPES), "conv_impl": models.CONV_IMPLS,
            "attribute_image": models.ATTRIBUTE_IMAGES,
            "judge.depth": tuple(models.ARCHITECTURES)}
_POSITIVE = ("image_size", "batch_size", "width", "num_down", "d_width", "d_num_layers",
             "d_steps", "log_every", "num_samples", "checkpoint_every", "keep_checkpoints",
             "eval_examples", "eval_batch_size", "learning_rate", "judge.width",
             "judge.epochs", "judge.batch_size", "judge.learning_rate", "collapse_patience")
_NOT_NEGATIVE = ("num_res_blocks", "sample_every", "eval_every", "gp_weight", "d_learning_rate",
                 "d_region_size", "d_region_weight",
                 "cls_weight", "rec_id_weight", "rec_dual_weight", "mask_id_weight",
                 "mask_dual_weight", "mask_edit_weight", "judge.weight_decay",
                 "collapse_threshold", "cpu_devices")
_FRACTIONS = ("adam_b1", "adam_b2", "ema_decay")  # in [0, 1)
_CONDITIONS = ("edit_condition_to_0", "edit_condition_to_1")  # finite, toward 1 the larger


def _check_values(flat: dict[str, Any]) -> None:
    for name, choices in _CHOICES.items():
        if flat[name] not in choices:
            raise errors.ConfigError(f"unknown {name} {flat[name]!r}; choose one of "
                                     f"{', '.join(map(str, choices))}")
    for name in _POSITIVE + _NOT_NEGATIVE + _FRACTIONS + _CONDITIONS:
        value = flat[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise errors.ConfigError(f"{name}={value!r} must be a number")
    check_edit_condition(*(flat[name] for name in _CONDITIONS))
    for name in _POSITIVE:
        if not flat[name] > 0:
            raise errors.ConfigError(f"{name}={flat[name]} must be positive")
    for name in _NOT_NEGATIVE:
        if not flat[name] >= 0:
            raise errors.ConfigError(f"{name}={flat[name]} must not be negative")
    for name in _FRACTIONS:
        if not 0 <= flat[name] < 1:
            raise errors.ConfigError(f"{name}={flat[name]} must lie in [0, 1)")
    workers = flat["input_workers"]
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < -1:
        raise errors.ConfigError(f"input_workers={workers!r} must be a whole number, 0 or more, "
                                 "or -1 (chosen by platform)")


def check_edit_condition(to_0: float, to_1: float) -> None:
    """errors.ConfigError unless the conditions toward 0 and 1 are finite, toward 1 the larger
    (an edit that would not move, or move backwards, is a typo)."""
    if not all(math.isfinite(v) for v in (to_0, to_1)) or not to_1 > to_0:
        raise errors.ConfigError(f"edit_condition_to_0={to_0!r}, edit_condition_to_1={to_1!r}: "
                                 f"finite numbers, the second the larger (the paper's: 0, 1)")


# Every global batch of a run: each must split evenly over the devices.
BATCH_FIELDS = ("batch_size", "eval_batch_size", "judge.batch_size")


def rate_falls(config: ml_collections.ConfigDict, num_steps: float) -> bool:
    """Whether both learning rates fall before iteration num_steps: from lr_decay_start, when
    it is set and comes before the end (train.learning_rate_schedule)."""
    return 0 <= config.lr_decay_start < num_steps


def batch_sizes(config: ml_collections.ConfigDict) -> list[int]:
    """The config's global batches (BATCH_FIELDS)."""
    flat = flatten(config)
    return [int(flat[name]) for name in BATCH_FIELDS]


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises errors.ConfigError naming the first field the project cannot use. Called once,
    where a run starts (experiment.run, sweep.run_sweep); nothing below re-checks."""
    from msagan_jax import input_pipeline  # the data layer (attribute and region names)
    import jax

    flat = flatten(config)
    missing = sorted(set(flatten(default.get_config())) - set(flat))
    if missing:
        raise errors.ConfigError(f"the config lacks {', '.join(missing)}: build it on "
                                 f"configs/default.py")
    _check_values(flat)
    task = input_pipeline.task_from_config(config)  # attribute and guide_mask names
    size = config.image_size
    if size % 2 ** config.d_num_layers or size % 2 ** config.num_down:
        raise errors.ConfigError(f"image_size={size} must divide by 2**d_num_layers="
                                 f"{2 ** config.d_num_layers} and 2**num_down="
                                 f"{2 ** config.num_down}")
    region = config.d_region_size
    if region and (region % 4 or region > size or task.mask_name is None):
        raise errors.ConfigError(f"d_region_size={region} must be a multiple of 4, at most "
                                 f"image_size={size}, for an attribute with a guide mask")
    if config.num_train_steps <= 0 and config.num_epochs <= 0:
        raise errors.ConfigError("set num_train_steps or num_epochs to a positive value")
    if config.what_to_train == "editor" and task.mask_name is None and \
            config.mask_loss != "none":
        raise errors.ConfigError(
            f"attribute {config.attribute!r} has no guide mask (guide_mask="
            f"{config.guide_mask!r}); use mask_loss='none' or choose a guide_mask")
    for name in BATCH_FIELDS:
        if flat[name] % jax.device_count():
            raise errors.ConfigError(f"{name}={flat[name]} must be a multiple of the "
                                     f"{jax.device_count()} devices")
