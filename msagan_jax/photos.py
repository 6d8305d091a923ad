"""Photos in and out: reading any image as the model's input, and editing files and folders.

    preprocess(image, size)        path, PIL image or array -> uint8 (size, size, 3)
    as_list(images)                what Editor.edit takes -> a list of single images
    check_values(value, n, attr)   an edit's target values, checked
    edit_files(editor, input, output, value, overwrite=False)   main.py --mode=edit

Images may be of any size, RGB, RGBA or palette with transparency (composited on white),
grayscale (8 or 16 bit), uint8 or float in [0, 1]: each is centre-cropped to a square and
resized (Lanczos) to the model's size. Arrays: (H, W[, C]) is one image and (N, H, W, C) a
batch; a 3-D array is a (N, H, W) grayscale batch only when its last axis cannot hold
channels (more than 4), so (64, 64, 2) is refused, not read as 64 images of 64x2.
"""

from __future__ import annotations

import collections
import io
import os
import pathlib
import stat
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import logging
from PIL import Image, ImageOps

from msagan_jax import errors

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class UnreadableImageError(errors.InputError):
    """An input that is not an image this editor can read; the message names it."""


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


# --- Inputs ------------------------------------------------------------------------------

def load_image(path: os.PathLike) -> Image.Image:
    """Opens an image file (applying its EXIF orientation); raises UnreadableImageError
    naming the file when it is missing, not a regular file, too large or not an image."""
    path = pathlib.Path(path)
    if not path.exists():
        raise UnreadableImageError(f"{path}: " + ("a symlink to a missing file"
                                                  if path.is_symlink() else "no such file"))
    if not path.is_file():  # a folder, or a FIFO that open() would wait on forever
        raise UnreadableImageError(f"{path}: not a file")
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as e:
        raise UnreadableImageError(f"{path}: too large to read ({_one_line(e)})") from None
    except Exception as e:  # noqa: BLE001  hostile files make PIL raise almost anything
        raise UnreadableImageError(f"{path}: not a readable image ({_one_line(e)})") from None


def _float_scale(image: Image.Image, array: np.ndarray) -> float:
    """The value that means white in a single-channel integer or float image."""
    if image.mode.startswith("I;16"):
        return 65535.0
    if image.mode == "F" and array.min() >= 0 and array.max() <= 1:
        return 1.0  # float images in [0, 1], like float arrays
    return 65535.0 if array.max() > 255 else 255.0


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB; transparent pixels become white, grayscale is repeated over the channels."""
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image).convert("RGB")
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        array = np.asarray(image, np.float64)
        if not np.all(np.isfinite(array)):
            raise UnreadableImageError("the image holds NaN or infinite values")
        if array.size:
            array = np.clip(array / _float_scale(image, array) * 255.0, 0, 255)
        image = Image.fromarray(np.round(array).astype(np.uint8))
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
        if not np.all(np.isfinite(array)):
            raise UnreadableImageError("the image array holds NaN or infinite values")
        if array.size and (array.min() < -1e-3 or array.max() > 1 + 1e-3):
            raise UnreadableImageError(
                f"float images must lie in [0, 1]; got values in [{array.min():.3g}, "
                f"{array.max():.3g}] (for [0, 255] pass uint8)")
        array = np.round(np.clip(array, 0, 1) * 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 4:
        return Image.fromarray(array, mode="RGBA")
    return Image.fromarray(array)


def _square(image: Image.Image, size: int) -> np.ndarray:
    """A PIL image -> uint8 (size, size, 3), centre-cropped and resized."""
    try:
        image = _to_rgb(image)
    except UnreadableImageError:
        raise
    except (ValueError, OSError) as e:  # modes PIL cannot turn into RGB (e.g. LAB, HSV)
        raise UnreadableImageError(f"cannot read a {image.mode} image as RGB "
                                   f"({_one_line(e)})") from None
    w, h = image.size
    side = min(w, h)
    if side == 0:
        raise UnreadableImageError(f"an image of size {w}x{h} is empty")
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, np.uint8)


def preprocess(image: Any, size: int) -> np.ndarray:
    """One image (path, PIL image or array) -> uint8 (size, size, 3): centre-cropped to a
    square, resized (Lanczos), RGB. Raises UnreadableImageError (naming the file, for a
    path) for anything it cannot read."""
    if isinstance(image, (str, os.PathLike)):
        try:
            return _square(load_image(image), size)
        except UnreadableImageError as e:
            if str(e).startswith(f"{pathlib.Path(image)}:"):
                raise
            raise UnreadableImageError(f"{pathlib.Path(image)}: {e}") from None
    if not isinstance(image, Image.Image) and (isinstance(image, np.ndarray)
                                               or hasattr(image, "__array__")):
        image = _array_to_pil(np.asarray(image))
    if not isinstance(image, Image.Image):
        raise UnreadableImageError(f"cannot edit a {type(image).__name__}: pass file paths, "
                                   f"PIL images or arrays")
    return _square(image, size)


def as_list(images: Any) -> list:
    """What Editor.edit takes (a path, PIL image, array, batch, or a sequence of them) -> a
    non-empty list of single images; raises errors.InputError otherwise."""
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return [images]
    if isinstance(images, (bytes, bytearray)):
        raise UnreadableImageError("cannot edit bytes: pass the file's path, a PIL image "
                                   "(Image.open(io.BytesIO(data))) or an array")
    if isinstance(images, np.ndarray) or hasattr(images, "__array__"):
        array = np.asarray(images)
        # 3-D is one (H, W, C) image unless the last axis is too long for channels.
        if array.ndim == 4 or (array.ndim == 3 and array.shape[-1] > 4):
            items = list(array)
        else:
            items = [array]
    else:
        try:
            items = list(images)
        except TypeError:
            raise UnreadableImageError(f"cannot edit a {type(images).__name__}: pass file "
                                       f"paths, PIL images or arrays") from None
    if not items:
        raise errors.InputError("no images to edit: the list (or batch) is empty")
    return items


def check_values(value: Any, count: int, attribute: str = "the attribute") -> np.ndarray:
    """An edit's target `value` (one number, or one per image) -> float32 (count,); raises
    errors.InputError naming it unless each is a finite number in [0, 1]."""
    try:
        values = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise errors.InputError(f"value={value!r}: not a number (0 removes {attribute}, "
                                f"1 adds it)") from None
    if values.ndim > 1 or (values.ndim == 1 and len(values) != count):
        raise errors.InputError(f"value={value!r}: give one value, or one per image "
                                f"({count} images, {values.size} values)")
    if not np.all(np.isfinite(values)):
        raise errors.InputError(f"value={value!r}: attribute values must be finite numbers "
                                f"in [0, 1]")
    if np.any((values < 0) | (values > 1)):
        raise errors.InputError(f"value={value!r}: attribute values lie in [0, 1] (0 removes "
                                f"{attribute}, 1 adds it)")
    return np.broadcast_to(values.astype(np.float32), (count,)).copy()


# --- Outputs -----------------------------------------------------------------------------

def mask_path(path: pathlib.Path) -> pathlib.Path:
    """Where the mask of the edited image at `path` goes: <stem>_mask.png beside it."""
    return path.with_name(f"{path.stem}_mask.png")


def output_names(files: Sequence[pathlib.Path]) -> dict[pathlib.Path, str]:
    """Each input file's output name (without .png) in folder mode; see edit_files."""
    def claims(name: str) -> tuple[str, str]:  # case-folded: macOS and Windows ignore case
        return f"{name}.png".casefold(), f"{name}_mask.png".casefold()

    count = collections.Counter(c for p in files for c in claims(p.stem))
    names = {p: p.stem for p in files if all(count[c] == 1 for c in claims(p.stem))}
    taken = {c for name in names.values() for c in claims(name)}
    for p in files:
        if p not in names:
            base = name = f"{p.stem}_{p.suffix[1:].lower()}"
            k = 2
            while taken.intersection(claims(name)):
                name, k = f"{base}_{k}", k + 1
            names[p] = name
            taken.update(claims(name))
    return names


