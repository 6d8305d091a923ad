"""The paper's metrics (METHOD.md section 4) and the mask's, over a whole split.

Every face of the split is edited to the opposite of its label, c' = 1 - c, and scored:

    attribute_editing_accuracy  the judge (classifier.py) sees c' in G(I, c')   (paper: Figs 6-7)
    accuracy_to_0 / _to_1       the same, for the faces edited to 0 and to 1 separately
    ssim                        SSIM(I, G(I, c')), dm-pix, images in [0, 1]     (paper: ~0.99)
    identity_l1                 mean |G(I, c) - I|, pixel values in [-1, 1]: the identity path
    mask_guide_coverage         share of guide-mask pixels with b > 0.5
    mask_guide_iou              IoU of {b > 0.5} and the guide mask
    mask_outside_area           share of the pixels outside the guide mask with b > 0.5
    mask_guide_mean, mask_mean  mean of b inside the guide mask, and over the image
    collapsed                   mask_guide_mean < collapse_threshold: the editor returns its
                                input (the paper's failure; without a guide mask: mask_mean)
    judge_accuracy_on_inputs    the judge's accuracy on the unedited faces (its own error rate)

Ratios are pooled over all pixels of the split. `evaluate_run` writes <workdir>/eval/
metrics.json, metrics.md, a sample grid, and eval/* scalars to TensorBoard; timing.json's time
per epoch (the paper's Fig. 8) is copied in.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import dm_pix
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from msagan_jax import classifier, editor as editor_lib, input_pipeline, loop, parallel
from msagan_jax import train, visualize

EVAL_DIR = "eval"
# name -> (table label, format)
TABLE = {
    "attribute_editing_accuracy": ("attribute-editing accuracy", "{:.2%}"),
    "accuracy_to_0": ("accuracy, edited to 0", "{:.2%}"),
    "accuracy_to_1": ("accuracy, edited to 1", "{:.2%}"),
    "ssim": ("SSIM(input, output)", "{:.4f}"),
    "identity_l1": ("identity-path L1 error", "{:.4f}"),
    "mask_guide_coverage": ("guide coverage (b > 0.5)", "{:.3f}"),
    "mask_guide_iou": ("IoU(b > 0.5, guide)", "{:.3f}"),
    "mask_outside_area": ("area outside guide with b > 0.5", "{:.4f}"),
    "mask_guide_mean": ("mean b inside guide", "{:.3f}"),
    "mask_mean": ("mean b", "{:.3f}"),
    "collapsed": ("mask collapsed", "{}"),
    "judge_accuracy_on_inputs": ("judge accuracy on the inputs", "{:.2%}"),
    "seconds_per_epoch": ("seconds per epoch (training)", "{:.1f}"),
    "examples": ("test faces", "{}"),
}
_SUMS = ("n", "n_to_0", "n_to_1", "correct_to_0", "correct_to_1", "ssim", "identity_l1",
         "guide", "covered", "union", "outside", "outside_on", "guide_b", "b", "pixels",
         "judge_inputs")


def make_metric_sums(ed: editor_lib.Editor, judge: classifier.Classifier,
                     has_mask: bool):
    """A jitted (g_params, judge_variables, batch) -> sums of the metrics' numerators and
    denominators over the batch's real (weight 1) examples."""
    generator = ed.generator
    judge_apply = judge.apply_fn()

    @jax.jit
    def sums(g_params, judge_variables, batch):
        image, label, w = batch["image"], batch["label"], batch["weight"]
        target = 1.0 - label
        outputs, _, masks = generator.apply(g_params, image, jnp.stack([target, label]))
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
        return {k: jnp.sum(v) for k, v in values.items()}

    return sums


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def evaluate(ed: editor_lib.Editor, judge: classifier.Classifier, *, split: str = "test",
             batch_size: int = 64, collapse_threshold: float = 0.05) -> dict[str, Any]:
    """The metrics of `ed` over every face of `split`, each edited to the opposite label."""
    cfg = ml_collections.ConfigDict(ed.config)
    task = input_pipeline.task_from_config(cfg)
    mesh = parallel.create_mesh()
    has_mask = task.mask_name is not None
    sums_fn = make_metric_sums(ed, judge, has_mask)
    totals = dict.fromkeys(_SUMS, 0.0)
    keys = ("image", "label", "weight") + (("mask",) if has_mask else ())
    for batch in input_pipeline.padded_eval_batches(task, batch_size=batch_size, split=split):
        batch = parallel.global_batch({k: batch[k] for k in keys}, mesh)
        for k, v in jax.device_get(sums_fn(ed.g_params, judge.variables, batch)).items():
            totals[k] += float(v)
    t = totals
    if not t["n"]:
        raise ValueError(f"split {split!r} of {task.dataset} is empty")
    guide_mean = _ratio(t["guide_b"], t["guide"]) if has_mask else float("nan")
    mask_mean = _ratio(t["b"], t["pixels"])
    return {
        "split": split, "examples": int(t["n"]), "step": ed.step,
        "attribute_editing_accuracy": _ratio(t["correct_to_0"] + t["correct_to_1"], t["n"]),
        "accuracy_to_0": _ratio(t["correct_to_0"], t["n_to_0"]),
        "accuracy_to_1": _ratio(t["correct_to_1"], t["n_to_1"]),
        "ssim": _ratio(t["ssim"], t["n"]),
        "identity_l1": _ratio(t["identity_l1"], t["n"]),
        "mask_guide_coverage": _ratio(t["covered"], t["guide"]) if has_mask else float("nan"),
        "mask_guide_iou": _ratio(t["covered"], t["union"]) if has_mask else float("nan"),
        "mask_outside_area": _ratio(t["outside_on"], t["outside"]),
        "mask_guide_mean": guide_mean,
        "mask_mean": mask_mean,
        "collapsed": bool((guide_mean if has_mask else mask_mean) < collapse_threshold),
        "judge_accuracy_on_inputs": _ratio(t["judge_inputs"], t["n"]),
    }


