"""The paper's metrics and the mask's, checked on editors whose answer is known."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import tiny_config
from msagan_jax import editor, errors, evaluate, input_pipeline, sweep


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


def test_an_editor_that_does_nothing_closes_none_of_the_gap_to_the_truth(trained_run):
    ed = force_mask(editor.load_editor(trained_run), -60.0)  # output = input
    m = evaluate.evaluate(ed, ed.judge, batch_size=8)
    for name in ("gap_closed", "gap_closed_to_0", "gap_closed_to_1"):
        assert m[name] == pytest.approx(0.0, abs=1e-5), name
    # Against the truth it is as far as the input is: positive error, finite PSNR, SSIM < 1.
    for d in "01":
        assert m[f"truth_l1_to_{d}"] > 0 and m[f"truth_l1_region_to_{d}"] > m[f"truth_l1_to_{d}"]
        assert np.isfinite(m[f"truth_psnr_to_{d}"]) and m[f"truth_ssim_to_{d}"] < 1


def test_a_condition_past_1_changes_only_the_faces_edited_toward_1(trained_run):
    ed = editor.load_editor(trained_run)
    paper = evaluate.evaluate(ed, ed.judge, batch_size=8)
    stronger = evaluate.evaluate(ed.with_condition(0.0, 3.0), ed.judge, batch_size=8)
    for name in ("gap_closed_to_0", "accuracy_to_0", "truth_l1_to_0"):
        assert stronger[name] == pytest.approx(paper[name], abs=1e-6), name
    assert abs(stronger["gap_closed_to_1"] - paper["gap_closed_to_1"]) > 1e-5
    assert stronger["identity_l1"] == pytest.approx(paper["identity_l1"], abs=1e-7)


def _truth_metrics(image, edited, truth, target):
    sums = evaluate.truth_sums(*map(jnp.asarray, (image, edited, truth)),
                               jnp.ones(len(image)), jnp.asarray(target, jnp.float32))
    totals = dict.fromkeys(evaluate._SUMS, 0.0)
    totals.update({k: float(jnp.sum(v)) for k, v in sums.items()})
    return evaluate._truth_metrics(totals)


def _pairs(n=4, size=32, seed=0):
    """Faces and their truths that differ in a square (the 'mouth'), half of them each way."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
    truth = image.copy()
    truth[:, 8:20, 10:22] = rng.uniform(-1, 1, (n, 12, 12, 3))
    return image, truth, np.arange(n) % 2


def test_a_perfect_editor_closes_all_of_the_gap_and_matches_the_truth():
    image, truth, target = _pairs()
    m = _truth_metrics(image, truth, truth, target)
    for d in "01":
        assert m[f"gap_closed_to_{d}"] == 1.0 and m[f"truth_l1_to_{d}"] == 0
        assert m[f"truth_l1_region_to_{d}"] == 0 and m[f"truth_psnr_to_{d}"] == np.inf
        assert m[f"truth_ssim_to_{d}"] == pytest.approx(1.0, abs=1e-6)
    assert m["gap_closed"] == 1.0


def test_the_gap_closed_is_the_share_of_the_way_to_the_truth():
    image, truth, target = _pairs()
    nothing = _truth_metrics(image, image, truth, target)
    assert nothing["gap_closed"] == pytest.approx(0.0, abs=1e-6)
    halfway = _truth_metrics(image, (image + truth) / 2, truth, target)
    assert halfway["gap_closed"] == pytest.approx(0.5, abs=1e-5)
    # The region is where input and truth differ: there, halfway is half the input's error.
    assert halfway["truth_l1_region_to_1"] == pytest.approx(
        nothing["truth_l1_region_to_1"] / 2, rel=1e-4)
    # Changing what should stay opens a gap: a negative share.
    spoiled = image.copy()
    spoiled[:, :4] = -spoiled[:, :4]
    assert _truth_metrics(image, spoiled, truth, target)["gap_closed"] < 0


def test_faces_edited_one_way_leave_the_other_ways_metrics_undefined():
    image, truth, _ = _pairs()
    m = _truth_metrics(image, truth, truth, np.ones(len(image)))
    assert m["gap_closed_to_1"] == 1.0
    assert np.isnan(m["gap_closed_to_0"]) and np.isnan(m["truth_psnr_to_0"])