def _plan(input_path: pathlib.Path, output: str) -> list[tuple[pathlib.Path, Any]]:
    """(input, output path or None when it is no file to read) for every input."""
    output_path = pathlib.Path(output)
    if input_path.is_dir():
        try:
            entries = sorted(p for p in input_path.iterdir()
                             if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as e:
            raise errors.InputError(f"{input_path}: cannot list it ({_one_line(e)})") from None
        if not entries:
            raise errors.InputError(f"{input_path} holds no image files "
                                    f"({', '.join(IMAGE_SUFFIXES)})")
        names = output_names([p for p in entries if p.is_file()])
        return [(p, output_path / f"{names[p]}.png" if p in names else None) for p in entries]
    if not os.path.lexists(input_path):
        raise errors.InputError(f"{input_path}: no such file or folder")
    if output_path.is_dir() or output.endswith(("/", os.sep)):
        return [(input_path, output_path / f"{input_path.stem}.png")]
    return [(input_path, output_path if output_path.suffix else output_path.with_suffix(".png"))]


def _file_id(path: pathlib.Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _check_folder(folder: pathlib.Path) -> None:
    """Raises errors.InputError unless `folder` is, or can be made, a writable folder."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing == folder and not folder.is_dir():
        raise errors.InputError(f"{folder} is not a folder: the outputs cannot go there")
    if not existing.is_dir():
        raise errors.InputError(f"{folder}: cannot create it: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise errors.InputError(f"{existing}: no permission to write there")


def _check_format(path: pathlib.Path) -> None:
    """Raises errors.InputError unless PIL can write an RGB image named like `path`."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise errors.InputError(f"{path}: unknown image format {path.suffix!r} (name it .png "
                                f"or .jpg, say)")
    try:
        Image.new("RGB", (8, 8)).save(io.BytesIO(), format=fmt)
    except Exception as e:  # noqa: BLE001  any failure means this run could not save
        raise errors.InputError(f"{path}: cannot write {fmt} images ({_one_line(e)})") from None


def check_outputs(plan: Sequence[tuple[pathlib.Path, Any]], overwrite: bool) -> None:
    """Raises errors.InputError naming a path when an output (or its mask) could not be
    written, is an input, or (overwrite=False) exists: before anything is read."""
    targets = [t for _, t in plan if t is not None]
    for folder in sorted({t.parent for t in targets}):
        _check_folder(folder)
    for suffix in sorted({t.suffix.lower() for t in targets}):
        _check_format(next(t for t in targets if t.suffix.lower() == suffix))
    inputs = {_file_id(source) for source, _ in plan} - {None}
    existing = []
    for path in (p for t in targets for p in (t, mask_path(t))):
        if not os.path.lexists(path):
            continue
        if path.is_dir():
            raise errors.InputError(f"{path} is a folder: cannot write an image there")
        if _file_id(path) in inputs:  # the same file, whatever the path (links included)
            raise errors.InputError(f"{path} is one of the inputs: refusing to write over it; "
                                    f"choose another output")
        existing.append(path)
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} other output(s))" if len(existing) > 1 else ""
        raise errors.InputError(f"{existing[0]} already exists{more}: pass --overwrite "
                                f"(overwrite=True) to replace")


