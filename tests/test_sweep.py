"""The sweep: models x seeds, one judge, a report; an interrupted sweep picks up where it was."""

from __future__ import annotations

import csv
import fcntl
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import tiny_config
from msagan_jax import checkpoint, errors, experiment, rundir, sweep

PLAN = dict(seeds=[0], structures=["e2d2", "e1d1"], mask_losses=["none", "sde"])


@pytest.fixture(scope="module")
def finished_sweep(synthetic_data_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("sweep")
    base = tiny_config(synthetic_data_dir, num_train_steps=2, sample_every=0)
    results = sweep.run_sweep(base, workdir, **PLAN)
    return base, workdir, results


def test_the_sweep_trains_evaluates_and_reports_every_model(finished_sweep):
    _, workdir, results = finished_sweep
    assert {(r["structure"], r["mask_loss"]) for r in results} == {
        ("e2d2", "none"), ("e2d2", "sde"), ("e1d1", "none"), ("e1d1", "sde")}
    assert all(r["judge"] == str(workdir / "judge") for r in results)
    rows = list(csv.DictReader(open(workdir / "results.csv")))
    assert len(rows) == 4 and set(rows[0]) >= {"attribute_editing_accuracy", "ssim",
                                                  "seconds_per_epoch", "collapsed"}
    report = (workdir / "report.md").read_text()
    assert "## By mask loss" in report and "## By structure" in report
    assert "| E2D2 | sde | 0 |" in report
    assert "## The paper's claims" in report and "- **SDE is the best mask loss" in report
    assert "Partial" not in report
    for figure in ("fig6_by_mask_loss.png", "fig7_by_structure.png", "fig8_time_per_epoch.png",
                   "fig_learning_curves.png", "sample_sheet.png"):
        assert (workdir / figure).stat().st_size > 1000, figure


def test_report_only_reports_the_finished_runs_of_a_sweep_under_way_and_trains_nothing(
        finished_sweep, monkeypatch):
    base, workdir, _ = finished_sweep
    metrics = workdir / "runs" / "e2d2_sde_s0" / "eval" / "metrics.json"
    saved = metrics.read_bytes()
    metrics.unlink()
    monkeypatch.setattr(experiment, "train_and_evaluate", None)  # calling it would fail
    try:
        results = sweep.run_sweep(base, workdir, **PLAN, report_only=True)
    finally:
        metrics.write_bytes(saved)
    assert len(results) == 3
    report = (workdir / "report.md").read_text()
    assert "**Partial: 3 of the 4 planned runs have finished.**" in report
    assert "| E2D2 | sde | 0 |" not in report and "| E1D1 | sde | 0 |" in report


def test_a_sweep_folder_that_kept_only_its_results_retrains_its_judge_and_reports_again(
        finished_sweep, monkeypatch, tmp_path):
    # What results/sweep_synthetic keeps in git: no checkpoint, judge's or runs'.
    base, workdir, _ = finished_sweep
    kept = tmp_path / "sweep"
    shutil.copytree(workdir, kept, ignore=shutil.ignore_patterns("checkpoints", "jax_cache",
                                                                 "report.md", "*.png"))
    for run in (workdir / "runs").iterdir():  # each run's own evaluation grid is kept
        shutil.copy(run / "eval" / "samples.png", kept / "runs" / run.name / "eval")
    calls = count_runs(monkeypatch)
    results = sweep.run_sweep(base, kept, **PLAN)
    assert calls == [] and len(results) == 4  # every run counted as finished
    assert checkpoint.has_checkpoint(kept / "judge")  # the judge was trained again
    assert "Partial" not in (kept / "report.md").read_text()
    sheet = np.asarray(Image.open(kept / "sample_sheet.png").convert("RGB"))
    grid = np.asarray(Image.open(kept / "runs" / "e2d2_none_s0" / "eval" / "samples.png")
                      .convert("RGB"))
    top = grid[:4 * (base.image_size + 2) - 2]  # its first 4 faces, under a 14-pixel label
    np.testing.assert_array_equal(sheet[14:14 + len(top)], top)


def count_runs(monkeypatch) -> list[str]:
    """The names of the runs the sweep goes on to train, in order (training them for real)."""
    calls = []
    real_run = experiment.train_and_evaluate

    def counting_run(config, run_dir):
        calls.append(run_dir.name)
        return real_run(config, run_dir)

    monkeypatch.setattr(experiment, "train_and_evaluate", counting_run)
    return calls


def test_a_rerun_skips_finished_models_and_redoes_only_the_missing_one(finished_sweep,
                                                                         monkeypatch):
    base, workdir, _ = finished_sweep
    (workdir / "runs" / "e1d1_sde_s0" / "eval" / "metrics.json").unlink()
    calls = count_runs(monkeypatch)
    results = sweep.run_sweep(base, workdir, **PLAN)
    assert calls == ["e1d1_sde_s0"]
    assert len(results) == 4


def test_a_run_held_by_another_sweep_process_is_skipped_and_the_last_to_finish_reports(
        finished_sweep, monkeypatch):
    base, workdir, _ = finished_sweep
    held = workdir / "runs" / "e1d1_sde_s0"
    (held / "eval" / "metrics.json").unlink()
    (workdir / "report.md").unlink()
    calls = count_runs(monkeypatch)
    with open(held / rundir.LOCK_FILE, "a+") as lock:  # what a second sweep process holds
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        results = sweep.run_sweep(base, workdir, **PLAN)
        assert calls == ["e1d1_sde_s0"]  # tried, found held, left alone
        assert len(results) == 3 and not (workdir / "report.md").exists()
        fcntl.flock(lock, fcntl.LOCK_UN)
    results = sweep.run_sweep(base, workdir, **PLAN)  # the held run's process, finishing last
    assert calls == ["e1d1_sde_s0", "e1d1_sde_s0"] and len(results) == 4
    assert "Partial" not in (workdir / "report.md").read_text()


def test_a_sweep_waits_while_another_process_trains_its_judge(monkeypatch):
    answers = [errors.RunInUseError("held"), errors.RunInUseError("held"), None]

    def ensure_judge(config, workdir):
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    monkeypatch.setattr(experiment, "ensure_judge", ensure_judge)
    assert sweep._judge_once(None, None, poll_s=0.0) is None
    assert answers == []  # asked until the other process let go


def test_an_unknown_structure_is_refused_by_name(synthetic_data_dir, tmp_path):
    with pytest.raises(errors.ConfigError, match=r"unknown structure 'e3d3'"):
        sweep.run_sweep(tiny_config(synthetic_data_dir), tmp_path, [0], ["e3d3"])


def test_the_first_runs_of_a_seed_hold_every_structure_and_every_loss_once():
    plan = sweep.plan_runs([0, 1], sweep.STRUCTURES, sweep.MASK_LOSSES)
    assert len(plan) == len(set(plan)) == 32
    first = plan[:4]
    assert {s for s, _, _ in first} == set(sweep.STRUCTURES)
    assert {m for _, m, _ in first} == set(sweep.MASK_LOSSES)
    assert {seed for _, _, seed in plan[:16]} == {0}
    assert len(set(sweep.plan_runs([0], ["e2d2", "e1d1"], sweep.MASK_LOSSES))) == 8


def test_the_tables_by_loss_and_structure_give_the_gap_closed_each_way_as_mean_and_spread():
    runs = [{"structure": "e1d1", "mask_loss": "sde", "attribute_editing_accuracy": 1.0,
             "ssim": 0.95, "collapsed": False, "seconds_per_epoch": 10.0, "gap_closed": g,
             "gap_closed_to_1": g1, "gap_closed_to_0": g0}
            for g, g1, g0 in ((0.65, 0.58, 0.72), (0.67, 0.62, 0.74))]
    lines = sweep._group_tables(runs, ["sde"], ["e1d1"])
    for label in ("| sde |", "| E1D1 |"):
        row = next(x for x in lines if x.startswith(label))
        cells = [c.strip() for c in row.split("|")[2:-1]]
        assert cells[:5] == ["100.0% ± 0.0", "66.0% ± 1.0", "60.0% ± 2.0", "73.0% ± 1.0",
                             "0.9500 ± 0.0000"]
        assert cells[5] == "0 of 2"
    heads = [x for x in lines if x.startswith("| mask loss") or x.startswith("| structure")]
    rules = [lines[lines.index(h) + 1] for h in heads]
    assert [h.count("|") for h in heads] == [r.count("|") for r in rules]  # well-formed tables


def test_the_figures_by_loss_and_structure_show_the_gap_closed_only_where_it_was_measured():
    synthetic = [{"mask_loss": loss, "attribute_editing_accuracy": acc, "ssim": 0.95,
                  "gap_closed": gap} for loss, acc, gap in
                 (("none", 0.9, 0.4), ("none", 1.0, 0.6), ("sde", 1.0, 0.7))]
    panels = dict(sweep._group_panels(synthetic, "mask_loss", ["none", "sde"]))
    assert list(panels) == ["attribute-editing accuracy", "gap to the truth closed",
                            "SSIM(input, output)"]
    assert panels["gap to the truth closed"]["none"] == pytest.approx((0.5, 0.1))
    assert panels["gap to the truth closed"]["sde"] == pytest.approx((0.7, 0.0))
    # Real faces have no counterparts: their runs carry no gap, or NaN, and the panel goes.
    real = [{**r, "gap_closed": float("nan")} for r in synthetic[:2]]
    real.append({k: v for k, v in synthetic[2].items() if k != "gap_closed"})
    assert [t for t, _ in sweep._group_panels(real, "mask_loss", ["none", "sde"])] == [
        "attribute-editing accuracy", "SSIM(input, output)"]
