"""Configs: one place of defaults, one validation at the entry, old runs' configs still read."""

from __future__ import annotations

import importlib
import json
import re

import pytest

from conftest import tiny_config
from msagan_jax import config_lib, errors


@pytest.mark.parametrize("field,value,message", [
    ("what_to_train", "classifier", "unknown what_to_train 'classifier'"),
    ("structure", "e3d3", "unknown structure 'e3d3'"),
    ("mask_loss", "l2", "unknown mask_loss 'l2'"),
    ("adversarial_loss", "hinge", "unknown adversarial_loss 'hinge'"),
    ("compute_dtype", "float16", "unknown compute_dtype 'float16'"),
    ("judge.depth", 20, "unknown judge.depth 20"),
    ("attribute", "Mouth_Open", "unknown attribute 'Mouth_Open'"),
    ("guide_mask", "lips", "unknown guide mask 'lips'"),
    ("batch_size", 0, "batch_size=0 must be positive"),
    ("d_steps", -1, "d_steps=-1 must be positive"),
    ("learning_rate", -1.0, "learning_rate=-1.0 must be positive"),
    ("judge.learning_rate", 0.0, "judge.learning_rate=0.0 must be positive"),
    ("d_learning_rate", -1e-3, "d_learning_rate=-0.001 must not be negative"),
    ("d_region_size", 30, "d_region_size=30 must be a multiple of 4, at most image_size=64"),
    ("d_region_size", 68, "d_region_size=68 must be a multiple of 4, at most image_size=64"),
    ("d_region_weight", -1.0, "d_region_weight=-1.0 must not be negative"),
    ("rec_id_weight", -100.0, "rec_id_weight=-100.0 must not be negative"),
    ("gp_weight", float("nan"), "gp_weight=nan must be a number"),
    ("adam_b1", 1.0, "adam_b1=1.0 must lie in [0, 1)"),
    ("adam_b2", -0.1, "adam_b2=-0.1 must lie in [0, 1)"),
    ("ema_decay", 1.0, "ema_decay=1.0 must lie in [0, 1)"),
    ("eval_every", -5, "eval_every=-5 must not be negative"),
    ("input_workers", -2, "input_workers=-2 must be a whole number, 0 or more, or -1"),
    ("image_size", 36, "image_size=36 must divide by 2**d_num_layers"),
    ("edit_condition_to_1", 0.0, "edit_condition_to_0=0.0, edit_condition_to_1=0.0: finite"),
    ("edit_condition_to_0", float("inf"), "edit_condition_to_0=inf, edit_condition_to_1=1.0"),
    ("edit_condition_to_1", float("nan"), "edit_condition_to_1=nan must be a number"),
])
def test_a_bad_config_value_is_refused_naming_the_field(field, value, message):
    config = tiny_config(".", **{field.replace(".", "__"): value})
    with pytest.raises(errors.ConfigError, match=re.escape(message)):
        config_lib.validate(config)


def test_the_tiny_and_shipped_configs_validate():
    config_lib.validate(tiny_config("."))
    for name in ("default", "quickstart", "classifier", "sweep_synthetic", "e2d1_nomask"):
        config_lib.validate(importlib.import_module(f"configs.{name}").get_config())


def test_the_sweep_trains_the_papers_network_and_losses_whatever_the_quick_start_uses():
    sweep = importlib.import_module("configs.sweep_synthetic").get_config()
    paper = importlib.import_module("configs.default").get_config()
    for field in ("adversarial_loss", "attribute_image", "conditional_norm", "image_skip",
                  "d_steps", "cls_weight", "rec_id_weight", "rec_dual_weight",
                  "mask_id_weight", "mask_dual_weight", "mask_edit_weight", "lr_decay_start",
                  "edit_condition_to_0", "edit_condition_to_1", "d_learning_rate", "adam_b1",
                  "adam_b2", "d_region_size", "d_spectral_norm"):
        assert sweep[field] == paper[field], field
    assert sweep.ema_decay == 0.0 and sweep.num_train_steps == 800
    assert (sweep.d_width, sweep.d_num_layers) == (16, 5)  # the D its README results ran with


def test_a_mask_loss_without_a_guide_mask_is_refused():
    config = tiny_config(".", attribute="Male")
    with pytest.raises(errors.ConfigError, match="'Male' has no guide mask"):
        config_lib.validate(config)
    config.mask_loss = "none"
    config_lib.validate(config)
    config.d_region_size = 32  # a region critic needs the guide mask's region too
    with pytest.raises(errors.ConfigError, match="d_region_size=32 must be .* with a guide mask"):
        config_lib.validate(config)


def test_a_restored_config_is_the_defaults_updated_with_what_the_run_saved(tmp_path):
    from configs import default

    saved = {"structure": "e2d2", "width": 8, "judge": {"depth": 18}, "num_epochs": 3}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = config_lib.restore(tmp_path)
    assert (config.structure, config.width, config.judge.depth) == ("e2d2", 8, 18)
    assert config.num_epochs == 3.0 and isinstance(config.num_epochs, float)
    # Everything the run did not save comes from configs/default.py, the one place.
    fresh = default.get_config()
    assert config.eval_split == fresh.eval_split and config.judge.width == fresh.judge.width
    assert config.collapse_threshold == fresh.collapse_threshold


def test_an_old_runs_config_reads_with_the_judge_fields_nested(tmp_path):
    old = {"model": "classifier", "classifier_depth": 18, "classifier_width": 16,
           "classifier_epochs": 3.0, "judge_workdir": "judge", "image_size": 64}
    (tmp_path / "config.json").write_text(json.dumps(old))
    config = config_lib.restore(tmp_path)
    assert config.what_to_train == "judge"
    assert (config.judge.depth, config.judge.width, config.judge.epochs) == (18, 16, 3.0)
    assert config.judge.workdir == "judge" and "model" not in config
    assert config.random_flip is True  # those runs flipped their faces: still the same run
    old["model"] = "editor"
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert config_lib.restore(tmp_path).what_to_train == "editor"


@pytest.mark.parametrize("text,message", [(None, "does not exist"), ("", "not a readable"),
                                          ("[1, 2]", "not a JSON object")])
def test_a_missing_or_broken_config_json_is_one_error_naming_it(tmp_path, text, message):
    if text is not None:
        (tmp_path / "config.json").write_text(text)
    with pytest.raises(errors.InputError, match=message):
        config_lib.restore(tmp_path)
