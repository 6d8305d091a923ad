"""The paper's experiment: 4 structures x 4 mask losses x S seeds, one judge, one report.

    python main.py --mode=sweep --config=configs/sweep_synthetic.py --workdir=runs/sweep --seeds=3

Lays out <workdir>/judge (trained once) and <workdir>/runs/<structure>_<loss>_s<seed>/, each
an ordinary training workdir, then writes <workdir>/report.md, results.csv and figures like
the paper's Figs 6-8 plus a Figs 3-5 sample sheet. A finished run (eval/metrics.json at its
last step) is skipped, an unfinished one resumes from its checkpoint: run the same command
again after a crash (add --report_only to report the runs finished so far). Several processes
may share one sweep folder (the same command started once per core, with
--config.cpu_devices=1): each trains the next run no other process holds, and the one that
finishes last writes the report. The report's verdicts on the paper's claims and its
learning-curve figure are in sweep_claims.py.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from msagan_jax import config_lib, console, errors, evaluate, experiment
from msagan_jax import input_pipeline, losses, models, parallel, sweep_claims, train, visualize

STRUCTURES = tuple(models.STRUCTURES)  # e2d2, e2d1, e1d2, e1d1
MASK_LOSSES = tuple(losses.MASK_LOSSES)  # none, mae, mse, sde
CSV_FIELDS = ("structure", "mask_loss", "seed", "step", *evaluate.METRICS,
              "seconds_per_epoch", "images_per_s")
# The "every run" table of the report: its columns, from evaluate.METRICS.
REPORT_COLUMNS = ("attribute_editing_accuracy", "ssim", "gap_closed_to_1", "gap_closed_to_0",
                  "identity_l1", "mask_guide_coverage", "mask_guide_iou", "mask_outside_area",
                  "collapsed", "seconds_per_epoch")


def run_name(structure: str, mask_loss: str, seed: int) -> str:
    return f"{structure}_{mask_loss}_s{seed}"


def run_config(base: ml_collections.ConfigDict, structure: str, mask_loss: str, seed: int,
               judge_dir: pathlib.Path) -> ml_collections.ConfigDict:
    """The base config with one paper model and seed, judged by the sweep's judge."""
    config = copy.deepcopy(base)
    config.update(what_to_train="editor", structure=structure, mask_loss=mask_loss, seed=seed,
                  evaluate=True)
    config.judge.workdir = os.fspath(judge_dir)
    return config


