"""Restore a trained editor and edit photos: the notebook API and `main.py --mode=edit`.

    import msagan_jax
    editor = msagan_jax.load_editor("runs/quickstart")
    out = editor.edit(images, value=1)          # or value=None: flip what the judge sees
    out.images, out.masks, out.attribute_images

`images` may be file paths, PIL images, or arrays (one (H, W[, C]) image, a list of them, or
a (N, H, W[, C]) batch), of any size, RGB, RGBA (composited on white) or grayscale, uint8 or
float in [0, 1]: each is centre-cropped to a square and resized to the model's size.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from msagan_jax import checkpoint, config_lib, errors, judge_lib, models, parallel, photos
from msagan_jax import visualize

# --- The editor --------------------------------------------------------------------------

@dataclasses.dataclass
class EditResult:
    """What `Editor.edit` returns, one entry per input image."""

    images: np.ndarray  # uint8 (N, S, S, 3): the edited faces G(I, c)
    masks: np.ndarray  # float32 (N, S, S) in [0, 1]: the attention masks b
    attribute_images: np.ndarray  # uint8 (N, S, S, 3): the attribute images I_a
    inputs: np.ndarray  # uint8 (N, S, S, 3): the inputs as the model saw them
    values: np.ndarray  # float32 (N,): the target value c of each edit

    def __len__(self) -> int:
        return len(self.images)


@dataclasses.dataclass
class Editor:
    """A trained generator (and, when found, its judge) ready to edit images."""

    config: ml_collections.ConfigDict
    g_params: Any
    d_params: Any
    judge: judge_lib.Classifier | None = None
    workdir: pathlib.Path | None = None
    step: int | None = None
    chunk: int = 32  # images per compiled call

    def __post_init__(self):
        self.generator, discriminator = models.create_models(self.config)
        self._generate = jax.jit(self.generator.apply)
        self._d_logits = jax.jit(lambda p, x: discriminator.apply(p, x)[1])

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    @property
    def attribute(self) -> str:
        return str(self.config["attribute"])

    @property
    def attribute_source(self) -> str:
        """Who decides what to flip for value=None: the judge, or (without one) D's
        attribute classifier D_cls."""
        return "judge" if self.judge is not None else "discriminator"

    def _chunks(self, x: np.ndarray):
        for start in range(0, len(x), self.chunk):
            part = x[start:start + self.chunk]
            n = len(part)
            if len(x) > self.chunk and n < self.chunk:  # one compiled shape for long lists
                part = np.concatenate([part, np.zeros((self.chunk - n,) + part.shape[1:],
                                                      part.dtype)])
            yield start, n, part

    def condition(self, values: np.ndarray) -> np.ndarray:
        """The c G is given to edit to attribute `values` (models.edit_condition)."""
        return np.asarray(models.edit_condition(self.config, np.asarray(values, np.float32)),
                          np.float32)

    def with_condition(self, to_0: float, to_1: float) -> Editor:
        """This editor, giving G `to_0` and `to_1` to edit toward 0 and 1 (the run's config:
        edit_condition_to_0 and _to_1); errors.ConfigError unless finite, `to_1` the larger."""
        config_lib.check_edit_condition(to_0, to_1)
        config = ml_collections.ConfigDict(self.config.to_dict())
        config.edit_condition_to_0, config.edit_condition_to_1 = float(to_0), float(to_1)
        return dataclasses.replace(self, config=config)

    def generate(self, x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, ...]:
        """The raw model: [-1, 1] images (N, S, S, 3) and conditions c (N,) -> (G(I, c), I_a,
        b). `edit` gives G `condition(values)`."""
        outs = []
        for start, n, part in self._chunks(np.asarray(x, np.float32)):
            cs = np.zeros(len(part), np.float32)
            cs[:n] = c[start:start + n]
            outs.append([np.asarray(o)[:n] for o in self._generate(self.g_params, part, cs)])
        return tuple(np.concatenate(parts) for parts in zip(*outs))

    def attribute_logits(self, x: np.ndarray) -> np.ndarray:
        """The attribute's log-odds for [-1, 1] images, by the judge (or D_cls without one)."""
        outs = []
        for _, n, part in self._chunks(np.asarray(x, np.float32)):
            logits = (self.judge.logits(part) if self.judge is not None
                      else self._d_logits(self.d_params, part))
            outs.append(np.asarray(logits)[:n])
        return np.concatenate(outs)

    def edit(self, images: Any, value: float | Sequence[float] | None = None) -> EditResult:
        """Edits `images` to attribute value `value` (0 or 1, one per image, or None to flip
        what the judge sees in each). Raises errors.InputError for no images, an image it
        cannot read (photos.UnreadableImageError, naming it) or a value that is not a finite
        number in [0, 1] (or not one per image), before the model runs."""
        items = photos.as_list(images)
        values = (None if value is None
                  else photos.check_values(value, len(items), self.attribute))
        faces = np.stack([photos.preprocess(image, self.image_size) for image in items])
        x = faces.astype(np.float32) / 127.5 - 1.0
        if values is None:
            values = 1.0 - (self.attribute_logits(x) > 0).astype(np.float32)
        outputs, attribute_images, masks = self.generate(x, self.condition(values))
        return EditResult(images=visualize.to_uint8(outputs), masks=masks[..., 0],
                          attribute_images=visualize.to_uint8(attribute_images), inputs=faces,
                          values=values)


def load_editor(workdir: os.PathLike, step: int | None = None,
                judge: judge_lib.Classifier | os.PathLike | None = None) -> Editor:
    """Restores the editor trained in `workdir` (its newest checkpoint that reads back, or
    `step`).

    `judge`: a Classifier, a judge's workdir, or None for the one the run's config names
    (judge.workdir); without a judge, value=None asks D's attribute classifier instead.
    """
    workdir = pathlib.Path(workdir)
    config, manager = checkpoint.open_run(workdir, "editor")
    step, params = checkpoint.restore_parameters(manager, abstract_params(config), step)
    if judge is None:
        judge = judge_lib.find_judge(config, workdir)
        if judge is None:
            logging.info("no trained judge in %s: value=None asks D's classifier",
                         judge_lib.judge_dir(config, workdir))
    elif not isinstance(judge, judge_lib.Classifier):
        if judge_lib.read_results(judge) is None:
            raise errors.InputError(f"no trained judge in {judge}: "
                                    f"{judge_lib.how_to_train(config, judge)}")
        judge = judge_lib.load_classifier(judge)
    if judge is not None:
        judge_lib.check_judge(judge, config)
    g_params = params["g_ema"] if "g_ema" in params else params["g_params"]
    return Editor(config, g_params, params["d_params"], judge, workdir, step)


def abstract_params(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Shapes and shardings of G's and D's parameters as an editor's checkpoint holds them
    (with G's moving average, g_ema, when config.ema_decay keeps one: the editor uses it)."""
    generator, discriminator = models.create_models(config)
    image = jax.numpy.zeros((1, config.image_size, config.image_size, 3))
    key = jax.random.PRNGKey(0)

    def init():
        g = generator.init(key, image, jax.numpy.zeros((1,)))
        return {"g_params": g, "d_params": models.init_discriminator(discriminator, key, image),
                **({"g_ema": g} if config.ema_decay > 0 else {})}

    return parallel.abstract_replicated(init, parallel.create_mesh())
