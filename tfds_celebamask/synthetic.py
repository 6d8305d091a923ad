"""Procedural cartoon faces written in CelebAMask-HQ's exact file layout.

`generate` writes a folder that the `celebamask` builder reads with the same code that reads
the real manual download (see `celebamask/layout.py`), so the editor can be trained and
tested with no download. `draw_face` draws one face in memory.

Every face is drawn from its own generator, `np.random.default_rng([seed, index])`, so any face
can be redrawn alone and faces can be drawn in parallel. All random choices are drawn before
any attribute is decided, so `draw_face(..., overrides={"Mouth_Slightly_Open": False})` draws
the same face with only the overridden attribute changed: paired faces for evaluation.
`generate` writes such a counterpart of every validation and test face for each attribute of
COUNTERPART_ATTRIBUTES (to `counterpart_path`), so an evaluator can compare an edit with
the true edited face.

Geometry is rasterised once, at the masks' resolution (half the image size), and the image is
composed there and upscaled 2x by pixel replication before lighting and grain are applied, so
a part file is exactly the 2x2 pixel blocks that part was painted on. Parts overlap as in the
real data: skin lies under the eyes, nose and mouth, because those come after skin both in
painting and in `layout.PART_NAMES`. Where a part painted later comes earlier in PART_NAMES
(the face in front of the ears and neck), the covered pixels leave the earlier-painted part's
file, so painting the files in PART_NAMES order, as the dataset's tools do, gives back the
part that is visible at each pixel.

Command line (writes a layout the builder can read as its manual folder):

    python -m tfds_celebamask.synthetic --out DIR --num N [--size 1024] [--seed S] [--workers W]
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import shutil
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from tfds_celebamask.celebamask import layout

# Present in every synthetic folder: it tells users (and `generate`) that the faces are fake,
# and lets `generate` overwrite its own earlier output but nothing else.
MARKER_FILE = "SYNTHETIC.txt"

# Attributes that `draw_face` decides and draws; every other attribute is False, except
# No_Beard, which is True because no face is drawn with a beard.
MODELED_ATTRIBUTES = (
    "Arched_Eyebrows", "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair",
    "Bushy_Eyebrows", "Eyeglasses", "Gray_Hair", "Male", "Mouth_Slightly_Open", "Narrow_Eyes",
    "No_Beard", "Pale_Skin", "Rosy_Cheeks", "Smiling", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Young",
)
# Attributes `overrides` may force. Hair colours are left out: forcing one false would not
# say which colour to draw instead.
OVERRIDABLE_ATTRIBUTES = (
    "Arched_Eyebrows", "Bald", "Bangs", "Bushy_Eyebrows", "Eyeglasses", "Male",
    "Mouth_Slightly_Open", "Narrow_Eyes", "Pale_Skin", "Rosy_Cheeks", "Smiling",
    "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Young",
)

# Local attributes whose paired counterpart (the same face with that attribute flipped)
# `generate` writes for every validation and test face; train faces get none, so that training
# never sees the pairs an evaluation scores against.
COUNTERPART_ATTRIBUTES = ("Mouth_Slightly_Open", "Smiling", "Eyeglasses", "Wearing_Hat",
                          "Bangs", "Narrow_Eyes")
COUNTERPART_DIR = "counterparts"  # not part of CelebAMask-HQ: only synthetic folders have it

_PART_LABEL = {part: label for label, part in enumerate(layout.PART_NAMES, start=1)}

# One uniform number per name, drawn in this order from the face's generator before anything
# is decided: the draws never depend on attribute values, which is what makes overrides keep
# everything else identical. Append new names at the end to keep existing faces unchanged.
_DRAW_NAMES = (
    # attribute coins
    "male", "young", "mouth_open", "smiling", "glasses", "hat", "earrings", "necklace",
    "lipstick", "bangs", "bald", "hair_colour", "pale", "rosy", "bushy", "arched", "narrow",
    # head geometry and placement
    "face_width", "aspect", "jaw", "jaw_power", "tilt", "centre_x", "centre_y",
    # colours
    "skin_tone", "skin_hue", "hair_shade", "iris_colour", "bg_hue0", "bg_hue1", "bg_light0",
    "bg_light1", "bg_sat", "bg_angle", "cloth_hue", "cloth_light", "hat_hue", "hat_light",
    "frame_colour", "metal", "lip_tint",
    # hair shape
    "hair_top", "hair_side", "hair_length", "hair_flare", "hairline", "fringe_wave",
    # eyes and brows
    "eye_x", "eye_y", "eye_width", "eye_open", "eye_lower", "eye_tilt", "look_x", "look_y",
    "iris_size", "brow_gap", "brow_thickness", "brow_arch", "brow_length",
    # nose and mouth
    "nose_y", "nose_width", "mouth_y", "mouth_width", "upper_lip", "lower_lip", "opening",
    "teeth_height", "teeth_width", "smile_curve", "rest_curve",
    # accessories and body
    "ear_y", "ear_size", "earring_style", "glasses_style", "glasses_size", "lens_tint",
    "neck_width", "neckline", "shoulders", "necklace_drop", "hat_height",
    # lighting and texture
    "light_angle", "light_strength", "shading", "grain",
)


@dataclasses.dataclass(frozen=True)
class SyntheticFace:
    """One drawn face.

    image: (size, size, 3) uint8. parts: part name -> (size//2, size//2) bool mask, only the
    parts present (exactly what a part file holds). attributes: all 40 names -> bool.
    segmentation: (size//2, size//2) uint8 label of the part visible at each pixel, numbered
    as `layout.SEGMENTATION_CLASSES` (0 is background).
    """

    image: np.ndarray
    parts: dict[str, np.ndarray]
    attributes: dict[str, bool]
    segmentation: np.ndarray


def _lerp(lo: float, hi: float, u: float) -> float:
    return lo + (hi - lo) * u


def _mix(a: Sequence[float], b: Sequence[float], t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def _scale(colour: Sequence[float], k: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, round(c * k)))) for c in colour)


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    """An RGB colour from hue, saturation, value in [0, 1]."""
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return tuple(int(round(255 * c)) for c in rgb)


def _decide_attributes(r: SimpleNamespace, overrides: Mapping[str, bool]) -> dict[str, bool]:
    """All 40 attributes from the draws; each forced value replaces the drawn one, and the
    attributes that depend on it (hair colour on Bald and Young, ...) follow the forced value."""
    unknown = [name for name in overrides if name not in OVERRIDABLE_ATTRIBUTES]
    if unknown:
        raise ValueError(f"cannot override {unknown}: overridable attributes are "
                         f"{list(OVERRIDABLE_ATTRIBUTES)}")

    def pick(name: str, drawn: bool) -> bool:
        return bool(overrides[name]) if name in overrides else drawn

    a = dict.fromkeys(layout.ATTRIBUTE_NAMES, False)
    a["No_Beard"] = True
    a["Male"] = male = pick("Male", r.male < 0.42)
    a["Young"] = young = pick("Young", r.young < 0.75)
    # Forcing Bangs gives a face that was drawn bald its hair back.
    drawn_bald = male and r.bald < (0.05 if young else 0.3) and not overrides.get("Bangs")
    a["Bald"] = bald = pick("Bald", drawn_bald)
    if bald and overrides.get("Bangs"):
        raise ValueError("a bald face cannot have Bangs: do not force both true")
    a["Bangs"] = pick("Bangs", not bald and r.bangs < (0.12 if male else 0.3))
    if not bald:
        # Gray only for older faces; otherwise black, brown, blond, or red (no attribute).
        if not young and r.hair_colour < 0.4:
            a["Gray_Hair"] = True
        else:
            u = (r.hair_colour * 7.31) % 1.0
            if u < 0.35:
                a["Black_Hair"] = True
            elif u < 0.7:
                a["Brown_Hair"] = True
            elif u < 0.9:
                a["Blond_Hair"] = True
    a["Mouth_Slightly_Open"] = pick("Mouth_Slightly_Open", r.mouth_open < 0.5)
    a["Smiling"] = pick("Smiling", r.smiling < 0.4)
    a["Eyeglasses"] = pick("Eyeglasses", r.glasses < 0.12)
    a["Wearing_Hat"] = pick("Wearing_Hat", r.hat < 0.08)
    a["Wearing_Earrings"] = pick("Wearing_Earrings", not male and r.earrings < 0.35)
    a["Wearing_Necklace"] = pick("Wearing_Necklace", r.necklace < (0.04 if male else 0.2))
    a["Wearing_Lipstick"] = pick("Wearing_Lipstick", not male and r.lipstick < 0.45)
    a["Pale_Skin"] = pick("Pale_Skin", r.pale < 0.07)
    a["Rosy_Cheeks"] = pick("Rosy_Cheeks", r.rosy < 0.1)
    a["Bushy_Eyebrows"] = pick("Bushy_Eyebrows", r.bushy < 0.15)
    a["Arched_Eyebrows"] = pick("Arched_Eyebrows", r.arched < 0.3)
    a["Narrow_Eyes"] = pick("Narrow_Eyes", r.narrow < 0.1)
    return a


class _Frame:
    """Maps face-local coordinates to mask pixels.

    Local units are the face's half width; (0, 0) is the face centre, v grows downwards, and
    the frame may be tilted about the centre.
    """

    def __init__(self, cx: float, cy: float, unit: float, tilt: float, pixels: int):
        self.cx, self.cy, self.unit, self.pixels = cx, cy, unit, pixels
        self.cos, self.sin = math.cos(tilt), math.sin(tilt)

    def __call__(self, u: np.ndarray, v: np.ndarray) -> list[float]:
        """Flat [x0, y0, x1, y1, ...] pixel coordinates, as ImageDraw takes them."""
        u, v = np.broadcast_arrays(np.asarray(u, float), np.asarray(v, float))
        x = (self.cx + (u * self.cos - v * self.sin) * self.unit) * self.pixels
        y = (self.cy + (u * self.sin + v * self.cos) * self.unit) * self.pixels
        return np.stack([x, y], axis=-1).ravel().tolist()

    def width(self, w: float) -> int:
        """A line width in local units -> pixels (at least 1)."""
        return max(1, int(round(w * self.unit * self.pixels)))


def _ellipse(cu: float, cv: float, ru: float, rv: float, n: int = 48,
             a0: float = 0.0, a1: float = 2 * math.pi) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(a0, a1, n)
    return cu + ru * np.cos(t), cv + rv * np.sin(t)


class _Painter:
    """Composes the face at mask resolution and records each painted shape."""

    def __init__(self, background: Image.Image):
        self.canvas = background
        self.m = background.size[0]
        self.labels = np.zeros((self.m, self.m), np.uint8)
        self.layers: list[tuple[str, np.ndarray, bool]] = []

    def shape(self, draw_fn: Callable[[ImageDraw.ImageDraw], None]) -> np.ndarray:
        """The boolean mask of whatever draw_fn(ImageDraw) fills with 255."""
        im = Image.new("L", (self.m, self.m), 0)
        draw_fn(ImageDraw.Draw(im))
        return np.asarray(im) > 0

    def polygon(self, xy: list[float]) -> np.ndarray:
        return self.shape(lambda d: d.polygon(xy, fill=255))

    def line(self, xy: list[float], width: int) -> np.ndarray:
        return self.shape(lambda d: d.line(xy, fill=255, width=width, joint="curve"))

    def paint(self, part: str, mask: np.ndarray, fill: tuple[int, int, int] | Image.Image,
              alpha: int = 255, opaque: bool = True) -> None:
        """Paints `fill` (a colour or an RGB image) on `mask` as `part`.

        A transparent layer (a tinted lens) does not hide what it covers: it takes the label
        only of pixels whose visible part comes earlier in PART_NAMES, as painting the files
        in that order does.
        """
        alpha_image = Image.fromarray(mask.astype(np.uint8) * alpha)
        box = alpha_image.getbbox()
        if box is None:
            return
        # Paste only the shape's bounding box: most parts are small.
        if isinstance(fill, Image.Image):
            fill = fill.crop(box)
        self.canvas.paste(fill, box, alpha_image.crop(box))
        label = _PART_LABEL[part]
        if opaque:
            self.labels[mask] = label
        else:
            self.labels[mask & (self.labels < label)] = label
        self.layers.append((part, mask, opaque))

    def part_masks(self) -> dict[str, np.ndarray]:
        """Each part's file: its painted pixels, less those an opaque later layer of an
        earlier part in PART_NAMES covers (painting the files in order would mislabel them)."""
        first_later = np.full((self.m, self.m), 255, np.uint8)  # lowest label painted later
        masks: dict[str, np.ndarray] = {}
        for part, mask, opaque in reversed(self.layers):
            label = _PART_LABEL[part]
            kept = mask & (first_later >= label)
            masks[part] = masks[part] | kept if part in masks else kept
            if opaque:
                np.minimum(first_later, label, out=first_later, where=mask)
        return {p: masks[p] for p in layout.PART_NAMES if p in masks and masks[p].any()}


_HAIR_COLOURS = {
    "Black_Hair": (28, 22, 20), "Brown_Hair": (92, 58, 34), "Blond_Hair": (214, 178, 112),
    "Gray_Hair": (168, 166, 160), None: (150, 62, 30),  # red hair has no attribute
}
_IRIS_COLOURS = ((70, 45, 25), (40, 28, 20), (60, 110, 160), (80, 120, 70), (110, 90, 60))


def _skin_colour(r: SimpleNamespace, pale: bool) -> tuple[int, int, int]:
    if pale:
        base = _mix((250, 226, 214), (238, 210, 196), r.skin_tone)
    else:
        # From deep brown to light beige; the darkest stays well above the mouth cavity.
        base = _mix((118, 78, 56), (236, 196, 168), r.skin_tone ** 0.7)
    return _scale(base, _lerp(0.96, 1.04, r.skin_hue))


def _hair_colour(a: Mapping[str, bool], r: SimpleNamespace) -> tuple[int, int, int]:
    name = next((n for n in ("Black_Hair", "Brown_Hair", "Blond_Hair", "Gray_Hair") if a[n]),
                None)
    return _scale(_HAIR_COLOURS[name], _lerp(0.85, 1.15, r.hair_shade))


def _strands(m: int, colour: tuple[int, int, int], frame: _Frame, crown: tuple[float, float],
             rng: np.random.Generator) -> Image.Image:
    """A hair-coloured image with strands radiating from the crown, to fill hair shapes."""
    im = Image.new("RGB", (m, m), colour)
    draw = ImageDraw.Draw(im)
    n = 90
    angles = rng.uniform(-0.15 * math.pi, 1.15 * math.pi, n)
    lengths = rng.uniform(1.0, 4.0, n)
    shades = rng.uniform(0.7, 1.3, n)
    width = frame.width(0.012)
    for angle, length, shade in zip(angles, lengths, shades):
        # Strands fall from the crown: sideways at first, then down.
        t = np.linspace(0.0, 1.0, 6)
        u = crown[0] - math.cos(angle) * 1.6 * t
        v = crown[1] - math.sin(angle) * 0.7 * t + length * t ** 2
        draw.line(frame(u, v), fill=_scale(colour, shade), width=width, joint="curve")
    return im


def _background(m: int, r: SimpleNamespace) -> Image.Image:
    c0 = np.array(_hsv(r.bg_hue0, 0.15 + 0.45 * r.bg_sat, _lerp(0.25, 0.95, r.bg_light0)), float)
    c1 = np.array(_hsv(r.bg_hue1, 0.15 + 0.45 * r.bg_sat, _lerp(0.25, 0.95, r.bg_light1)), float)
    g = 32  # the gradient is smooth: compute it small, let PIL upscale it
    y, x = np.mgrid[0:g, 0:g] / (g - 1)
    angle = 2 * math.pi * r.bg_angle
    t = (math.cos(angle) * (x - 0.5) + math.sin(angle) * (y - 0.5)) / math.sqrt(2) + 0.5
    small = c0 + (c1 - c0) * t[..., None]
    return Image.fromarray(small.astype(np.uint8)).resize((m, m), Image.Resampling.BILINEAR)


@dataclasses.dataclass(frozen=True)
class _Geometry:
    """The head's placement (image fractions) and landmarks (face-local units, see _Frame)."""

    fw: float  # half width of the face, as a fraction of the image
    aspect: float  # half height / half width
    cx: float
    cy: float
    head: _Frame
    body: _Frame  # untilted: the shoulders do not turn with the head
    jaw: float
    jaw_power: float
    hair_top: float  # how far hair stands above the head
    hair_side: float  # and beside it
    hat_height: float
    eye_x: float
    eye_v: float
    eye_w: float
    nose_v: float
    mouth_v: float
    mouth_w: float
    ear_v: float
    ear_ru: float
    ear_rv: float


def _head_geometry(r: SimpleNamespace, male: bool, m: int) -> _Geometry:
    """The head's size, placement, tilt and landmarks, for masks of m x m pixels."""
    fw = _lerp(0.2, 0.25, r.face_width)
    aspect = _lerp(1.22, 1.42, r.aspect)
    hair_top = _lerp(0.05, 0.18, r.hair_top) if male else _lerp(0.1, 0.3, r.hair_top)
    hat_height = _lerp(0.55, 0.8, r.hat_height) * aspect
    # Placed low enough that the tallest hair or hat stays in frame.
    top_extent = max(aspect + hair_top, 0.5 * aspect + hat_height + 0.05) + 0.1
    cx = _lerp(0.465, 0.535, r.centre_x)
    cy = max(_lerp(0.48, 0.52, r.centre_y), top_extent * fw + 0.02)
    tilt = math.radians(_lerp(-6.0, 6.0, r.tilt))
    nose_v = aspect * _lerp(0.2, 0.27, r.nose_y)
    return _Geometry(
        fw=fw, aspect=aspect, cx=cx, cy=cy,
        head=_Frame(cx, cy, fw, tilt, m), body=_Frame(cx, cy, fw, 0.0, m),
        jaw=_lerp(0.05, 0.3, r.jaw) + (0.0 if male else 0.08),
        jaw_power=_lerp(1.5, 4.0, r.jaw_power),
        hair_top=hair_top,
        hair_side=_lerp(0.06, 0.14, r.hair_side) if male else _lerp(0.1, 0.24, r.hair_side),
        hat_height=hat_height,
        eye_x=_lerp(0.36, 0.44, r.eye_x),
        eye_v=-aspect * _lerp(0.08, 0.14, r.eye_y),
        eye_w=_lerp(0.16, 0.21, r.eye_width),
        nose_v=nose_v,
        mouth_v=max(aspect * _lerp(0.47, 0.53, r.mouth_y), nose_v + 0.2),
        mouth_w=_lerp(0.36, 0.48, r.mouth_width),
        ear_v=aspect * _lerp(-0.05, 0.05, r.ear_y),
        ear_ru=_lerp(0.14, 0.19, r.ear_size),
        ear_rv=aspect * _lerp(0.2, 0.26, r.ear_size),
    )


def _metal(r: SimpleNamespace) -> tuple[int, int, int]:
    """Gold or silver, shared by the necklace and the earrings so they match."""
    return (212, 175, 55) if r.metal < 0.5 else (200, 200, 205)


def _render(r: SimpleNamespace, a: Mapping[str, bool], size: int,
            textures: SimpleNamespace) -> tuple[np.ndarray, _Painter]:
    """Draws the face the draws and attributes describe; returns the image and the painter."""
    m = size // 2
    g = _head_geometry(r, a["Male"], m)
    skin = _skin_colour(r, a["Pale_Skin"])
    hair = None if a["Bald"] else _hair_colour(a, r)
    painter = _Painter(_background(m, r))
    # Back to front: each call paints over the ones before it.
    strands = None
    if hair is not None:
        # One texture for the back hair and the cap, so the two read as one head of hair.
        strands = _strands(m, hair, g.head, (0.0, -g.aspect - 0.5 * g.hair_top),
                           np.random.default_rng(textures.strands))
        _paint_back_hair(painter, g, r, a["Male"], strands)
    _paint_body(painter, g, r, a, skin)
    _paint_ears(painter, g, r, a, skin)
    _paint_skin(painter, g, a, skin)
    _paint_nose(painter, g, r, skin)
    _paint_eyes(painter, g, r, a, hair)
    _paint_brows(painter, g, r, a, hair)
    _paint_mouth(painter, g.head, r, a, skin, g.mouth_v, g.mouth_w, chin=g.aspect)
    if strands is not None:
        _paint_front_hair(painter, g, r, a, strands)
    if a["Eyeglasses"]:
        _paint_glasses(painter, g.head, r, g.eye_x, g.eye_v, g.eye_w)
    if a["Wearing_Hat"]:
        _paint_hat(painter, g, r)
    image = _light(painter.canvas, r, size, g.cx, g.cy, g.fw, g.aspect, textures)
    return image, painter


def _paint_back_hair(painter: _Painter, g: _Geometry, r: SimpleNamespace, male: bool,
                     strands: Image.Image) -> None:
    """Hair behind the head, down to the ears (short), the jaw or the shoulders."""
    aspect = g.aspect
    if male:
        length = aspect * _lerp(-0.15, 0.2, r.hair_length)
    else:
        length = aspect * (_lerp(0.8, 1.1, r.hair_length) if r.hair_length < 0.4
                           else _lerp(1.8, 3.0, r.hair_length))
    flare = _lerp(0.0, 0.25, r.hair_flare) * max(0.0, length) / aspect
    arc_u, arc_v = _ellipse(0.0, 0.0, 1.0 + g.hair_side, aspect + g.hair_top, 40,
                            math.pi, 2 * math.pi)
    back_u = np.concatenate([arc_u, [1.0 + g.hair_side + flare, -1.0 - g.hair_side - flare]])
    back_v = np.concatenate([arc_v, [length, length]])
    painter.paint("hair", painter.polygon(g.head(back_u, back_v)), strands)


def _paint_body(painter: _Painter, g: _Geometry, r: SimpleNamespace, a: Mapping[str, bool],
                skin: tuple[int, int, int]) -> None:
    """Shoulders, then the neck over the cloth's neckline, then a necklace."""
    body, aspect, male = g.body, g.aspect, a["Male"]
    shoulder_v = aspect + _lerp(0.35, 0.6, r.shoulders)
    cloth_colour = _hsv(r.cloth_hue, 0.5, _lerp(0.2, 0.85, r.cloth_light))
    cu, cv = _ellipse(0.0, shoulder_v + 2.0, _lerp(2.3, 2.8, r.shoulders), 2.0, 64,
                      math.pi, 2 * math.pi)
    cloth = painter.polygon(body(np.concatenate([cu, [cu[-1], cu[0]]]),
                                 np.concatenate([cv, [20.0, 20.0]])))
    painter.paint("cloth", cloth, cloth_colour)
    neck_w = _lerp(0.48, 0.58, r.neck_width) + (0.08 if male else 0.0)
    neckline = shoulder_v + _lerp(0.15, 0.7, r.neckline)
    neck = painter.polygon(body(
        [-neck_w, neck_w, neck_w * 1.08, neck_w * 1.6, 0.0, -neck_w * 1.6, -neck_w * 1.08],
        [0.3 * aspect, 0.3 * aspect, shoulder_v - 0.05, shoulder_v + 0.05, neckline,
         shoulder_v + 0.05, shoulder_v - 0.05]))
    painter.paint("neck", neck, _scale(skin, 0.84))
    if a["Wearing_Necklace"]:
        drop = _lerp(0.15, 0.4, r.necklace_drop)
        nu, nv = _ellipse(0.0, shoulder_v - 0.25, neck_w * 1.02, drop + 0.25, 40, 0.0, math.pi)
        chain = painter.line(body(nu, nv), body.width(0.035))
        pu, pv = _ellipse(0.0, shoulder_v + drop + 0.05, 0.06, 0.06, 16)
        pendant = painter.polygon(body(pu, pv))
        painter.paint("neck_l", chain | pendant, _metal(r))


def _paint_ears(painter: _Painter, g: _Geometry, r: SimpleNamespace, a: Mapping[str, bool],
                skin: tuple[int, int, int]) -> None:
    """Both ears with their inner shadow, and earrings (hoops or drops) on the lobes."""
    head, ear_v, ear_ru, ear_rv = g.head, g.ear_v, g.ear_ru, g.ear_rv
    # Painted before the face, which covers all but the ears' outer part.
    for side, part in ((-1, "r_ear"), (1, "l_ear")):
        eu, ev = _ellipse(side * 0.97, ear_v, ear_ru, ear_rv, 32)
        ear = painter.polygon(head(eu, ev))
        painter.paint(part, ear, _scale(skin, 0.93))
        iu, iv = _ellipse(side * (0.97 + 0.35 * ear_ru), ear_v, 0.45 * ear_ru, 0.6 * ear_rv, 24)
        painter.paint(part, painter.polygon(head(iu, iv)) & ear, _scale(skin, 0.72))
    if not a["Wearing_Earrings"]:
        return
    for side in (-1, 1):
        lobe_u, lobe_v = side * (1.0 + 0.3 * ear_ru), ear_v + 0.9 * ear_rv
        if r.earring_style < 0.5:  # hoop
            hu, hv = _ellipse(lobe_u, lobe_v + 0.12, 0.1, 0.12, 32)
            ring = painter.line(head(hu, hv), head.width(0.03))
        else:  # drop
            hu, hv = _ellipse(lobe_u, lobe_v + 0.09, 0.06, 0.09, 24)
            ring = painter.polygon(head(hu, hv))
        painter.paint("ear_r", ring, _metal(r))


def _paint_skin(painter: _Painter, g: _Geometry, a: Mapping[str, bool],
                skin: tuple[int, int, int]) -> None:
    """The face, with the age folds and rosy cheeks that belong to skin."""
    head, aspect = g.head, g.aspect
    # An ellipse whose lower half narrows towards the chin.
    t = np.linspace(0.0, 2 * math.pi, 96, endpoint=False)
    below = np.clip(np.sin(t), 0.0, None)
    face = painter.polygon(head(np.cos(t) * (1.0 - g.jaw * below ** g.jaw_power),
                                aspect * np.sin(t)))
    painter.paint("skin", face, skin)
    # Marks are clipped to the face so that they never spill into the ears or the background.
    if not a["Young"]:
        fold = _scale(skin, 0.8)
        for side in (-1, 1):
            fu = side * np.linspace(0.28, g.mouth_w + 0.1, 8)
            fv = np.linspace(g.nose_v - 0.05, g.mouth_v + 0.12, 8)
            painter.paint("skin", painter.line(head(fu, fv), head.width(0.02)) & face, fold)
        for k in range(3):
            lu = np.linspace(-0.35, 0.35, 12)
            lv = -aspect * (0.55 + 0.07 * k) + 0.04 * np.cos(lu * 4)
            painter.paint("skin", painter.line(head(lu, lv), head.width(0.014)) & face, fold)
    if a["Rosy_Cheeks"]:
        for side in (-1, 1):
            ru_, rv_ = _ellipse(side * 0.55, 0.22 * aspect, 0.2, 0.12, 32)
            painter.paint("skin", painter.polygon(head(ru_, rv_)) & face, (220, 80, 90),
                          alpha=70, opaque=False)


def _paint_nose(painter: _Painter, g: _Geometry, r: SimpleNamespace,
                skin: tuple[int, int, int]) -> None:
    """A slightly darker wedge from between the eyes, with nostrils."""
    head, nose_v, eye_v = g.head, g.nose_v, g.eye_v
    nose_w = _lerp(0.16, 0.23, r.nose_width)
    bu, bv = _ellipse(0.0, nose_v - 0.02, nose_w, 0.07, 16, 0.0, math.pi)
    nose = painter.polygon(head(
        np.concatenate([[-0.06, 0.06, nose_w * 0.55], bu, [-nose_w * 0.55]]),
        np.concatenate([[eye_v + 0.06, eye_v + 0.06, nose_v - 0.14], bv, [nose_v - 0.14]])))
    painter.paint("nose", nose, _scale(skin, 0.92))
    for side in (-1, 1):
        nu_, nv_ = _ellipse(side * nose_w * 0.45, nose_v + 0.01, 0.055, 0.03, 16)
        painter.paint("nose", painter.polygon(head(nu_, nv_)), _scale(skin, 0.45))


def _paint_eyes(painter: _Painter, g: _Geometry, r: SimpleNamespace, a: Mapping[str, bool],
                hair: tuple[int, int, int] | None) -> None:
    """Almond-shaped whites, iris and pupil inside them, a dark upper lid (hair None: bald)."""
    head, eye_x, eye_v, eye_w = g.head, g.eye_x, g.eye_v, g.eye_w
    eye_up = eye_w * (_lerp(0.22, 0.3, r.eye_open) if a["Narrow_Eyes"]
                      else _lerp(0.45, 0.6, r.eye_open))
    eye_low = eye_up * _lerp(0.55, 0.8, r.eye_lower)
    eye_tilt = _lerp(-0.02, 0.05, r.eye_tilt)
    # Narrow eyes show less white: a larger share of the opening is iris.
    iris_r = (eye_up + eye_low) * _lerp(0.5, 0.6, r.iris_size) if not a["Narrow_Eyes"] \
        else (eye_up + eye_low) * _lerp(0.75, 0.9, r.iris_size)
    iris_colour = _IRIS_COLOURS[int(r.iris_colour * len(_IRIS_COLOURS))]
    lid_colour = _scale(hair if hair is not None else (40, 30, 25), 0.5)
    for side, part in ((-1, "r_eye"), (1, "l_eye")):
        s = np.linspace(0.0, 1.0, 20)
        u = side * (eye_x + eye_w * (2 * s - 1))  # inner corner to outer corner
        slope = eye_tilt * s
        upper_v = eye_v - slope - eye_up * np.sin(math.pi * s)
        lower_v = eye_v - slope + eye_low * np.sin(math.pi * s)
        eye = painter.polygon(head(np.concatenate([u, u[::-1]]),
                                   np.concatenate([upper_v, lower_v[::-1]])))
        painter.paint(part, eye, (240, 238, 232))
        iu, iv = _ellipse(side * eye_x + eye_w * 0.3 * (r.look_x - 0.5),
                          eye_v + 0.3 * (eye_low - eye_up) + 0.02 * (r.look_y - 0.5),
                          iris_r, iris_r, 32)
        painter.paint(part, painter.polygon(head(iu, iv)) & eye, iris_colour)
        pu, pv = _ellipse(iu.mean(), iv.mean(), iris_r * 0.45, iris_r * 0.45, 24)
        painter.paint(part, painter.polygon(head(pu, pv)) & eye, (12, 10, 10))
        painter.paint(part, painter.line(head(u, upper_v), head.width(0.03)), lid_colour)


def _paint_brows(painter: _Painter, g: _Geometry, r: SimpleNamespace, a: Mapping[str, bool],
                 hair: tuple[int, int, int] | None) -> None:
    """A tapering band arched over each eye, in the hair's colour (hair None: bald)."""
    brow_t = (_lerp(0.09, 0.12, r.brow_thickness) if a["Bushy_Eyebrows"]
              else _lerp(0.05, 0.07, r.brow_thickness) if a["Male"]
              else _lerp(0.03, 0.05, r.brow_thickness))
    arch = _lerp(0.08, 0.12, r.brow_arch) if a["Arched_Eyebrows"] else _lerp(0.01, 0.04,
                                                                              r.brow_arch)
    brow_gap = g.aspect * _lerp(0.15, 0.2, r.brow_gap)
    brow_len = _lerp(1.05, 1.25, r.brow_length) * g.eye_w
    brow_base = hair if hair is not None else (70, 55, 45)
    brow_colour = _scale(brow_base, 0.55 if brow_base[0] > 120 else 0.85)  # light hair: darker
    for side, part in ((-1, "r_brow"), (1, "l_brow")):
        s = np.linspace(0.0, 1.0, 16)
        u = side * (g.eye_x - brow_len + 2 * brow_len * s)
        centre = g.eye_v - brow_gap - arch * np.sin(math.pi * s ** 0.8)
        half = brow_t * (1.0 - 0.6 * s) / 2
        painter.paint(part, painter.polygon(g.head(np.concatenate([u, u[::-1]]),
                                                   np.concatenate([centre - half,
                                                                   (centre + half)[::-1]]))),
                      brow_colour)


def _paint_front_hair(painter: _Painter, g: _Geometry, r: SimpleNamespace,
                      a: Mapping[str, bool], strands: Image.Image) -> None:
    """The cap over the top of the head, down to the hairline or the fringe."""
    aspect = g.aspect
    side_v = -aspect * 0.15
    arc_u, arc_v = _ellipse(0.0, 0.0, 1.0 + g.hair_side, aspect + g.hair_top, 48,
                            math.pi - 0.12, 2 * math.pi + 0.12)
    line_u = np.linspace(1.02, -1.02, 41)
    if a["Bangs"]:
        centre_v = -aspect * _lerp(0.36, 0.42, r.hairline)
        line_v = centre_v + (side_v - centre_v) * np.abs(line_u) ** 4
        line_v = line_v + 0.025 * aspect * np.sin(line_u * _lerp(12, 22, r.fringe_wave))
    else:
        # Older men's hairlines recede.
        centre_v = -aspect * (_lerp(0.62, 0.82, r.hairline) if a["Male"] and not a["Young"]
                              else _lerp(0.6, 0.7, r.hairline))
        line_v = centre_v + (side_v - centre_v) * np.abs(line_u) ** 2.2
    cap = painter.polygon(g.head(np.concatenate([arc_u, line_u]),
                                 np.concatenate([arc_v, line_v])))
    painter.paint("hair", cap, strands)


def _paint_hat(painter: _Painter, g: _Geometry, r: SimpleNamespace) -> None:
    """A dome over the hair with a brim and a darker band above the brim."""
    head = g.head
    hat_colour = _hsv(r.hat_hue, 0.55, _lerp(0.2, 0.8, r.hat_light))
    brim_v = -g.aspect * 0.5
    du, dv = _ellipse(0.0, brim_v, 1.12 + g.hair_side * 0.5, g.hat_height, 40,
                      math.pi, 2 * math.pi)
    dome = painter.polygon(head(du, dv))
    bu, bv = _ellipse(0.0, brim_v, 1.5 + g.hair_side, 0.12, 40)
    brim = painter.polygon(head(bu, bv))
    painter.paint("hat", dome | brim, hat_colour)
    stripe = dome & painter.polygon(head([-3, 3, 3, -3], [brim_v - 0.22, brim_v - 0.22,
                                                        brim_v, brim_v]))
    painter.paint("hat", stripe, _scale(hat_colour, 0.6))


def _paint_mouth(painter: _Painter, head: _Frame, r: SimpleNamespace,
                 a: Mapping[str, bool], skin: tuple[int, int, int], mouth_v: float,
                 mouth_w: float, chin: float) -> None:
    """Lips, and for an open mouth a dark cavity with a strip of teeth between them.

    The upper lip is the same open or closed; opening moves the lower lip down by the
    opening and fills the gap with the cavity, so the closed mouth lies inside the open one
    and opening the mouth changes only pixels inside its (u_lip | mouth | l_lip) region.
    """
    upper = _lerp(0.05, 0.08, r.upper_lip)
    lower = _lerp(0.07, 0.11, r.lower_lip)
    curve = (_lerp(0.08, 0.14, r.smile_curve) if a["Smiling"]
             else _lerp(-0.015, 0.02, r.rest_curve))
    # In proportion to the mouth's width; at 64 px an open mouth is 3-6 pixels tall.
    opening = _lerp(0.34, 0.46, r.opening) * mouth_w * 2.4
    opening = min(opening, chin - 0.15 - lower - mouth_v)  # the open lip stays above the chin
    s = np.linspace(-1.0, 1.0, 41)
    u = mouth_w * s
    seam = mouth_v - curve * s ** 2  # where the lips meet; smiles lift the corners
    bow = (1 - s ** 2) ** 0.7 * (1 - 0.35 * np.exp(-(s / 0.15) ** 2))  # Cupid's bow
    gap = opening * (1 - s ** 2) ** 0.8 if a["Mouth_Slightly_Open"] else np.zeros_like(s)
    lower_top = seam + gap

    if a["Wearing_Lipstick"]:
        lip = _mix((196, 40, 64), (226, 64, 92), r.lip_tint)
    else:
        lip = _scale(_mix(skin, (180, 80, 90), _lerp(0.35, 0.55, r.lip_tint)), 0.82)
    if a["Mouth_Slightly_Open"]:
        cavity = painter.polygon(head(np.concatenate([u, u[::-1]]),
                                      np.concatenate([seam - 0.5 * upper * bow,
                                                      (lower_top + 0.4 * lower * bow)[::-1]])))
        painter.paint("mouth", cavity, (38, 12, 16))
        teeth_w = _lerp(0.55, 0.8, r.teeth_width)
        inner = np.abs(s) <= teeth_w
        teeth_depth = _lerp(0.15, 0.25, r.teeth_height) * gap[inner]
        teeth = painter.polygon(head(np.concatenate([u[inner], u[inner][::-1]]),
                                     np.concatenate([seam[inner] - 0.5 * upper,
                                                     (seam[inner] + teeth_depth)[::-1]])))
        painter.paint("mouth", teeth & cavity, (236, 230, 218))
    painter.paint("u_lip", painter.polygon(head(
        np.concatenate([u, u[::-1]]),
        np.concatenate([seam - upper * bow, seam[::-1]]))), _scale(lip, 0.86))
    lower_bow = (1 - s ** 2) ** 0.6
    painter.paint("l_lip", painter.polygon(head(
        np.concatenate([u, u[::-1]]),
        np.concatenate([lower_top, (lower_top + lower * lower_bow)[::-1]]))), lip)
    if not a["Mouth_Slightly_Open"]:
        # The dark line where closed lips meet, drawn over both (it is part of l_lip).
        painter.paint("l_lip", painter.line(head(u, seam), head.width(0.012)), _scale(lip, 0.5))


def _paint_glasses(painter: _Painter, head: _Frame, r: SimpleNamespace, eye_x: float,
                   eye_v: float, eye_w: float) -> None:
    """A tinted lens and a frame around each eye, a bridge, and temples to the ears."""
    half_u = eye_w * _lerp(1.35, 1.55, r.glasses_size)
    half_v = eye_w * _lerp(0.95, 1.2, r.glasses_size)
    frame_colour = [(20, 20, 22), (90, 40, 30), (180, 170, 150), (30, 40, 90)][
        int(r.frame_colour * 4)]
    width = head.width(_lerp(0.025, 0.05, r.glasses_style))
    round_rims = r.glasses_style < 0.5
    lenses = np.zeros((painter.m, painter.m), bool)
    frame = np.zeros_like(lenses)
    for side in (-1, 1):
        if round_rims:
            lu, lv = _ellipse(side * eye_x, eye_v, half_u, half_v, 40)
        else:  # a rounded rectangle: a superellipse
            t = np.linspace(0.0, 2 * math.pi, 48)
            lu = side * eye_x + half_u * np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.4
            lv = eye_v + half_v * np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.4
        lenses |= painter.polygon(head(lu, lv))
        frame |= painter.line(head(np.append(lu, lu[0]), np.append(lv, lv[0])), width)
    inner = eye_x - half_u
    frame |= painter.line(head(np.array([-inner, -inner * 0.3, inner * 0.3, inner]),
                               np.array([eye_v - 0.02, eye_v - 0.06, eye_v - 0.06,
                                         eye_v - 0.02])), width)
    for side in (-1, 1):
        frame |= painter.line(head(np.array([side * (eye_x + half_u), side * 1.0]),
                                   np.array([eye_v - 0.05, eye_v - 0.08])), width)
    tint = (200, 220, 235) if r.lens_tint < 0.6 else (60, 50, 40)
    painter.paint("eye_g", lenses, tint, alpha=int(_lerp(40, 90, r.lens_tint)), opaque=False)
    painter.paint("eye_g", frame, frame_colour)


def _light(canvas: Image.Image, r: SimpleNamespace, size: int, cx: float, cy: float,
           fw: float, aspect: float, textures: SimpleNamespace) -> np.ndarray:
    """Applies directional light and shading, upscales the face 2x, and adds grain.

    Light and shading are smooth, so they are computed on a small grid and applied at mask
    resolution; only the grain is per image pixel. Both are the same for paired faces, so
    they keep edits local.
    """
    m = canvas.size[0]
    g = 32
    y, x = (np.mgrid[0:g, 0:g] + 0.5) / g
    angle = 2 * math.pi * r.light_angle
    light = 1.0 + _lerp(0.08, 0.25, r.light_strength) * 2 * (
        math.cos(angle) * (x - 0.5) + math.sin(angle) * (y - 0.5))
    radius2 = ((x - cx) / (1.1 * fw)) ** 2 + ((y - cy) / (1.1 * fw * aspect)) ** 2
    shade = 1.0 - _lerp(0.05, 0.14, r.shading) * np.minimum(radius2, 1.6)
    blotches = np.random.default_rng(textures.blotches).standard_normal((8, 8))
    blotches = np.asarray(Image.fromarray(blotches.astype(np.float32), "F").resize(
        (g, g), Image.Resampling.BICUBIC))
    gain = (light * shade * (1.0 + 0.03 * blotches)).astype(np.float32)
    gain = np.asarray(Image.fromarray(gain, "F").resize((m, m), Image.Resampling.BILINEAR))
    lit = np.asarray(canvas, np.float32) * gain[..., None] + 0.5  # + 0.5: round, not truncate
    np.clip(lit, 0.0, 255.0, out=lit)
    image = Image.fromarray(lit.astype(np.uint8)).resize((size, size),
                                                         Image.Resampling.NEAREST)
    # Uniform grain with the given standard deviation, made from raw bytes through a lookup
    # table and added by PIL: the per-pixel work stays in C, at a few ms for 1024 px.
    sigma = _lerp(1.5, 4.0, r.grain)
    lut = np.round(128 + (np.arange(256) / 255 - 0.5) * math.sqrt(12) * sigma)
    noise = Image.frombytes("L", (size, size),
                            np.random.default_rng(textures.grain).bytes(size * size))
    noise = noise.point(lut.astype(int).tolist()).convert("RGB")
    return np.array(ImageChops.add(image, noise, 1.0, -128))  # a writable copy


def draw_face(index: int, size: int = 1024, seed: int = 0,
              overrides: Mapping[str, bool] | None = None,
              draws: Mapping[str, float] | None = None) -> SyntheticFace:
    """Draws synthetic face `index` of the folder generated with `seed`, at size x size.

    overrides forces attribute values (see OVERRIDABLE_ATTRIBUTES) and keeps every random
    choice as drawn, so the same face comes back with only that attribute changed (and the
    attributes that follow from it, e.g. forcing Bald drops the hair colour). draws forces
    random choices in [0, 1) by name (_DRAW_NAMES), e.g. {"opening": 0.5}: how far this face's
    mouth would open at the median.

    Attributes do not depend on size. Below about 128 px the smallest accessories (earrings,
    a pendant) can fall under one mask pixel and vanish from the parts; 256 px and up are
    drawn in full.
    """
    if size < 16 or size % 2:
        raise ValueError(f"size must be an even number >= 16 (masks are half size), got {size}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    rng = np.random.default_rng([seed, index])
    r = SimpleNamespace(**dict(zip(_DRAW_NAMES, rng.random(len(_DRAW_NAMES)).tolist())))
    for name, value in (draws or {}).items():
        if name not in _DRAW_NAMES or not 0.0 <= value < 1.0:
            raise ValueError(f"draws: {name}={value!r} is not a random choice in [0, 1); the "
                             f"choices are {', '.join(_DRAW_NAMES)}")
        setattr(r, name, float(value))
    # Each texture gets its own stream, seeded now: a texture that is not drawn (no hair)
    # must not shift the others.
    textures = SimpleNamespace(**dict(zip(("strands", "blotches", "grain"),
                                          rng.integers(2 ** 63, size=3).tolist())))
    attributes = _decide_attributes(r, overrides or {})
    image, painter = _render(r, attributes, size, textures)
    return SyntheticFace(image=image, parts=painter.part_masks(), attributes=attributes,
                         segmentation=painter.labels)


# Faces in each block of 10 go 8 to train, 1 to validation, 1 to test; validation and test
# come second and third so that even 3 faces cover all splits.
_SPLIT_PATTERN = ("train", "validation", "test") + ("train",) * 7
_SPLIT_RANGES = {  # original CelebA file numbers of each split, inclusive
    "train": (1, layout.LAST_TRAIN_FILE),
    "validation": (layout.LAST_TRAIN_FILE + 1, layout.LAST_VALIDATION_FILE),
    "test": (layout.LAST_VALIDATION_FILE + 1, 202599),
}


def celeba_files(num: int, seed: int = 0) -> list[str]:
    """Original CelebA file names of faces 0..num-1: unique, about 80/10/10 train/val/test.

    Face k's file depends only on k and seed, not on num.
    """
    splits = [_SPLIT_PATTERN[k % len(_SPLIT_PATTERN)] for k in range(num)]
    files: list[str] = [""] * num
    for stream, split in enumerate(layout.SPLITS):
        members = [k for k in range(num) if splits[k] == split]
        first, last = _SPLIT_RANGES[split]
        if len(members) > last - first + 1:
            raise ValueError(f"{num} faces need {len(members)} {split} files, but CelebA's "
                             f"{split} split has only {last - first + 1}")
        order = np.random.default_rng([seed, 2 ** 32 + stream]).permutation(last - first + 1)
        for k, offset in zip(members, order.tolist()):
            files[k] = f"{first + offset:06d}.jpg"
    return files


def counterpart_path(root: str | os.PathLike, attribute: str, k: int) -> str:
    """Path of face k's counterpart with `attribute` flipped (validation and test faces)."""
    return os.path.join(root, COUNTERPART_DIR, attribute, f"{k}.jpg")


def _write_face(job: tuple[str, int, int, int, bool]) -> tuple[bool, ...]:
    """Pool worker: writes face k's image and part files, and its counterparts when `paired`;
    returns its attribute row."""
    root, k, size, seed, paired = job
    face = draw_face(k, size, seed)
    Image.fromarray(face.image).save(layout.image_path(root, k), quality=95)
    if paired:
        for attribute in COUNTERPART_ATTRIBUTES:
            flipped = draw_face(k, size, seed,
                                overrides={attribute: not face.attributes[attribute]})
            # Saved exactly as the face is, so both go through the same JPEG loss.
            Image.fromarray(flipped.image).save(counterpart_path(root, attribute, k), quality=95)
    mask_dir = os.path.dirname(layout.mask_path(root, k, "skin"))
    os.makedirs(mask_dir, exist_ok=True)
    for part, mask in face.parts.items():
        rgb = Image.fromarray(mask.astype(np.uint8) * 255).convert("RGB")  # as the dataset's
        # Run-length zlib: as small as the default for 0/255 masks, and faster.
        rgb.save(layout.mask_path(root, k, part), compress_type=zlib.Z_RLE)
    return tuple(face.attributes[name] for name in layout.ATTRIBUTE_NAMES)


def _write_atomically(path: str, text: str) -> None:
    """Writes via a temporary file and a rename, so a reader never sees half a file."""
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(temporary, path)


def _prepare(out_dir: str) -> None:
    """Makes out_dir ready for a fresh layout, refusing a non-empty folder not made here."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise NotADirectoryError(f"{out_dir} exists and is not a folder")
    os.makedirs(out_dir, exist_ok=True)
    entries = os.listdir(out_dir)
    if entries and MARKER_FILE not in entries:
        raise FileExistsError(
            f"{out_dir} is not empty and is not a synthetic CelebAMask-HQ folder (it has no "
            f"{MARKER_FILE}); refusing to write into it. Choose an empty or new folder.")
    # An earlier synthetic layout: drop the annotation files first, so that an interrupted
    # rewrite leaves a folder the builder reports as incomplete, never a stale index.
    for name in (layout.ATTRIBUTE_FILE, layout.MAPPING_FILE):
        for stale in (name, name + ".tmp"):
            if os.path.exists(os.path.join(out_dir, stale)):
                os.remove(os.path.join(out_dir, stale))
    for name in (layout.IMAGE_DIR, layout.MASK_DIR, COUNTERPART_DIR):
        shutil.rmtree(os.path.join(out_dir, name), ignore_errors=True)


def generate(out_dir: str | os.PathLike, num: int, size: int = 1024, seed: int = 0,
             workers: int = 1) -> None:
    """Writes synthetic faces 0..num-1 to out_dir in CelebAMask-HQ's layout.

    Images are JPEG (quality 95), part files RGB 0/255 PNGs at half size; validation and
    test faces also get their counterparts (see COUNTERPART_ATTRIBUTES), JPEGs like the faces.
    The attribute and mapping files are written last. out_dir must be new, empty or an earlier
    synthetic folder (which is replaced).
    """
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    if size < 16 or size % 2:
        raise ValueError(f"size must be an even number >= 16 (masks are half size), got {size}")
    out_dir = os.fspath(out_dir)
    files = celeba_files(num, seed)  # fails early if num is too large
    _prepare(out_dir)
    _write_atomically(os.path.join(out_dir, MARKER_FILE),
                      f"Synthetic faces drawn by tfds_celebamask.synthetic, not CelebAMask-HQ.\n"
                      f"num={num} size={size} seed={seed}\n")
    os.makedirs(os.path.join(out_dir, layout.IMAGE_DIR))
    # Made even when every face is train: a folder without it predates counterparts.
    for attribute in COUNTERPART_ATTRIBUTES:
        os.makedirs(os.path.join(out_dir, COUNTERPART_DIR, attribute))
    jobs = [(out_dir, k, size, seed, layout.split_of(name) != "train")
            for k, name in enumerate(files)]
    if workers > 1:
        # spawn: safe even when the caller has threads (JAX, TensorFlow) running.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            rows = pool.map(_write_face, jobs, chunksize=max(1, min(16, num // (4 * workers))))
    else:
        rows = [_write_face(job) for job in jobs]

    lines = [str(num), " ".join(layout.ATTRIBUTE_NAMES)]
    lines += [f"{k}.jpg  " + " ".join("1" if v else "-1" for v in row)
              for k, row in enumerate(rows)]
    _write_atomically(os.path.join(out_dir, layout.ATTRIBUTE_FILE), "\n".join(lines) + "\n")
    lines = [f"{'idx':<11}{'orig_idx':<11}orig_file"]
    lines += [f"{k:<11}{int(name[:-4]) - 1:<11}{name}" for k, name in enumerate(files)]
    _write_atomically(os.path.join(out_dir, layout.MAPPING_FILE), "\n".join(lines) + "\n")


def _main(argv: Sequence[str]) -> None:
    from absl import flags

    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    # Import by name, not via __main__, so pool workers pickle the worker function by a
    # module path they can import.
    from tfds_celebamask import synthetic

    f = flags.FLAGS
    start = time.perf_counter()
    synthetic.generate(f.out, f.num, size=f.size, seed=f.seed, workers=f.workers)
    seconds = time.perf_counter() - start
    counts = {split: 0 for split in layout.SPLITS}
    for name in synthetic.celeba_files(f.num, f.seed):
        counts[layout.split_of(name)] += 1
    print(f"wrote {f.num} synthetic faces at {f.size} px to {f.out} (train {counts['train']}, "
          f"validation {counts['validation']}, test {counts['test']}) in {seconds:.1f} s "
          f"({f.num / seconds:.1f} faces/s)")


def _run_cli() -> None:
    from absl import app, flags

    # Defined here, not at import, so importing this module defines no global flags.
    flags.DEFINE_string("out", None, "Folder to write the layout to (new or empty).")
    flags.DEFINE_integer("num", None, "Number of faces.", lower_bound=1)
    flags.DEFINE_integer("size", 1024, "Image size in pixels (even); masks are half of it.")
    flags.DEFINE_integer("seed", 0, "Seed; face k depends only on the seed and k.")
    flags.DEFINE_integer("workers", 1, "Worker processes.", lower_bound=1)
    flags.mark_flags_as_required(["out", "num"])
    app.run(_main)


if __name__ == "__main__":
    _run_cli()