def _finished(run_dir: pathlib.Path, num_steps: int) -> dict | None:
    try:
        metrics = json.loads((run_dir / evaluate.EVAL_DIR / "metrics.json").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return metrics if metrics.get("step") == num_steps else None


def plan_runs(seeds: Sequence[int], structures: Sequence[str],
              mask_losses: Sequence[str]) -> list[tuple[str, str, int]]:
    """Every (structure, mask loss, seed), a seed at a time, in diagonals of the structure x
    loss grid: the first 4 runs of a seed hold each structure and each loss once, so a sweep
    cut short (it takes hours on a CPU) already reports on every factor."""
    n = max(len(structures), len(mask_losses))
    order = sorted(((i, j) for i in range(len(structures)) for j in range(len(mask_losses))),
                   key=lambda ij: ((ij[1] - ij[0]) % n, ij[0]))
    return [(structures[i], mask_losses[j], seed) for seed in seeds for i, j in order]


def run_sweep(base: ml_collections.ConfigDict, workdir: os.PathLike, seeds: Sequence[int],
              structures: Sequence[str] = STRUCTURES, mask_losses: Sequence[str] = MASK_LOSSES,
              report_only: bool = False) -> list[dict[str, Any]] | None:
    """Trains and evaluates every (structure, mask loss, seed), then writes the report.
    Returns the runs' metrics, or None when a signal stopped it (run again to resume); runs
    that another process is still training are left out, and then the report is theirs.
    report_only: train nothing; report the runs finished so far (a sweep still under way)."""
    workdir = pathlib.Path(workdir).absolute()
    judge_dir = workdir / "judge"
    plan = plan_runs(seeds, structures, mask_losses)
    if not plan:
        raise errors.ConfigError("the sweep has no run: give at least one structure, mask "
                                 "loss and seed")
    configs = [run_config(base, s, m, seed, judge_dir) for s, m, seed in plan]
    parallel.use_cpu_cores(base.cpu_devices, config_lib.batch_sizes(base))
    for config in configs:
        config_lib.validate(config)
    if not jax.config.jax_compilation_cache_dir:
        # The seeds of a model compile the same programs: compile them once.
        jax.config.update("jax_compilation_cache_dir", os.fspath(workdir / "jax_cache"))
    info = input_pipeline.prepare(base)
    num_steps = train.num_train_steps(base, info.splits["train"].num_examples)
    if report_only:
        return _report_finished(workdir, plan, num_steps, base)
    judged = _judge_once(configs[0], workdir / "runs")
    if judged is not None and not judged.finished:
        return None
    run_dirs = [workdir / "runs" / run_name(*planned) for planned in plan]
    for i, (config, run_dir) in enumerate(zip(configs, run_dirs)):
        step = f"sweep {i + 1}/{len(plan)}: {run_dir.name}"
        if _finished(run_dir, num_steps) is not None:
            console.say(f"{step} is done")
            continue
        console.say(step)
        try:
            result = experiment.train_and_evaluate(config, run_dir)
        except errors.RunInUseError:  # another sweep process on this folder is training it
            console.say(f"{step} is training in another process; on to the next")
            continue
        if not result.finished:
            logging.warning("sweep stopped in %s; run the same command to resume", run_dir)
            return None
    # Read back, not kept: runs that other processes trained count too.
    results = [_finished(run_dir, num_steps) for run_dir in run_dirs]
    if any(metrics is None for metrics in results):
        busy = [d.name for d, m in zip(run_dirs, results) if m is None]
        console.say(f"{len(busy)} run(s) still training in another process ({', '.join(busy)});"
                    " the sweep process that finishes last writes the report")
        return [metrics for metrics in results if metrics is not None]
    write_report(workdir, results, base)
    return results


def _judge_once(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                poll_s: float = 10.0) -> Any:
    """experiment.ensure_judge, waiting while another sweep process trains the judge."""
    waiting = False
    while True:
        try:
            return experiment.ensure_judge(config, workdir)
        except errors.RunInUseError:
            if not waiting:
                console.say("another process is training the sweep's judge; waiting for it")
                waiting = True
            time.sleep(poll_s)


def _report_finished(workdir: pathlib.Path, plan: list[tuple[str, str, int]], num_steps: int,
                     base: ml_collections.ConfigDict) -> list[dict[str, Any]]:
    """The report of the runs in `plan` that have finished (--report_only)."""
    results = [metrics for structure, loss, seed in plan if (metrics := _finished(
        workdir / "runs" / run_name(structure, loss, seed), num_steps))]
    if not results:
        raise errors.InputError(f"{workdir}: no finished run to report yet")
    path = write_report(workdir, results, base, planned=len(plan))
    console.say(f"{len(results)} of {len(plan)} runs finished: {path}")
    return results


# --- The report ------------------------------------------------------------------------------

def _group(results: list[dict], key: str, value: str, order: Sequence[str]):
    """{group: (mean, std)} of `value` over the runs of each `key` (e.g. mask_loss)."""
    return {g: sweep_claims.mean_std([r.get(value) for r in results if r[key] == g]) for g in order
            if any(r[key] == g for r in results)}


def write_csv(path: pathlib.Path, results: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)


def _bar_figure(path: pathlib.Path, groups: list[str], panels: list[tuple[str, dict]],
                title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (label, stats) in zip(axes[0], panels):
        means = [stats.get(g, (np.nan, 0))[0] for g in groups]
        stds = [stats.get(g, (0, np.nan))[1] for g in groups]
        ax.bar(groups, means, yerr=stds, capsize=4, color="#4c72b0")
        ax.set_title(label)
        finite = [m for m in means if not math.isnan(m)]
        if finite and label.startswith("SSIM"):
            ax.set_ylim(max(0.0, min(finite) - 0.05), 1.0)
        for x, m in enumerate(means):
            if not math.isnan(m):
                ax.text(x, m, f"{m:.3g}", ha="center", va="bottom", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _sample_sheet(workdir: pathlib.Path, results: list[dict], base: ml_collections.ConfigDict,
                  faces: int = 4) -> pathlib.Path | None:
    """Figs 3-5: for the first seed's runs, the top `faces` rows of each run's own evaluation
    grid (eval/samples.png: the same first faces of the split for every run), stacked with a
    label strip. Read from the grids, not the checkpoints, so a sweep folder that keeps only
    its runs' results (as results/sweep_synthetic in this repository does) still reports."""
    from PIL import Image, ImageDraw

    seed = results[0]["seed"]
    size, gap = base.image_size, visualize.GAP  # the layout of eval/samples.png
    rows = []
    for r in results:
        grid_path = (workdir / "runs" / run_name(r["structure"], r["mask_loss"], seed)
                     / evaluate.EVAL_DIR / "samples.png")
        if r["seed"] != seed or not grid_path.exists():
            continue
        grid = np.asarray(Image.open(grid_path).convert("RGB"))
        grid = grid[:min(len(grid), faces * (size + gap) - gap)]
        label = Image.new("RGB", (grid.shape[1], 14), "white")
        ImageDraw.Draw(label).text(
            (2, 1), f"{r['structure'].upper()} + {r['mask_loss']}: input | G(I,0) G(I,1) | "
                    f"b(0) b(1) | I_a(0) I_a(1)", fill="black")
        rows += [np.asarray(label), grid, np.full((6, grid.shape[1], 3), 255, np.uint8)]
    if not rows:
        return None
    return visualize.save_png(np.concatenate(rows), workdir / "sample_sheet.png")


def _every_run_table(results: list[dict]) -> list[str]:
    """The report's table of every run, its columns from evaluate's one metric table."""
    table = {**evaluate.METRICS, **evaluate.RUN_FIELDS}
    heads = ["structure", "mask loss", "seed"] + [table[c].short for c in REPORT_COLUMNS]
    lines = ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
    for r in results:
        cells = [r["structure"].upper(), r["mask_loss"], str(r["seed"])]
        for name in REPORT_COLUMNS:
            value = r.get(name)
            cells.append("n/a" if value is None or value != value else
                         table[name].fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# The metrics of Figs 6 and 7; a panel no run measured is left out (the gap to the truth needs
# counterparts, which only the synthetic faces have).
GROUP_PANELS = ("attribute_editing_accuracy", "gap_closed", "ssim")


def _group_panels(results: list[dict], key: str, order: Sequence[str]) -> list[tuple[str, dict]]:
    """(label, {group: (mean, std)}) by `key` for GROUP_PANELS, without the unmeasured ones."""
    panels = [(evaluate.METRICS[field].label, _group(results, key, field, order))
              for field in GROUP_PANELS]
    return [(t, g) for t, g in panels if any(not math.isnan(m) for m, _ in g.values())]


def _figures(workdir: pathlib.Path, results: list[dict], losses_: list[str],
             structures: list[str], seeds: list[int]) -> None:
    """fig6_by_mask_loss.png, fig7_by_structure.png and fig8_time_per_epoch.png."""
    time_by = {s: _group([r for r in results if r["structure"] == s], "mask_loss",
                         "seconds_per_epoch", losses_) for s in structures}
    _bar_figure(workdir / "fig6_by_mask_loss.png", losses_,
                _group_panels(results, "mask_loss", losses_),
                f"By mask loss (mean ± std over structures and {len(seeds)} seed(s))")
    _bar_figure(workdir / "fig7_by_structure.png", structures,
                _group_panels(results, "structure", structures),
                f"By structure (mean ± std over mask losses and {len(seeds)} seed(s))")
    _bar_figure(workdir / "fig8_time_per_epoch.png", losses_,
                [(f"{s.upper()}: s per epoch", time_by[s]) for s in structures],
                "Training time per epoch of the train split")


# The group tables' columns: (metric, shown as a percentage).
GROUP_COLUMNS = (("attribute_editing_accuracy", True), ("gap_closed", True),
                 ("gap_closed_to_1", True), ("gap_closed_to_0", True), ("ssim", False))


def _group_row(name: str, runs: list[dict], extra: str = "") -> str:
    cells = [sweep_claims.fmt(*sweep_claims.mean_std([r.get(m) for r in runs]), percent)
             for m, percent in GROUP_COLUMNS]
    return (f"| {name} | " + " | ".join(cells)
            + f" | {sum(r['collapsed'] for r in runs)} of {len(runs)} |{extra}")


def _group_tables(results: list[dict], losses_: list[str],
                  structures: list[str]) -> list[str]:
    """The report's tables by mask loss (Fig. 6) and by structure (Fig. 7): each metric's
    mean ± std over the group's runs, the gap closed also by direction (opening the mouth is
    edited to 1)."""
    heads = ("attribute-editing accuracy | gap to the truth closed | gap closed, edited to 1 | "
             "gap closed, edited to 0 | SSIM | collapsed runs |")
    lines = ["## By mask loss (paper Fig. 6: no mask 66%, MAE 80%, MSE 79%, SDE 86%)", "",
             f"| mask loss | {heads}", "| --- " * 7 + "|"]
    lines += [_group_row(m, [r for r in results if r["mask_loss"] == m]) for m in losses_]
    lines += ["", "## By structure (paper Fig. 7: E2D2 81%, E2D1 62%, E1D2 84%, E1D1 85%)", "",
              f"| structure | {heads} s per epoch |", "| --- " * 8 + "|"]
    for s in structures:
        runs = [r for r in results if r["structure"] == s]
        t = sweep_claims.mean_std([r.get("seconds_per_epoch") for r in runs])
        lines.append(_group_row(s.upper(), runs, f" {t[0]:.1f} ± {t[1]:.1f} |"))
    return lines


def write_report(workdir: os.PathLike, results: list[dict], base: ml_collections.ConfigDict,
                 planned: int | None = None) -> pathlib.Path:
    """report.md, results.csv, fig6_by_mask_loss.png, fig7_by_structure.png,
    fig8_time_per_epoch.png, fig_learning_curves.png and sample_sheet.png in `workdir`;
    `planned` (more than len(results)): the report of a sweep still under way."""
    workdir = pathlib.Path(workdir)
    results = sorted(results, key=lambda r: (r["seed"], STRUCTURES.index(r["structure"]),
                                             MASK_LOSSES.index(r["mask_loss"])))
    write_csv(workdir / "results.csv", results)
    losses_ = [m for m in MASK_LOSSES if any(r["mask_loss"] == m for r in results)]
    structures = [s for s in STRUCTURES if any(r["structure"] == s for r in results)]
    seeds = sorted({r["seed"] for r in results})
    _figures(workdir, results, losses_, structures, seeds)
    curves = {(r["structure"], r["mask_loss"], r["seed"]): sweep_claims.read_curve(
        workdir / "runs" / run_name(r["structure"], r["mask_loss"], r["seed"])) for r in results}
    curve_fig = sweep_claims.curve_figure(workdir / "fig_learning_curves.png", curves,
                                          structures, losses_)
    sheet = _sample_sheet(workdir, results, base)

    judge = json.loads((workdir / "judge" / "results.json").read_text())
    depth = judge.get("judge_depth", judge.get("classifier_depth"))  # older judges: classifier_
    device = next((r.get("device") for r in results if r.get("device")), "unknown")
    collapsed = [run_name(r["structure"], r["mask_loss"], r["seed"]) for r in results
                 if r["collapsed"]]
    lines = [
        "# Sweep report", "",
        f"Dataset `{base.dataset}`, attribute `{base.attribute}`, {len(seeds)} seed(s) "
        f"({', '.join(map(str, seeds))}), {results[0]['examples']} {base.eval_split} faces "
        f"each edited to the opposite value. Judge: ResNet-{depth}, test "
        f"accuracy {judge.get('test_accuracy', float('nan')):.2%}. Training device: {device}.",
        *(["", f"**Partial: {len(results)} of the {planned} planned runs have finished.**"]
          if planned and planned > len(results) else []),
        "", *sweep_claims.verdict_lines(results, losses_, structures),
        "", *_group_tables(results, losses_, structures),
        "", "## Every run", "", *_every_run_table(results),
        "", f"Collapsed runs (mean mask inside the guide < {base.collapse_threshold}): "
        f"{', '.join(collapsed) if collapsed else 'none'}.", "",
        "Figures: fig6_by_mask_loss.png, fig7_by_structure.png, fig8_time_per_epoch.png"
        + (", fig_learning_curves.png (validation during training)" if curve_fig else "")
        + (", sample_sheet.png (paper Figs 3-5)." if sheet else "."), ""]
    path = workdir / "report.md"
    path.write_text("\n".join(lines))
    return path
