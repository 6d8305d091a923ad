"""The paper's metrics and the mask's, checked on editors whose answer is known."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from conftest import tiny_config
from msagan_jax import editor, evaluate, input_pipeline


def force_mask(ed: editor.Editor, logit: float) -> editor.Editor:
    """The same editor with its mask output fixed at sigmoid(logit) everywhere (E1D1: the
    fourth channel of the decoder's last conv)."""
    params = jax.tree.map(np.array, ed.g_params)
    decoder = params["params"]["F"]["decoder"]
    last = max((k for k in decoder if k.startswith("Conv")), key=lambda k: int(k.split("_")[1]))
    decoder[last]["kernel"][..., 3] = 0.0
    decoder[last]["bias"][3] = logit
    return editor.Editor(ed.config, params, ed.d_params, ed.judge, ed.workdir, ed.step)


def test_a_mask_of_zero_returns_the_input_ssim_1_and_is_flagged_collapsed(trained_run):
    ed = force_mask(editor.load_editor(trained_run), -60.0)
    m = evaluate.evaluate(ed, ed.judge, batch_size=8)
    assert m["examples"] == 10
    assert m["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert m["identity_l1"] < 1e-6
    assert m["mask_guide_coverage"] == 0 and m["mask_guide_iou"] == 0
    assert m["mask_outside_area"] == 0
    assert m["collapsed"]
    # The output is the input, so the judge sees the old value wherever it is right.
    assert m["attribute_editing_accuracy"] == pytest.approx(1 - m["judge_accuracy_on_inputs"])


def test_a_mask_of_one_covers_the_guide_and_everything_outside_it(trained_run,
                                                                   synthetic_data_dir):
    ed = force_mask(editor.load_editor(trained_run), 60.0)
    m = evaluate.evaluate(ed, ed.judge, batch_size=8)
    assert m["mask_guide_coverage"] == 1 and m["mask_outside_area"] == 1
    assert not m["collapsed"]
    task = input_pipeline.task_from_config(tiny_config(synthetic_data_dir))
    masks = np.concatenate([b["mask"] for b in input_pipeline.create_eval_loader(
        task, batch_size=10, split="test")])
    assert m["mask_guide_iou"] == pytest.approx(masks.mean(), rel=1e-6)  # guide / whole image


def test_evaluation_does_not_depend_on_the_batch_size(trained_run):
    ed = editor.load_editor(trained_run)
    a = evaluate.evaluate(ed, ed.judge, batch_size=8)
    b = evaluate.evaluate(ed, ed.judge, batch_size=3)
    for name in ("attribute_editing_accuracy", "ssim", "identity_l1", "mask_guide_coverage",
                 "mask_guide_iou", "mask_outside_area"):
        assert a[name] == pytest.approx(b[name], rel=1e-5), name


def test_a_run_writes_json_markdown_samples_and_tensorboard_scalars(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    metrics = json.loads((trained_run / "eval" / "metrics.json").read_text())
    assert metrics["step"] == 4 and metrics["structure"] == "e1d1"
    assert metrics["seconds_per_epoch"] > 0
    assert 0 <= metrics["attribute_editing_accuracy"] <= 1
    table = (trained_run / "eval" / "metrics.md").read_text()
    assert "| attribute-editing accuracy |" in table and "| SSIM(input, output) |" in table
    assert (trained_run / "eval" / "samples.png").is_file()
    events = EventAccumulator(str(trained_run)).Reload()
    assert "eval/attribute_editing_accuracy" in events.Tags()["scalars"]
    assert "eval/ssim" in events.Tags()["scalars"]


def test_timing_gives_the_time_of_one_epoch(trained_run):
    timing = json.loads((trained_run / "timing.json").read_text())
    per_epoch = timing["train_examples"] / timing["images_per_iteration"]
    assert timing["seconds_per_epoch"] == pytest.approx(per_epoch * timing[
        "seconds_per_iteration"])


def test_evaluating_without_a_judge_says_how_to_train_one(trained_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="configs/classifier.py"):
        evaluate.evaluate_run(trained_run, tmp_path / "no_judge")
