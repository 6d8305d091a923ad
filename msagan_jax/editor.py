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
from PIL import Image, ImageOps, UnidentifiedImageError

from msagan_jax import checkpoint, classifier, parallel, train, visualize

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class UnreadableImageError(ValueError):
    """An input that is not an image this editor can read; the message names it."""


# --- Inputs ------------------------------------------------------------------------------

def load_image(path: os.PathLike) -> Image.Image:
    """Opens an image file (applying its EXIF orientation); raises UnreadableImageError
    naming the file when it is missing or not an image."""
    path = pathlib.Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except FileNotFoundError:
        raise UnreadableImageError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UnreadableImageError(f"{path}: not a readable image ({e})") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB; transparent pixels become white, grayscale is repeated over the channels."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "F"):
        array = np.asarray(image, np.float64)
        top = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0, 0, 255).astype(np.uint8))
    return image.convert("RGB")


def _array_to_pil(array: np.ndarray) -> Image.Image:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise UnreadableImageError(f"an image array must be (H, W), (H, W, 1), (H, W, 3) or "
                                   f"(H, W, 4); got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise UnreadableImageError(f"image arrays must be uint8 or float in [0, 1]; got "
                                       f"{array.dtype}")
        if array.size and (np.nanmin(array) < -1e-3 or np.nanmax(array) > 1 + 1e-3):
            raise UnreadableImageError(
                f"float images must lie in [0, 1]; got values in [{np.nanmin(array):.3g}, "
                f"{np.nanmax(array):.3g}] (for [0, 255] pass uint8)")
        array = np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 4:
        return Image.fromarray(array, mode="RGBA")
    return Image.fromarray(array)


def preprocess(image: Any, size: int) -> np.ndarray:
    """One image (path, PIL image or array) -> uint8 (size, size, 3): centre-cropped to a
    square, resized (Lanczos), RGB."""
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    elif isinstance(image, np.ndarray) or hasattr(image, "__array__") and \
            not isinstance(image, Image.Image):
        image = _array_to_pil(np.asarray(image))
    if not isinstance(image, Image.Image):
        raise UnreadableImageError(f"cannot edit a {type(image).__name__}: pass file paths, "
                                   f"PIL images or arrays")
    image = _to_rgb(image)
    w, h = image.size
    side = min(w, h)
    if side == 0:
        raise UnreadableImageError(f"an image of size {w}x{h} is empty")
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, np.uint8)


