"""The paper's metrics (METHOD.md section 4) and the mask's: an evaluator, big_vision style.

    evaluator = Evaluator(config, judge, split="test")
    for name, value in evaluator.run(g_params): ...

Every face of the split (or of its first `num_examples`) is edited to the opposite of its
label, c' = 1 - c, and scored; METRICS below names each metric once, for the markdown table,
the training curve's CSV, TensorBoard and the sweep's report. Ratios are pooled over all
pixels of the split. Where the split stores each face's true counterpart (the synthetic
faces' validation and test splits: the same face drawn with the attribute flipped), the edit
is also measured against the truth: the share of the input-to-truth gap it closes, L1, PSNR
and SSIM, by direction; elsewhere those are NaN. The training loop runs an Evaluator on a
fixed validation subset every eval_every iterations (`training_hook`); `evaluate_run` scores a
finished run on eval_split and writes <workdir>/eval/ (metrics.json, metrics.md, samples.png,
truth.png) and TensorBoard eval/*.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
from collections.abc import Iterator
from typing import Any, Callable

import dm_pix
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from msagan_jax import console, editor as editor_lib, errors, input_pipeline, judge_lib, loop
from msagan_jax import models, parallel, visualize

EVAL_DIR = "eval"
CURVE_FILE = "eval_curve.csv"
TIMING_FILE = "timing.json"


@dataclasses.dataclass(frozen=True)
class Metric:
    label: str  # in tables
    fmt: str  # how a value prints
    short: str  # a report column's heading
    doc: str


# The one table of metric names: the evaluator computes these, in this order.
METRICS = {
    "attribute_editing_accuracy": Metric(
        "attribute-editing accuracy", "{:.2%}", "accuracy",
        "the judge sees c' in G(I, c') (paper: Figs 6-7)"),
    "accuracy_to_0": Metric("accuracy, edited to 0", "{:.2%}", "to 0",
                            "the same, over the faces edited to 0"),
    "accuracy_to_1": Metric("accuracy, edited to 1", "{:.2%}", "to 1",
                            "the same, over the faces edited to 1"),
    "ssim": Metric("SSIM(input, output)", "{:.4f}", "SSIM",
                   "SSIM(I, G(I, c')), dm-pix, images in [0, 1] (paper: ~0.99)"),
    "identity_l1": Metric("identity-path L1 error", "{:.4f}", "identity L1",
                          "mean |G(I, c) - I|, pixels in [-1, 1]"),
    "mask_guide_coverage": Metric("guide coverage (b > 0.5)", "{:.3f}", "guide coverage",
                                  "share of guide-mask pixels with b > 0.5"),
    "mask_guide_iou": Metric("IoU(b > 0.5, guide)", "{:.3f}", "IoU",
                             "IoU of {b > 0.5} and the guide mask"),
    "mask_outside_area": Metric("area outside guide with b > 0.5", "{:.4f}", "outside area",
                                "share of the pixels outside the guide mask with b > 0.5"),
    "mask_guide_mean": Metric("mean b inside guide", "{:.3f}", "b in guide",
                              "mean of b inside the guide mask"),
    "mask_mean": Metric("mean b", "{:.3f}", "mean b", "mean of b over the image"),
    "collapsed": Metric("mask collapsed", "{}", "collapsed",
                        "mask_guide_mean (mask_mean without a guide) < collapse_threshold"),
    "judge_accuracy_on_inputs": Metric("judge accuracy on the inputs", "{:.2%}",
                                       "judge on inputs", "the judge's own error rate"),
    "gap_closed": Metric("gap to the truth closed", "{:.1%}", "gap closed",
                         "1 - sum|G(I, c') - T| / sum|I - T|, T the true counterpart: 0 for "
                         "an editor that does nothing, 1 for a perfect one"),
    **{name: metric for d in ("0", "1") for name, metric in (
        (f"gap_closed_to_{d}", Metric(f"gap closed, edited to {d}", "{:.1%}",
                                      f"gap closed to {d}", f"the same, faces edited to {d}")),
        (f"truth_l1_to_{d}", Metric(f"L1 to the truth, edited to {d}", "{:.4f}",
                                    f"truth L1 to {d}", "mean |G(I, c') - T|, pixels in [0, 1]")),
        (f"truth_l1_region_to_{d}", Metric(
            f"L1 to the truth where I != T, edited to {d}", "{:.4f}",
            f"region L1 to {d}", "the same, over the pixels where I and T differ")),
        (f"truth_psnr_to_{d}", Metric(f"PSNR to the truth, edited to {d}", "{:.2f}",
                                      f"truth PSNR to {d}",
                                      "dB, from the mean squared error, pixels in [0, 1]")),
        (f"truth_psnr_region_to_{d}", Metric(
            f"PSNR to the truth where I != T, edited to {d}", "{:.2f}", f"region PSNR to {d}",
            "the same, over the pixels where I and T differ")),
        (f"truth_ssim_to_{d}", Metric(f"SSIM(output, truth), edited to {d}", "{:.4f}",
                                      f"truth SSIM to {d}", "dm-pix, images in [0, 1]")),
    )},
}
# Reported beside the metrics, from the run rather than the evaluator.
RUN_FIELDS = {
    "seconds_per_epoch": Metric("seconds per epoch (training)", "{:.1f}", "s per epoch",
                                "timing.json (paper Fig. 8)"),
    "examples": Metric("faces", "{}", "faces", "faces evaluated"),
    "edit_condition": Metric("c given to edit toward 0 / 1", "{0[0]:g} / {0[1]:g}", "c",
                             "config edit_condition_to_0 / _to_1 (the paper's: 0 / 1)"),
}
_TRUTH_SUMS = ("truth_n", "gap_l1", "err_l1", "err_sq", "region", "region_l1", "region_sq",
               "truth_ssim")
_SUMS = ("n", "n_to_0", "n_to_1", "correct_to_0", "correct_to_1", "ssim", "identity_l1",
         "guide", "covered", "union", "outside", "outside_on", "guide_b", "b", "pixels",
         "judge_inputs") + tuple(f"{k}_to_{d}" for d in "01" for k in _TRUTH_SUMS)
# A pixel belongs to the region where input and truth differ when a channel differs by more
# than this ([0, 1] scale): above the JPEG-and-resize noise of two separately stored images.
REGION_TOLERANCE = 0.05


def differ_region(x: Any, t: Any) -> Any:
    """Where input `x` and truth `t` ([0, 1] images, numpy or jax, (..., C)) differ: a
    channel apart by more than REGION_TOLERANCE; boolean, (...) (the channel axis dropped)."""
    return abs(x - t).max(axis=-1) > REGION_TOLERANCE


def truth_sums(image: jax.Array, edited: jax.Array, truth: jax.Array,
               weight: jax.Array, target: jax.Array) -> dict[str, jax.Array]:
    """Per-face sums for the metrics against the true counterpart, by direction; `weight` is 0
    for padding and for faces without a counterpart. Images in [-1, 1]."""
    x, e, t = ((a + 1) / 2 for a in (image, edited, truth))
    mean = lambda a: jnp.mean(a, axis=(1, 2, 3))  # noqa: E731
    region = differ_region(x, t)[..., None].astype(jnp.float32)
    per_pixel = lambda a: jnp.sum(jnp.mean(a, axis=-1, keepdims=True) * region,  # noqa: E731
                                  axis=(1, 2, 3))
    values = {"truth_n": jnp.ones_like(weight), "gap_l1": mean(jnp.abs(x - t)),
              "err_l1": mean(jnp.abs(e - t)), "err_sq": mean((e - t) ** 2),
              "region": jnp.sum(region, axis=(1, 2, 3)), "region_l1": per_pixel(jnp.abs(e - t)),
              "region_sq": per_pixel((e - t) ** 2), "truth_ssim": dm_pix.ssim(e, t)}
    return {f"{k}_to_{d}": weight * (target if d == "1" else 1 - target) * v
            for d in "01" for k, v in values.items()}


def make_metric_sums(config: ml_collections.ConfigDict, judge: judge_lib.Classifier,
                     has_mask: bool, has_truth: bool = False):
    """A jitted (g_params, judge_variables, batch) -> sums of the metrics' numerators and
    denominators over the batch's real (weight 1) examples, for the generator of `config`
    (editing with its models.edit_condition)."""
    generator, _ = models.create_models(config)
    judge_apply = judge.apply_fn()

    @jax.jit
    def sums(g_params, judge_variables, batch):
        image, label, w = batch["image"], batch["label"], batch["weight"]
        target = 1.0 - label
        c = models.edit_condition(config, target)
        outputs, _, masks = generator.apply(g_params, image, jnp.stack([c, label]))
        edited, identity, b = outputs[0], outputs[1], masks[0]
        judged = judge_apply(judge_variables, edited) > 0
        correct = (judged == (target > 0.5)).astype(jnp.float32)
        on = (b > 0.5).astype(jnp.float32)
        per_pixel = lambda x: jnp.sum(x, axis=(1, 2, 3))  # noqa: E731
        guide = batch["mask"] if has_mask else jnp.zeros_like(b)
        values = {
            "n": w, "n_to_0": w * (1 - target), "n_to_1": w * target,
            "correct_to_0": w * correct * (1 - target), "correct_to_1": w * correct * target,
            "ssim": w * dm_pix.ssim((image + 1) / 2, (edited + 1) / 2),
            "identity_l1": w * jnp.mean(jnp.abs(identity - image), axis=(1, 2, 3)),
            "guide": w * per_pixel(guide), "covered": w * per_pixel(on * guide),
            "union": w * per_pixel(jnp.maximum(on, guide)),
            "outside": w * per_pixel(1 - guide), "outside_on": w * per_pixel(on * (1 - guide)),
            "guide_b": w * per_pixel(b * guide), "b": w * per_pixel(b),
            "pixels": w * b[0].size,
            "judge_inputs": w * ((judge_apply(judge_variables, image) > 0) == (label > 0.5)),
        }
        if has_truth:
            values.update(truth_sums(image, edited, batch["counterpart"],
                                     w * batch["has_counterpart"], target))
        return {k: jnp.sum(v) for k, v in values.items()}

    return sums


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def _psnr(squared_error: float, count: float) -> float:
    mse = _ratio(squared_error, count)
    return float(-10 * np.log10(mse)) if mse > 0 else float("nan" if np.isnan(mse) else "inf")


def _truth_metrics(t: dict[str, float]) -> dict[str, float]:
    """The metrics against the true counterpart, from the sums (NaN where there was none)."""
    out = {"gap_closed": 1 - _ratio(t["err_l1_to_0"] + t["err_l1_to_1"],
                                    t["gap_l1_to_0"] + t["gap_l1_to_1"])}
    for d in "01":
        s = {k: t[f"{k}_to_{d}"] for k in _TRUTH_SUMS}
        out.update({
            f"gap_closed_to_{d}": 1 - _ratio(s["err_l1"], s["gap_l1"]),
            f"truth_l1_to_{d}": _ratio(s["err_l1"], s["truth_n"]),
            f"truth_l1_region_to_{d}": _ratio(s["region_l1"], s["region"]),
            f"truth_psnr_to_{d}": _psnr(s["err_sq"], s["truth_n"]),
            f"truth_psnr_region_to_{d}": _psnr(s["region_sq"], s["region"]),
            f"truth_ssim_to_{d}": _ratio(s["truth_ssim"], s["truth_n"]),
        })
    return out


def _metrics(t: dict[str, float], has_mask: bool, collapse_threshold: float) -> dict[str, Any]:
    """The METRICS from the split's sums."""
    nan = float("nan")
    guide_mean = _ratio(t["guide_b"], t["guide"]) if has_mask else nan
    mask_mean = _ratio(t["b"], t["pixels"])
    return {
        "attribute_editing_accuracy": _ratio(t["correct_to_0"] + t["correct_to_1"], t["n"]),
        "accuracy_to_0": _ratio(t["correct_to_0"], t["n_to_0"]),
        "accuracy_to_1": _ratio(t["correct_to_1"], t["n_to_1"]),
        "ssim": _ratio(t["ssim"], t["n"]),
        "identity_l1": _ratio(t["identity_l1"], t["n"]),
        "mask_guide_coverage": _ratio(t["covered"], t["guide"]) if has_mask else nan,
        "mask_guide_iou": _ratio(t["covered"], t["union"]) if has_mask else nan,
        "mask_outside_area": _ratio(t["outside_on"], t["outside"]),
        "mask_guide_mean": guide_mean,
        "mask_mean": mask_mean,
        "collapsed": bool((guide_mean if has_mask else mask_mean) < collapse_threshold),
        "judge_accuracy_on_inputs": _ratio(t["judge_inputs"], t["n"]),
        **_truth_metrics(t),
    }