def markdown_table(metrics: dict[str, Any], title: str = "") -> str:
    """The metrics as a two-column markdown table."""
    lines = [f"# {title}\n" if title else "", "| metric | value |", "| --- | --- |"]
    for name, (label, fmt) in TABLE.items():
        if name in metrics and metrics[name] is not None:
            value = metrics[name]
            text = "n/a" if isinstance(value, float) and np.isnan(value) else fmt.format(value)
            lines.append(f"| {label} | {text} |")
    return "\n".join(line for line in lines if line) + "\n"


def _sample_faces(ed: editor_lib.Editor, split: str, n: int) -> np.ndarray:
    task = input_pipeline.task_from_config(ml_collections.ConfigDict(ed.config))
    loader = input_pipeline.create_eval_loader(task, batch_size=n, split=split, shard_index=0,
                                               shard_count=1)
    return next(iter(loader))["image"]


def sample_sheet(ed: editor_lib.Editor, faces: np.ndarray) -> np.ndarray:
    """A Figs 3-5 grid of `faces` ([-1, 1]): input, G(I, c), b and I_a for c = 0 and 1."""
    n = len(faces)
    c = np.concatenate([np.zeros(n, np.float32), np.ones(n, np.float32)])
    outputs, attribute_images, masks = ed.generate(np.concatenate([faces, faces]), c)
    split = lambda x: x.reshape((2, n) + x.shape[1:])  # noqa: E731
    return visualize.sample_grid(faces, split(outputs), split(masks), split(attribute_images))


def evaluate_run(workdir: os.PathLike, judge: classifier.Classifier | os.PathLike | None = None,
                 *, step: int | None = None, split: str | None = None) -> dict[str, Any]:
    """Evaluates the editor in `workdir` with `judge` (default: the one its config names) and
    writes <workdir>/eval/metrics.json, metrics.md and samples.png, and TensorBoard scalars."""
    workdir = pathlib.Path(workdir)
    ed = editor_lib.load_editor(workdir, step=step, judge=judge)
    if ed.judge is None:
        raise FileNotFoundError(
            f"no trained judge in {editor_lib.judge_dir_of(ed.config, workdir)}: train one with "
            f"`python main.py --config=configs/classifier.py --workdir=DIR` and pass "
            f"--judge=DIR (or judge=DIR)")
    cfg = ed.config
    split = split or cfg.get("eval_split", "test")
    metrics = evaluate(ed, ed.judge, split=split, batch_size=cfg.get("eval_batch_size", 64),
                       collapse_threshold=cfg.get("collapse_threshold", 0.05))
    judge_results = classifier.read_results(ed.judge.workdir) or {}
    metrics.update(structure=cfg["structure"], mask_loss=cfg["mask_loss"], seed=cfg["seed"],
                   attribute=cfg["attribute"], dataset=cfg["dataset"],
                   judge=os.fspath(ed.judge.workdir),
                   judge_test_accuracy=judge_results.get("test_accuracy"))
    try:
        timing = json.loads((workdir / train.TIMING_FILE).read_text())
        metrics.update({k: timing.get(k) for k in ("seconds_per_epoch", "images_per_s",
                                                   "device")})
    except FileNotFoundError:
        pass
    if jax.process_index() == 0:
        out = workdir / EVAL_DIR
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        title = f"{cfg['structure'].upper()} + {cfg['mask_loss']}, seed {cfg['seed']}: " \
                f"{split} split, step {ed.step}"
        (out / "metrics.md").write_text(markdown_table(metrics, title))
        grid = sample_sheet(ed, _sample_faces(ed, split, min(8, metrics["examples"])))
        visualize.save_png(grid, out / "samples.png")
        writer = loop.Writer(workdir)
        writer.scalars(ed.step or 0, {f"eval/{k}": float(v) for k, v in metrics.items()
                                      if isinstance(v, (int, float)) and v is not None
                                      and k not in ("step", "seed")})
        writer.text(ed.step or 0, "eval/metrics", markdown_table(metrics))
        writer.close()
    logging.info("evaluation of %s: %s", workdir, metrics)
    return metrics