def _as_list(images: Any) -> list:
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return [images]
    if isinstance(images, np.ndarray) or hasattr(images, "__array__"):
        array = np.asarray(images)
        # (N, H, W, C) with C in 1/3/4, or (N, H, W) only when it cannot be one (H, W, C) image
        if array.ndim == 4 or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4)):
            return list(array)
        return [array]
    return list(images)


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

    config: dict
    g_params: Any
    d_params: Any
    judge: classifier.Classifier | None = None
    workdir: pathlib.Path | None = None
    step: int | None = None
    chunk: int = 32  # images per compiled call

    def __post_init__(self):
        self.generator, discriminator = train.create_models(ml_collections.ConfigDict(
            self.config))
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

    def generate(self, x: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, ...]:
        """The raw model: [-1, 1] images (N, S, S, 3) and targets (N,) -> (G(I, c), I_a, b)."""
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
        what the judge sees in each)."""
        faces = np.stack([preprocess(image, self.image_size) for image in _as_list(images)])
        x = faces.astype(np.float32) / 127.5 - 1.0
        if value is None:
            values = 1.0 - (self.attribute_logits(x) > 0).astype(np.float32)
        else:
            values = np.broadcast_to(np.asarray(value, np.float32), (len(faces),)).copy()
            if np.any((values < 0) | (values > 1)):
                raise ValueError(f"value={value!r}: attribute values lie in [0, 1] (0 removes "
                                 f"{self.attribute}, 1 adds it)")
        outputs, attribute_images, masks = self.generate(x, values)
        return EditResult(images=visualize.to_uint8(outputs), masks=masks[..., 0],
                          attribute_images=visualize.to_uint8(attribute_images), inputs=faces,
                          values=values)


def judge_dir_of(config: dict, workdir: os.PathLike) -> pathlib.Path:
    """The judge's workdir that an editor's config names (relative paths: from `workdir`)."""
    judge = pathlib.Path(os.path.expanduser(config.get("judge_workdir") or "../judge"))
    return judge if judge.is_absolute() else (pathlib.Path(workdir).absolute() / judge).resolve()


def check_judge(judge: classifier.Classifier, config: dict) -> None:
    """Raises ValueError when a judge learned another attribute, image size or kind of faces
    (celebamask vs celebamask_synthetic; their configs may differ, e.g. 64 and 64_n96_s3)."""
    kind = lambda c: str(c.get("dataset")).split("/")[0]  # noqa: E731
    for name, theirs, ours in (
            ("attribute", judge.config.get("attribute"), config.get("attribute")),
            ("image_size", judge.config.get("image_size"), config.get("image_size")),
            ("dataset", kind(judge.config), kind(config))):
        if theirs != ours:
            raise ValueError(f"the judge in {judge.workdir} was trained with {name}="
                             f"{theirs!r}, the editor with {ours!r}")


def load_editor(workdir: os.PathLike, step: int | None = None,
                judge: classifier.Classifier | os.PathLike | None = None) -> Editor:
    """Restores the editor trained in `workdir` (its latest checkpoint, or `step`).

    `judge`: a Classifier, a judge's workdir, or None for the one the run's config names
    (judge_workdir); without a judge, value=None asks D's attribute classifier instead.
    """
    workdir = pathlib.Path(workdir)
    config = checkpoint.read_config(workdir)
    if config.get("model", "editor") != "editor":
        raise ValueError(f"{workdir} holds a {config.get('model')} run, not an editor")
    cfg = ml_collections.ConfigDict(config)
    manager = checkpoint.create_manager(workdir, config["keep_checkpoints"])
    step = checkpoint.latest_step(manager) if step is None else step
    if step is None:
        raise FileNotFoundError(f"{checkpoint.checkpoint_dir(workdir)} holds no checkpoint "
                                f"yet")
    state = checkpoint.restore(manager, step, train.abstract_state(cfg, 1,
                                                                   parallel.create_mesh()))
    if judge is None:
        judge_dir = judge_dir_of(config, workdir)
        if classifier.read_results(judge_dir) is not None:
            judge = classifier.load_classifier(judge_dir)
        else:
            logging.info("no trained judge in %s: value=None asks D's classifier", judge_dir)
    elif not isinstance(judge, classifier.Classifier):
        if classifier.read_results(judge) is None:
            raise FileNotFoundError(f"no trained judge in {judge}: train one with `python "
                                    f"main.py --config=configs/classifier.py --workdir={judge}`")
        judge = classifier.load_classifier(judge)
    if judge is not None:
        check_judge(judge, config)
    return Editor(config, state.g_params, state.d_params, judge, workdir, step)


# --- Files (main.py --mode=edit) ---------------------------------------------------------

def mask_path(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(f"{path.stem}_mask.png")


def edit_files(editor: Editor, input_path: os.PathLike, output_path: os.PathLike,
               value: float | None = None) -> tuple[list[pathlib.Path], list[str]]:
    """Edits one image file or every image in a folder; writes each edited face and its mask
    (<name>_mask.png). Returns (written edited files, errors); an unreadable file is an error
    naming it and the others are still edited.

    A file input: output is the edited image's path (a folder when it is one). A folder
    input: output is a folder, receiving <stem>.png for each input.
    """
    input_path, output_path = pathlib.Path(input_path), pathlib.Path(output_path)
    if input_path.is_dir():
        sources = sorted(p for p in input_path.iterdir()
                         if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not sources:
            raise FileNotFoundError(f"{input_path} holds no image files "
                                    f"({', '.join(IMAGE_SUFFIXES)})")
        targets = [output_path / f"{p.stem}.png" for p in sources]
    elif input_path.exists():
        sources = [input_path]
        targets = [output_path / f"{input_path.stem}.png" if output_path.is_dir()
                   else output_path.with_suffix(output_path.suffix or ".png")]
    else:
        raise FileNotFoundError(f"{input_path}: no such file or folder")
    written, errors = [], []
    faces, kept = [], []
    for source, target in zip(sources, targets):
        try:
            faces.append(preprocess(source, editor.image_size))
            kept.append(target)
        except UnreadableImageError as e:
            errors.append(str(e))
            logging.error("%s", e)
    for start in range(0, len(faces), editor.chunk):
        result = editor.edit(np.stack(faces[start:start + editor.chunk]), value)
        for i, target in enumerate(kept[start:start + editor.chunk]):
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(result.images[i]).save(target)
            Image.fromarray(np.round(result.masks[i] * 255).astype(np.uint8)).save(
                mask_path(target))
            written.append(target)
    return written, errors