class Evaluator:
    """The METRICS of an editor of `config` over `split`, or its first `num_examples` faces,
    scored by `judge`. `run(g_params)` yields (name, value) in METRICS order, then
    ("examples", n)."""

    def __init__(self, config: ml_collections.ConfigDict, judge: judge_lib.Classifier, *,
                 split: str, num_examples: int | None = None, batch_size: int | None = None,
                 cache: bool = False):
        self.config, self.judge, self.split = config, judge, split
        self.task = input_pipeline.task_from_config(config)
        self.has_mask = self.task.mask_name is not None
        self.batch_size = batch_size or config.eval_batch_size
        self.mesh = parallel.create_mesh()
        source = input_pipeline.data_source(self.task, split, counterparts=True)
        self.has_truth = source.has_counterparts
        self._sums = make_metric_sums(config, judge, self.has_mask, self.has_truth)
        if num_examples is not None:
            source = input_pipeline.head(source, num_examples)
        self.source = source
        self._batches = [] if cache else None  # a fixed subset is read once, then kept

    def _device_batches(self) -> Iterator[dict[str, jax.Array]]:
        if self._batches:
            yield from self._batches
            return
        keys = ("image", "label", "weight") + (("mask",) if self.has_mask else ()) + (
            ("counterpart", "has_counterpart") if self.has_truth else ())
        for batch in input_pipeline.padded_eval_batches(self.task, batch_size=self.batch_size,
                                                        split=self.split, source=self.source):
            batch = parallel.global_batch({k: batch[k] for k in keys}, self.mesh)
            if self._batches is not None:
                self._batches.append(batch)
            yield batch

    def run(self, g_params: Any) -> Iterator[tuple[str, Any]]:
        totals = dict.fromkeys(_SUMS, 0.0)
        for batch in self._device_batches():
            for k, v in jax.device_get(self._sums(g_params, self.judge.variables,
                                                  batch)).items():
                totals[k] += float(v)
        if not totals["n"]:
            raise errors.InputError(f"split {self.split!r} of {self.task.dataset} is empty")
        yield from _metrics(totals, self.has_mask, self.config.collapse_threshold).items()
        yield "examples", int(totals["n"])