def _save(image: Image.Image, path: pathlib.Path, overwrite: bool) -> None:
    """Writes `image` to `path` (format from the suffix). A new file is created exclusively,
    so nothing that appeared since the checks is replaced; an existing one (overwrite=True)
    is replaced atomically through a temporary file: a crash never leaves it half-written,
    and a symlink there is replaced, not written through."""
    fmt = Image.registered_extensions()[path.suffix.lower()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not overwrite or not os.path.lexists(path):
            with open(path, "xb") as f:
                image.save(f, format=fmt)
            return
        mode = stat.S_IMODE(os.stat(path).st_mode) if path.exists() else 0o644
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                image.save(f, format=fmt)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    except OSError as e:
        raise errors.InputError(f"{path}: cannot write it ({_one_line(e)})") from None


def _edit_and_write(editor: Any, batch: list[tuple[np.ndarray, pathlib.Path]],
                    value: float | None, overwrite: bool) -> list[pathlib.Path]:
    """Edits one chunk of faces (one compiled call) and writes each face and its mask."""
    faces, targets = zip(*batch)
    result = editor.edit(np.stack(faces), value)
    for target, image, mask in zip(targets, result.images, result.masks):
        _save(Image.fromarray(np.asarray(image, np.uint8)), target, overwrite)
        _save(Image.fromarray(np.round(np.asarray(mask) * 255).astype(np.uint8)),
              mask_path(target), overwrite)
    return list(targets)


def edit_files(editor: Any, input_path: os.PathLike, output_path: os.PathLike,
               value: float | None = None, overwrite: bool = False,
               ) -> tuple[list[pathlib.Path], list[str]]:
    """Edits one image file, or every image file directly in a folder, with `editor` (an
    editor.Editor) to `value` (None: flip what the judge sees); writes each edited face
    and its mask (<name>_mask.png beside it). Returns (edited files written, in input
    order; one line per input not edited, naming it). A bad input (unreadable, too large,
    not a file) is named and skipped; the rest are still edited.

    A file input: `output_path` is the edited image's path (.png added when it has no
    suffix), or a folder (existing, or ending in /) that receives <stem>.png.
    A folder input: `output_path` is a folder receiving <stem>.png and <stem>_mask.png for
    each input <stem>.<ext>; an input whose names another input would also get (face.jpg
    and face.png; face.png's mask and the input face_mask.png) keeps its suffix instead:
    <stem>_<ext>.png (face_jpg.png, face_png.png, face_mask_png.png), with _2, _3... if
    even that is taken. Names are compared ignoring case. Every image file in the folder
    is an input, an earlier run's outputs included: edit into another folder.

    Before any image is read, raises errors.InputError naming the path when the value is
    not a finite number in [0, 1], an output's folder cannot be created or written, or an
    output (or mask) is an input, a folder, or (unless `overwrite`) an existing file: an
    input is never written over, and no file this run writes is read. Inputs are read,
    edited and written `editor.chunk` at a time, so memory stays bounded and what was
    written stays written if a later chunk fails.
    """
    if value is not None:
        if np.ndim(value) != 0:
            raise errors.InputError(f"value={value!r}: edit_files takes one value for all "
                                    f"files")
        check_values(value, 1, editor.attribute)
    plan = _plan(pathlib.Path(input_path), os.fspath(output_path))
    check_outputs(plan, overwrite)
    written: list[pathlib.Path] = []
    problems: list[str] = []
    batch: list[tuple[np.ndarray, pathlib.Path]] = []
    for source, target in plan:
        try:
            face = preprocess(source, editor.image_size)
            if target is None:  # it stopped being a folder or FIFO since it was listed
                raise UnreadableImageError(f"{source}: not a file")
        except UnreadableImageError as e:
            problems.append(str(e))
            logging.info("not edited: %s", e)  # the caller reports them, once
            continue
        batch.append((face, target))
        if len(batch) == editor.chunk:
            written += _edit_and_write(editor, batch, value, overwrite)
            batch = []
    if batch:
        written += _edit_and_write(editor, batch, value, overwrite)
    return written, problems
