"""CelebAMask-HQ's file layout, in one module: names, paths, parsers and the per-face reader.

Everything the `celebamask` builder and the synthetic-face generator must agree on lives here,
so that a synthetic folder is read by exactly the code that reads the real download. This
module needs only numpy and Pillow (no TensorFlow, no TFDS): the builder's worker processes
import it alone.

The manual download holds:

    CelebA-HQ-img/<k>.jpg                              1024x1024 JPEG faces, k = 0..29999
    CelebAMask-HQ-mask-anno/<k // 2000>/<k:05d>_<part>.png
                                                       512x512 part masks, 0/255; no file means
                                                       the part is absent from that face
    CelebAMask-HQ-attribute-anno.txt                   line 1: count; line 2: the 40 names;
                                                       then `<k>.jpg` and 40 values of 1/-1
    CelebA-HQ-to-CelebA-mapping.txt                    header `idx orig_idx orig_file`, one row
                                                       per face
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

IMAGE_DIR = "CelebA-HQ-img"
MASK_DIR = "CelebAMask-HQ-mask-anno"
ATTRIBUTE_FILE = "CelebAMask-HQ-attribute-anno.txt"
MAPPING_FILE = "CelebA-HQ-to-CelebA-mapping.txt"
MANUAL_ENTRIES = (IMAGE_DIR, MASK_DIR, ATTRIBUTE_FILE, MAPPING_FILE)

# The 40 CelebA attributes, in the order of the annotation file's second line.
ATTRIBUTE_NAMES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
    "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

# The 18 part files, in the painting order of the dataset's own `g_mask.py`: label i + 1 is
# PART_NAMES[i], 0 is background, and a later part overwrites an earlier one.
PART_NAMES = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
SEGMENTATION_CLASSES = ("background",) + PART_NAMES  # the 19 classes of `segmentation`

# Guide-mask regions: each is the union of these part files (parts overlap, so a union of
# the files, not a lookup in the painted label map, where e.g. hair can cover the lips).
GUIDE_MASK_PARTS: Mapping[str, tuple[str, ...]] = {
    "mouth": ("u_lip", "mouth", "l_lip"),
    "eyes": ("l_eye", "r_eye"),
    "brows": ("l_brow", "r_brow"),
    "nose": ("nose",),
    "eyeglasses": ("eye_g",),
    "hair": ("hair",),
    "hat": ("hat",),
    "ears": ("l_ear", "r_ear"),
    "earrings": ("ear_r",),
    "necklace": ("neck_l",),
    "skin": ("skin",),
    "neck": ("neck",),
    "cloth": ("cloth",),
}
GUIDE_MASK_NAMES = tuple(GUIDE_MASK_PARTS)

# Region-local attributes and the guide mask an editor of that attribute should cover. The
# paper's case is Mouth_Slightly_Open -> mouth; the rest follow the same reading of the parts.
# Attributes absent from this table (Male, Young, Attractive, ...) are global: no guide mask.
ATTRIBUTE_GUIDE_MASK: Mapping[str, str] = {
    "Mouth_Slightly_Open": "mouth",
    "Smiling": "mouth",
    "Big_Lips": "mouth",
    "Wearing_Lipstick": "mouth",
    "Narrow_Eyes": "eyes",
    "Arched_Eyebrows": "brows",
    "Bushy_Eyebrows": "brows",
    "Big_Nose": "nose",
    "Pointy_Nose": "nose",
    "Eyeglasses": "eyeglasses",
    "Bangs": "hair",
    "Bald": "hair",
    "Black_Hair": "hair",
    "Blond_Hair": "hair",
    "Brown_Hair": "hair",
    "Gray_Hair": "hair",
    "Straight_Hair": "hair",
    "Wavy_Hair": "hair",
    "Receding_Hairline": "hair",
    "Wearing_Hat": "hat",
    "Wearing_Earrings": "earrings",
    "Wearing_Necklace": "necklace",
    "Wearing_Necktie": "cloth",
    "Pale_Skin": "skin",
    "Rosy_Cheeks": "skin",
}

# CelebA's official partition, by the original CelebA file number.
LAST_TRAIN_FILE = 162770  # train <= 162770.jpg
LAST_VALIDATION_FILE = 182637  # 162770.jpg < validation <= 182637.jpg < test
SPLITS = ("train", "validation", "test")


class FormatError(ValueError):
    """A file of the manual download does not have CelebAMask-HQ's format."""