def evaluate(ed: editor_lib.Editor, judge: judge_lib.Classifier | None = None, *,
             split: str | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """The metrics of `ed` over every face of `split` (default: its config's eval_split)."""
    judge = judge or ed.judge
    split = split or ed.config.eval_split
    evaluator = Evaluator(ed.config, judge, split=split, batch_size=batch_size)
    return {"split": split, "step": ed.step, **dict(evaluator.run(ed.g_params))}


def markdown_table(metrics: dict[str, Any], title: str = "") -> str:
    """The metrics as a two-column markdown table."""
    lines = [f"# {title}\n" if title else "", "| metric | value |", "| --- | --- |"]
    for name, metric in {**METRICS, **RUN_FIELDS}.items():
        if metrics.get(name) is not None:
            value = metrics[name]
            text = "n/a" if isinstance(value, float) and np.isnan(value) else \
                metric.fmt.format(value)
            lines.append(f"| {metric.label} | {text} |")
    return "\n".join(line for line in lines if line) + "\n"


def summary(metrics: dict[str, Any]) -> str:
    """One line: accuracy, SSIM, guide coverage, and the gap to the truth closed each way."""
    parts = [f"{METRICS[name].short} {METRICS[name].fmt.format(metrics[name])}"
             for name in ("attribute_editing_accuracy", "ssim", "mask_guide_coverage",
                          "gap_closed_to_1", "gap_closed_to_0")
             if isinstance(metrics.get(name), float) and not np.isnan(metrics[name])]
    return ", ".join(parts) + (" (mask collapsed)" if metrics.get("collapsed") else "")


def training_hook(config: ml_collections.ConfigDict, judge: judge_lib.Classifier,
                  workdir: os.PathLike,
                  g_params_of: Callable[[Any], Any] = lambda state: state.g_params) -> loop.Hook:
    """The learning curve: every eval_every iterations, the metrics of the first eval_examples
    validation faces, to TensorBoard (eval_val/*), <workdir>/eval_curve.csv and the console.
    `g_params_of(state)`: the G weights to score (train.generator_params: the average, if kept)."""
    evaluator = Evaluator(config, judge, split="validation", num_examples=config.eval_examples,
                          cache=True)
    path = pathlib.Path(workdir) / CURVE_FILE

    def run(step: int, state: Any, writer: loop.Writer) -> None:
        metrics = dict(evaluator.run(g_params_of(state)))
        writer.scalars(step, {f"eval_val/{k}": float(v) for k, v in metrics.items()})
        if jax.process_index() == 0:
            append_curve(path, step, metrics)
            console.say(f"iteration {step}: validation {summary(metrics)}")

    return loop.Hook(config.eval_every, run)


def append_curve(path: pathlib.Path, step: int, metrics: dict[str, Any]) -> None:
    """One row of the learning curve's CSV (a resumed run appends; the last row of a step
    counts)."""
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, ("step", *METRICS, "examples"), extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({"step": step, **metrics})


def read_curve(path: os.PathLike) -> list[dict[str, float]]:
    """The learning curve's rows, by step, the last row of a step kept."""
    with open(path, newline="") as f:
        rows = {int(r["step"]): r for r in csv.DictReader(f)}
    return [{k: (float(v) if k != "collapsed" else v == "True") for k, v in r.items()}
            for _, r in sorted(rows.items())]


def _sample_faces(ed: editor_lib.Editor, split: str, n: int) -> np.ndarray:
    task = input_pipeline.task_from_config(ed.config)
    loader = input_pipeline.create_eval_loader(task, batch_size=n, split=split, shard_index=0,
                                               shard_count=1)
    return next(iter(loader))["image"]


def sample_sheet(ed: editor_lib.Editor, faces: np.ndarray) -> np.ndarray:
    """A Figs 3-5 grid of `faces` ([-1, 1]): input, G(I, c), b and I_a edited to 0 and 1."""
    n = len(faces)
    targets = np.concatenate([np.zeros(n, np.float32), np.ones(n, np.float32)])
    outputs, attribute_images, masks = ed.generate(np.concatenate([faces, faces]),
                                                    ed.condition(targets))
    split = lambda x: x.reshape((2, n) + x.shape[1:])  # noqa: E731
    return visualize.sample_grid(faces, split(outputs), split(masks), split(attribute_images))


def truth_sheet(ed: editor_lib.Editor, split: str, n: int = 4) -> np.ndarray | None:
    """Rows of input | edit | truth, for `n` faces edited to 1 and `n` edited to 0: the first
    of `split` with a true counterpart; None where the split stores none."""
    task = input_pipeline.task_from_config(ed.config)
    source = input_pipeline.data_source(task, split, counterparts=True)
    if not source.has_counterparts:
        return None
    picked: dict[float, list[dict[str, np.ndarray]]] = {0.0: [], 1.0: []}
    for i in range(len(source)):
        if min(len(v) for v in picked.values()) == n:
            break
        element = source[i]
        if element["has_counterpart"] and len(picked[float(element["label"])]) < n:
            picked[float(element["label"])].append(element)
    n = min(len(v) for v in picked.values())
    if not n:
        return None
    sides = []
    for label in (0.0, 1.0):  # faces with the attribute off are edited to 1
        faces = [input_pipeline.Scale().map(e) for e in picked[label][:n]]
        inputs = np.stack([f["image"] for f in faces])
        truths = np.stack([f["counterpart"] for f in faces])
        edits = ed.generate(inputs, ed.condition(np.full(n, 1 - label, np.float32)))[0]
        sides.append((inputs, edits, truths))
    return visualize.truth_grid(*sides)


def evaluate_run(workdir: os.PathLike, judge: judge_lib.Classifier | os.PathLike | None = None,
                 *, step: int | None = None, split: str | None = None,
                 condition: tuple[float, float] | None = None) -> dict[str, Any]:
    """Evaluates the editor in `workdir` with `judge` (default: the one its config names) and
    writes <workdir>/eval/metrics.json, metrics.md and samples.png, and TensorBoard scalars.
    `condition`: the c toward 0 and toward 1 (default: the run's edit_condition_to_0, _to_1)."""
    workdir = pathlib.Path(workdir)
    ed = editor_lib.load_editor(workdir, step=step, judge=judge)
    if condition is not None:
        ed = ed.with_condition(*condition)
    cfg = ed.config
    if ed.judge is None:
        where = judge_lib.judge_dir(cfg, workdir)
        raise errors.InputError(f"no trained judge in {where}: "
                                f"{judge_lib.how_to_train(cfg, where)}, or pass --judge=DIR")
    metrics = evaluate(ed, split=split)
    judge_results = judge_lib.read_results(ed.judge.workdir) or {}
    metrics.update(structure=cfg.structure, mask_loss=cfg.mask_loss, seed=cfg.seed,
                   edit_condition=[cfg.edit_condition_to_0, cfg.edit_condition_to_1],
                   attribute=cfg.attribute, dataset=cfg.dataset,
                   judge=os.fspath(ed.judge.workdir),
                   judge_test_accuracy=judge_results.get("test_accuracy"))
    try:
        timing = json.loads((workdir / TIMING_FILE).read_text())
        metrics.update({k: timing.get(k) for k in ("seconds_per_epoch", "images_per_s",
                                                   "device")})
    except FileNotFoundError:
        pass
    if jax.process_index() == 0:
        _write_eval(workdir, ed, metrics)
    logging.info("evaluation of %s: %s", workdir, metrics)
    console.say(f"{metrics['split']} split, {metrics['examples']} faces: {summary(metrics)}; "
                f"{workdir / EVAL_DIR / 'metrics.md'}")
    return metrics


def _write_eval(workdir: pathlib.Path, ed: editor_lib.Editor, metrics: dict[str, Any]) -> None:
    cfg = ed.config
    out = workdir / EVAL_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    title = f"{cfg.structure.upper()} + {cfg.mask_loss}, seed {cfg.seed}: " \
            f"{metrics['split']} split, step {ed.step}"
    (out / "metrics.md").write_text(markdown_table(metrics, title))
    grid = sample_sheet(ed, _sample_faces(ed, metrics["split"], min(8, metrics["examples"])))
    visualize.save_png(grid, out / "samples.png")
    truth = truth_sheet(ed, metrics["split"])
    if truth is not None:
        visualize.save_png(truth, out / "truth.png")
    writer = loop.Writer(workdir)
    writer.scalars(ed.step or 0, {f"eval/{k}": float(metrics[k])
                                  for k in (*METRICS, "seconds_per_epoch")
                                  if isinstance(metrics.get(k), (int, float))})
    writer.text(ed.step or 0, "eval/metrics", markdown_table(metrics))
    writer.close()
