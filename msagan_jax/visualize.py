"""Sample grids like the paper's Figs. 3-5, as uint8 arrays and PNG files.

A grid has one row per face and the columns

    input | G(I, 0)  G(I, 1) | b(0)  b(1) | I_a(0)  I_a(1)

the edited image (Fig. 3), the attention mask (Fig. 4) and the attribute image (Fig. 5) for
each target value of the attribute, separated by thin white lines. Where the true edit is
known (synthetic faces), `truth_grid` sets edits beside it.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
from PIL import Image

GAP = 2  # the white lines between a grid's images, in pixels


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] images (..., 3) -> uint8."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(
        np.uint8)


def mask_to_uint8(masks: np.ndarray) -> np.ndarray:
    """[0, 1] masks (..., 1) -> uint8 gray RGB."""
    gray = np.clip(np.round(np.asarray(masks, np.float32) * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(gray, 3, axis=-1)


def tile(columns: list[np.ndarray], gap: int = GAP) -> np.ndarray:
    """uint8 columns, each (N, H, W, 3), side by side, separated by white lines of `gap`."""
    n, h, w, _ = columns[0].shape
    grid = np.full((n * h + (n - 1) * gap, len(columns) * w + (len(columns) - 1) * gap, 3), 255,
                   np.uint8)
    for j, column in enumerate(columns):
        for i in range(n):
            grid[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = column[i]
    return grid


def sample_grid(images: np.ndarray, outputs: np.ndarray, masks: np.ndarray,
                attribute_images: np.ndarray, gap: int = GAP) -> np.ndarray:
    """The grid (uint8, H', W', 3) of `images` (N, H, W, 3) in [-1, 1] and, for c = 0 and 1,
    `outputs` (2, N, H, W, 3), `masks` (2, N, H, W, 1) and `attribute_images` (2, N, H, W, 3)."""
    return tile([to_uint8(images), *to_uint8(outputs), *mask_to_uint8(masks),
                 *to_uint8(attribute_images)], gap)


def truth_grid(to_1: tuple[np.ndarray, ...], to_0: tuple[np.ndarray, ...],
               gap: int = GAP) -> np.ndarray:
    """Edits beside the truth: each row is input | edit | truth of a face edited to 1, then of
    a face edited to 0; `to_1` and `to_0` are (inputs, edits, truths), each (N, H, W, 3) in
    [-1, 1], the same N."""
    return tile([to_uint8(a) for a in (*to_1, *to_0)], gap)


def save_png(grid: np.ndarray, path: os.PathLike) -> pathlib.Path:
    """Writes a uint8 grid as a PNG (creating the folder)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path