def image_path(root: str | os.PathLike, k: int) -> str:
    """Path of face k's JPEG image."""
    return os.path.join(root, IMAGE_DIR, f"{k}.jpg")


def mask_path(root: str | os.PathLike, k: int, part: str) -> str:
    """Path of face k's part file (it may not exist: then the part is absent)."""
    return os.path.join(root, MASK_DIR, str(k // 2000), f"{k:05d}_{part}.png")


def split_of(celeba_file: str) -> str:
    """CelebA's partition of an original CelebA file name such as '162771.jpg'."""
    stem = os.path.splitext(os.path.basename(celeba_file))[0]
    try:
        number = int(stem)
    except ValueError:
        raise FormatError(f"not a CelebA file name: {celeba_file!r}") from None
    if number <= LAST_TRAIN_FILE:
        return "train"
    if number <= LAST_VALIDATION_FILE:
        return "validation"
    return "test"


def missing_entries(root: str | os.PathLike) -> list[str]:
    """The entries of MANUAL_ENTRIES that `root` lacks (all of them if it does not exist)."""
    return [e for e in MANUAL_ENTRIES if not os.path.exists(os.path.join(root, e))]


def _face_number(name: str, where: str) -> int:
    stem, ext = os.path.splitext(name)
    if ext != ".jpg" or not stem.isdigit():
        raise FormatError(f"{where}: expected a face file name like '123.jpg', got {name!r}")
    return int(stem)


def read_attributes(path: str | os.PathLike) -> dict[int, tuple[bool, ...]]:
    """Parses the attribute file: face number -> 40 booleans in ATTRIBUTE_NAMES order."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if len(lines) < 2:
        raise FormatError(f"{path}: expected a count line and a names line, got {len(lines)} lines")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise FormatError(f"{path}:1: expected the number of faces, got {lines[0]!r}") from None
    names = tuple(lines[1].split())
    if names != ATTRIBUTE_NAMES:
        raise FormatError(f"{path}:2: expected the 40 CelebA attribute names, got {lines[1]!r}")
    rows: dict[int, tuple[bool, ...]] = {}
    for number, line in enumerate(lines[2:], start=3):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        fields = line.split()
        if len(fields) != 41:
            raise FormatError(f"{where}: expected a file name and 40 values, got {line!r}")
        k = _face_number(fields[0], where)
        if any(v not in ("1", "-1") for v in fields[1:]):
            raise FormatError(f"{where}: attribute values must be 1 or -1, got {line!r}")
        if k in rows:
            raise FormatError(f"{where}: face {k} has a second attribute row")
        rows[k] = tuple(v == "1" for v in fields[1:])
    if len(rows) != count:
        raise FormatError(f"{path}:1: says {count} faces but the file has {len(rows)} rows")
    return rows


def read_mapping(path: str | os.PathLike) -> dict[int, str]:
    """Parses the mapping file: face number -> original CelebA file name."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines or lines[0].split() != ["idx", "orig_idx", "orig_file"]:
        raise FormatError(f"{path}:1: expected the header 'idx orig_idx orig_file'")
    mapping: dict[int, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
            raise FormatError(f"{path}:{number}: expected 'idx orig_idx orig_file', got {line!r}")
        split_of(fields[2])  # validates the name
        mapping[int(fields[0])] = fields[2]
    return mapping


def list_images(root: str | os.PathLike) -> list[int]:
    """Face numbers of the JPEG files in CelebA-HQ-img/, sorted."""
    directory = os.path.join(root, IMAGE_DIR)
    faces = []
    for name in os.listdir(directory):
        if name.endswith(".jpg"):
            faces.append(_face_number(name, directory))
    return sorted(faces)


@dataclasses.dataclass(frozen=True)
class FaceRecord:
    """What the annotation files say about one face."""

    index: int
    celeba_file: str
    attributes: tuple[bool, ...]

    @property
    def split(self) -> str:
        return split_of(self.celeba_file)


def read_index(root: str | os.PathLike) -> list[FaceRecord]:
    """Cross-checks images, attribute rows and mapping rows; returns one record per face.

    Raises FormatError naming what is inconsistent: an image without an attribute row, an
    attribute row without an image, or an image the mapping file does not list.
    """
    images = list_images(root)
    attributes = read_attributes(os.path.join(root, ATTRIBUTE_FILE))
    mapping = read_mapping(os.path.join(root, MAPPING_FILE))
    image_set = set(images)
    problems = []
    no_row = [k for k in images if k not in attributes]
    no_image = sorted(k for k in attributes if k not in image_set)
    no_mapping = [k for k in images if k not in mapping]
    if no_row:
        problems.append(f"{len(no_row)} image(s) have no row in {ATTRIBUTE_FILE}: "
                        f"{_some(image_path(root, k) for k in no_row)}")
    if no_image:
        problems.append(f"{len(no_image)} row(s) of {ATTRIBUTE_FILE} have no image in "
                        f"{IMAGE_DIR}/: {_some(f'{k}.jpg' for k in no_image)}")
    if no_mapping:
        problems.append(f"{len(no_mapping)} image(s) are not listed in {MAPPING_FILE}: "
                        f"{_some(f'{k}.jpg' for k in no_mapping)}")
    if problems:
        raise FormatError(f"{root}: " + "; ".join(problems))
    return [FaceRecord(k, mapping[k], attributes[k]) for k in images]


def _some(items: Iterable[str], limit: int = 5) -> str:
    items = list(items)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def load_image(path: str, resolution: int) -> np.ndarray:
    """Decodes a face JPEG and resizes it to resolution x resolution RGB uint8.

    JPEG draft mode decodes at the smallest DCT scale that is still >= 2x the target (1024 ->
    256 for 128 px), then a Lanczos filter makes the final, antialiased reduction.
    """
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft("RGB", (2 * resolution, 2 * resolution))
            im = im.convert("RGB")
            if im.size != (resolution, resolution):
                im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
            return np.asarray(im)
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for broken files
        raise FormatError(f"{path}: cannot read the face image ({e})") from e


def load_part(path: str) -> np.ndarray | None:
    """A part file as a boolean array at its own size; None when the file does not exist."""
    try:
        with Image.open(path) as im:
            array = np.asarray(im)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, SyntaxError) as e:
        raise FormatError(f"{path}: cannot read the part mask ({e})") from e
    if array.ndim == 3:
        array = array[..., 0]  # 0/255 RGB: every channel is the same; g_mask.py reads channel 0
    return array != 0


def resize_mask(mask: np.ndarray, resolution: int) -> np.ndarray:
    """Boolean mask -> boolean mask at resolution: area average, then majority vote."""
    if mask.shape == (resolution, resolution):
        return mask
    im = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(im.resize((resolution, resolution), Image.Resampling.BOX)) >= 128


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 HxW or HxWxC array (what tfds.features.Image stores as is)."""
    buffer = io.BytesIO()
    # Masks shrink ~50x already at the fastest level.
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def read_face(root: str, index: int, resolution: int) -> dict[str, Any]:
    """Reads face `index` and returns its image, segmentation and guide masks at resolution.

    image: (R, R, 3) uint8; segmentation: (R, R, 1) uint8 labels painted in PART_NAMES order
    (as g_mask.py does, at the parts' own resolution, then nearest-neighbour resized);
    guide_masks: name -> (R, R, 1) uint8 in {0, 1}, unions of part files at the parts' own
    resolution, then area-resized and thresholded at one half.
    """
    image = load_image(image_path(root, index), resolution)
    parts = {p: load_part(mask_path(root, index, p)) for p in PART_NAMES}
    shapes = {m.shape for m in parts.values() if m is not None}
    if len(shapes) > 1:
        raise FormatError(f"face {index}: part masks have different sizes {sorted(shapes)} in "
                          f"{os.path.dirname(mask_path(root, index, 'skin'))}")
    shape = shapes.pop() if shapes else (resolution, resolution)
    labels = np.zeros(shape, np.uint8)
    for label, part in enumerate(PART_NAMES, start=1):
        if parts[part] is not None:
            labels[parts[part]] = label
    if shape != (resolution, resolution):
        labels = np.asarray(Image.fromarray(labels).resize(
            (resolution, resolution), Image.Resampling.NEAREST))
    guide_masks = {}
    for name, members in GUIDE_MASK_PARTS.items():
        union = np.zeros(shape, bool)
        for part in members:
            if parts[part] is not None:
                union |= parts[part]
        guide_masks[name] = resize_mask(union, resolution).astype(np.uint8)[..., None]
    return {"image": image, "segmentation": labels[..., None], "guide_masks": guide_masks}


def attributes_dict(values: Sequence[bool]) -> dict[str, bool]:
    """40 booleans in file order -> {name: value}."""
    return dict(zip(ATTRIBUTE_NAMES, (bool(v) for v in values)))