def test_the_train_split_holds_no_truth_so_its_truth_metrics_are_nan(trained_run):
    ed = editor.load_editor(trained_run)
    evaluator = evaluate.Evaluator(ed.config, ed.judge, split="train", num_examples=8)
    assert evaluator.has_truth  # the dataset stores counterparts, not for this split
    m = dict(evaluator.run(ed.g_params))
    assert np.isnan(m["gap_closed"]) and np.isnan(m["truth_ssim_to_1"])
    assert not np.isnan(m["ssim"])


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
    assert "| c given to edit toward 0 / 1 |" in table
    assert (trained_run / "eval" / "samples.png").is_file()
    # The synthetic test split knows the true edit: input | edit | truth, each way.
    assert metrics["gap_closed_to_0"] <= 1 and metrics["gap_closed_to_1"] <= 1
    truth = np.asarray(Image.open(trained_run / "eval" / "truth.png"))
    assert truth.shape[1] == 6 * 64 + 5 * 2
    events = EventAccumulator(str(trained_run)).Reload()
    assert "eval/attribute_editing_accuracy" in events.Tags()["scalars"]
    assert "eval/ssim" in events.Tags()["scalars"]


def test_timing_gives_the_time_of_one_epoch(trained_run):
    timing = json.loads((trained_run / "timing.json").read_text())
    per_epoch = timing["train_examples"] / timing["images_per_iteration"]
    assert timing["seconds_per_epoch"] == pytest.approx(per_epoch * timing[
        "seconds_per_iteration"])


def test_evaluating_without_a_judge_gives_the_command_that_trains_this_runs_judge(
        trained_run, tmp_path):
    with pytest.raises(errors.InputError) as raised:
        evaluate.evaluate_run(trained_run, tmp_path / "no_judge")
    message = str(raised.value)
    assert "configs/classifier.py" in message and f"--workdir={tmp_path / 'no_judge'}" in message
    # The run's own data, not the defaults' CelebAMask-HQ (which needs a download).
    assert "--config.dataset=celebamask_synthetic/64_n96_s3" in message
    assert "--config.image_size=64" in message and "--config.data_dir=" in message


def test_training_with_a_judge_writes_the_learning_curve_on_validation_faces(trained_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = evaluate.read_curve(trained_run / evaluate.CURVE_FILE)
    assert [int(r["step"]) for r in rows] == [2, 4]  # eval_every=2 of 4 iterations
    assert all(r["examples"] == 6 for r in rows)  # eval_examples=6 of the 10 validation faces
    assert all(0 <= r["attribute_editing_accuracy"] <= 1 for r in rows)
    scalars = EventAccumulator(str(trained_run)).Reload().Tags()["scalars"]
    assert {"eval_val/attribute_editing_accuracy", "eval_val/ssim",
            "eval_val/mask_guide_coverage", "eval_val/collapsed"} <= set(scalars)


def test_the_curve_at_the_last_step_is_the_evaluator_on_those_validation_faces(trained_run):
    ed = editor.load_editor(trained_run)
    evaluator = evaluate.Evaluator(ed.config, ed.judge, split="validation", num_examples=6)
    metrics = dict(evaluator.run(ed.g_params))
    last = evaluate.read_curve(trained_run / evaluate.CURVE_FILE)[-1]
    for name in ("attribute_editing_accuracy", "ssim", "mask_guide_coverage"):
        assert last[name] == pytest.approx(metrics[name], rel=1e-5), name


def test_metric_names_come_from_one_table(trained_run):
    ed = editor.load_editor(trained_run)
    names = [name for name, _ in evaluate.Evaluator(ed.config, ed.judge, split="test").run(
        ed.g_params)]
    assert names == [*evaluate.METRICS, "examples"]
    header = (trained_run / evaluate.CURVE_FILE).read_text().splitlines()[0].split(",")
    assert header == ["step", *evaluate.METRICS, "examples"]
    assert set(evaluate.METRICS) <= set(sweep.CSV_FIELDS)
    assert set(sweep.REPORT_COLUMNS) <= set(evaluate.METRICS) | set(evaluate.RUN_FIELDS)
