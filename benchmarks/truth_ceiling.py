"""How much of the gap to the truth an editor can close at best on the synthetic faces.

    python -m benchmarks.truth_ceiling [--faces 400] [--resolution 64]

Opening a closed mouth has to invent what the closed face does not show: how far this mouth
opens and how much of its teeth shows (the synthetic drawer's `opening`, `teeth_height` and
`teeth_width` draws). No editor can know them, so no editor closes 100% of the opening gap.
This prints, for the test faces of `celebamask_synthetic/<resolution>` (seed 0; faces drawn at
4x, stored as JPEG and reduced exactly as the builder does), the gap closed (the evaluation's
metric, `evaluate.truth_sums`) by editors that know everything about each face except those
draws:

- median draws: the face redrawn with the attribute flipped and the unknown draws at 0.5;
- pixel median: the per-pixel median over a grid of the unknown draws (3^3 values); the
  gap-closed metric is an L1 error, and the per-pixel median is the L1-best guess;
- random draws: the face redrawn with the unknown draws at random (a second generator seeded
  by the face), as a generator that had learned the faces' distribution perfectly would
  sample them; the L1 metric charges a sample more than the median guess;
- the truth itself (100% by construction: checks the pipeline).

Closing a mouth invents nothing (the closed lips lie where the open ones were), so the
ceiling is measured both ways.

    python -m benchmarks.truth_ceiling --run runs/quickstart

also edits the same faces with a trained editor (`load_editor`) and splits its remaining error
by where it lies, in the true edited face's parts: the cavity and teeth (`mouth`), each lip,
and everywhere else.

    python -m benchmarks.truth_ceiling --run runs/quickstart --by Wearing_Lipstick

splits each editor's gap closed by an attribute of the input face (with it / without it).

    python -m benchmarks.truth_ceiling --run runs/quickstart --mask

splits the editor's error by its mask b inside the region where input and truth differ (the
evaluation's region): where b > 0.5 the error is I_a's drawing; where b <= 0.5 the input shows
through, and a mask too small for the edit would leave its error there.

    python -m benchmarks.truth_ceiling --run runs/quickstart --openness

fits how far each opened mouth opens: the face redrawn open at each of a grid of `opening`
draws (its other draws its own), the nearest redraw in L1 inside the widest opened mouth's
region is the fit, for the truth and the editor alike. The truth's own fit is the reference:
a draw the chin caps fits to the cap, so its mean lies below the draws' 0.5.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile

import numpy as np
from PIL import Image

from tfds_celebamask import synthetic
from tfds_celebamask.celebamask import layout
from tfds_celebamask.celebamask_synthetic import celebamask_synthetic_dataset_builder as builder

ATTRIBUTE = "Mouth_Slightly_Open"
UNKNOWN = ("opening", "teeth_height", "teeth_width")  # what a closed mouth does not show
GRID = (1 / 6, 1 / 2, 5 / 6)  # the middles of three equal bins of [0, 1)
PARTS = ("mouth", "u_lip", "l_lip")  # the guide mask's parts; `mouth` is cavity and teeth
OPENINGS = tuple(np.linspace(0.0, 0.999, 9).tolist())  # the grid an opened mouth is fitted on


def stored(face_image: np.ndarray, resolution: int, folder: str) -> np.ndarray:
    """A drawn image as the builder stores it: JPEG quality 95, then layout.load_image."""
    path = os.path.join(folder, "face.jpg")
    Image.fromarray(face_image).save(path, quality=95)
    return layout.load_image(path, resolution)


def editors(k: int, resolution: int, seed: int, folder: str) -> dict[str, np.ndarray]:
    """Face k as input, its truth, and the guesses of the two editors (uint8 images)."""
    size = 4 * resolution
    face = synthetic.draw_face(k, size, seed)
    flip = {ATTRIBUTE: not face.attributes[ATTRIBUTE]}
    draw = lambda draws: stored(  # noqa: E731
        synthetic.draw_face(k, size, seed, overrides=flip, draws=draws).image, resolution, folder)
    grid = [draw(dict(zip(UNKNOWN, values))) for values in itertools.product(GRID, repeat=3)]
    truth = synthetic.draw_face(k, size, seed, overrides=flip)
    labels = np.zeros((resolution, resolution), np.int8)  # 0 elsewhere, then PARTS' order
    for i, part in enumerate(PARTS, 1):
        if part in truth.parts:  # parts are drawn at half size: every other pixel is ours
            labels[truth.parts[part][::2, ::2]] = i
    return {"input": stored(face.image, resolution, folder),
            "truth": stored(truth.image, resolution, folder), "labels": labels,
            "median draws": draw(dict.fromkeys(UNKNOWN, 0.5)),
            "pixel median": np.median(np.stack(grid), axis=0).round().astype(np.uint8),
            "random draws": draw(dict(zip(UNKNOWN, np.random.default_rng([seed, k, 1]).random(3)))),
            "opening": not face.attributes[ATTRIBUTE], "attributes": face.attributes,
            "index": k}


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """mask grown by r pixels (a square neighbourhood)."""
    h, w = mask.shape
    padded, out = np.pad(mask, r), np.zeros_like(mask)
    for dy, dx in itertools.product(range(2 * r + 1), repeat=2):
        out |= padded[dy:dy + h, dx:dx + w]
    return out


def opening_grid(k: int, resolution: int, seed: int,
                 folder: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Face k with its mouth open at each of OPENINGS (its other draws its own), as stored, and
    the region an opening changes: the widest opened mouth's parts, 2 pixels wider."""
    size = 4 * resolution
    flip = {ATTRIBUTE: True}
    faces = [synthetic.draw_face(k, size, seed, overrides=flip, draws={"opening": g})
             for g in OPENINGS]
    region = np.zeros((resolution, resolution), bool)
    for part in PARTS:
        if part in faces[-1].parts:
            region |= faces[-1].parts[part][::2, ::2]
    return [stored(f.image, resolution, folder) for f in faces], _dilate(region, 2)


def fitted_opening(image: np.ndarray, grid: list[np.ndarray], region: np.ndarray) -> float:
    """The draw in OPENINGS whose redraw (from opening_grid) is nearest `image` in L1 inside
    `region`; of equal redraws (a capped opening), the narrowest."""
    errors = [np.abs(image.astype(np.float64) - g)[region].mean() for g in grid]
    return OPENINGS[int(np.argmin(errors))]


def print_openings(rows: list[dict], names: tuple[str, ...], resolution: int, seed: int) -> None:
    """How wide each of `names` opens the mouths it opens: the mean fitted draw and the share
    fitted to the narrowest."""
    opened = [r for r in rows if r["opening"]]
    with tempfile.TemporaryDirectory() as folder:
        grids = [opening_grid(r["index"], resolution, seed, folder) for r in opened]
    print(f"\nhow wide the {len(opened)} opened mouths open (the `opening` draw fitted on "
          f"{len(OPENINGS)} redraws):\n| images | mean fitted opening | fitted to the narrowest |"
          "\n| --- | --- | --- |")
    for name in names:
        fits = np.array([fitted_opening(r[name], *g) for r, g in zip(opened, grids)])
        print(f"| {name} | {fits.mean():.3f} | {np.mean(fits == OPENINGS[0]):.1%} |")


def add_edits(rows: list[dict], run: str, name: str = "editor") -> None:
    """Adds rows[i][name]: the run's editor's edit of each input to the opposite mouth, and
    rows[i][name + " mask"]: its mask b (S, S) in [0, 1]."""
    import msagan_jax  # noqa: PLC0415 (JAX only when an editor is scored)

    editor = msagan_jax.load_editor(run)
    for start in range(0, len(rows), 64):
        chunk = rows[start:start + 64]
        edited = editor.edit([r["input"] for r in chunk],
                             value=[float(r["opening"]) for r in chunk])
        for r, image, mask in zip(chunk, edited.images, edited.masks):
            r[name], r[f"{name} mask"] = np.asarray(image), np.asarray(mask)


def error_by_part(rows: list[dict], name: str, opening: bool) -> dict[str, float]:
    """The share of the editor's L1 error to the truth, and of the gap, in each part."""
    chosen = [r for r in rows if r["opening"] == opening]
    diff = lambda a, b: np.abs(a.astype(np.float64) - b).mean(-1) / 255.0  # noqa: E731
    error = np.stack([diff(r[name], r["truth"]) for r in chosen])
    gap = np.stack([diff(r["input"], r["truth"]) for r in chosen])
    labels = np.stack([r["labels"] for r in chosen])
    return {part: (error[labels == i].sum() / error.sum(), gap[labels == i].sum() / gap.sum())
            for i, part in enumerate(("elsewhere",) + PARTS)}


MASK_SPLIT = ("region, b > 0.5", "region, b <= 0.5", "outside the region")


def error_by_mask(rows: list[dict], name: str, opening: bool) -> dict[str, float]:
    """Where `name`'s mask lies in the region where input and truth differ (the evaluation's
    region, evaluate.differ_region), and the share of its L1 error to the truth in that region
    with the mask on (b > 0.5), with it off, and outside."""
    from msagan_jax import evaluate  # noqa: PLC0415 (JAX only when an editor is scored)

    chosen = [r for r in rows if r["opening"] == opening]
    x, t, e = (np.stack([r[key] for r in chosen]).astype(np.float64) / 255
               for key in ("input", "truth", name))
    b = np.stack([r[f"{name} mask"] for r in chosen])
    region = evaluate.differ_region(x, t)
    error = np.abs(e - t).mean(-1)
    parts = (region & (b > 0.5), region & (b <= 0.5), ~region)
    shares = {k: error[p].sum() / error.sum() for k, p in zip(MASK_SPLIT, parts)}
    return {"mean b in the region": float(b[region].mean()),
            "region with b <= 0.5": float(np.mean(b[region] <= 0.5)), **shares}


def print_mask_split(rows: list[dict], name: str) -> None:
    """error_by_mask for both directions, as a table."""
    heads = ("mean b in the region", "region with b <= 0.5") + MASK_SPLIT
    print("\nthe editor's mask b in the region where input and truth differ, and where its "
          "error to the truth lies:\n| direction | " + " | ".join(heads) + " |\n| --- |"
          + " --- |" * len(heads))
    for opening in (True, False):
        split = error_by_mask(rows, name, opening)
        cells = [f"{split[heads[0]]:.3f}"] + [f"{split[k]:.1%}" for k in heads[1:]]
        print(f"| {'opening' if opening else 'closing'} | " + " | ".join(cells) + " |")


def gap_closed(rows: list[dict], name: str, opening: bool) -> float:
    """The evaluation's gap closed (from `evaluate.truth_sums`) by images `name` of the faces
    edited one way: 1 - sum |edit - truth| / sum |input - truth|."""
    import jax  # noqa: PLC0415 (JAX only when scoring)

    from msagan_jax import evaluate  # noqa: PLC0415

    scale = lambda key: np.stack([r[key] for r in rows]).astype(np.float32) / 127.5 - 1  # noqa: E731
    target = np.array([float(r["opening"]) for r in rows], np.float32)
    sums = jax.jit(evaluate.truth_sums)(scale("input"), scale(name), scale("truth"),
                                        np.ones_like(target), target)
    d = "1" if opening else "0"
    return 1.0 - float(np.sum(sums[f"err_l1_to_{d}"])) / float(np.sum(sums[f"gap_l1_to_{d}"]))


def print_tables(rows: list[dict], names: tuple[str, ...], editor: str | None) -> None:
    """The gap closed by each of `names`, and where `editor`'s error lies (if given)."""
    print("| editor | opening (edited to 1) | closing (edited to 0) |\n| --- | --- | --- |")
    for name in names:
        print(f"| {name} | {gap_closed(rows, name, True):.1%} | "
              f"{gap_closed(rows, name, False):.1%} |")
    if editor:
        print("\nwhere the editor's error to the truth lies (share of its error / of the gap), "
              "in the true edited face's parts:\n| direction | "
              + " | ".join(("elsewhere",) + PARTS) + " |\n| --- |" + " --- |" * 4)
        for opening in (True, False):
            shares = error_by_part(rows, editor, opening)
            print(f"| {'opening' if opening else 'closing'} | " + " | ".join(
                f"{e:.0%} / {g:.0%}" for e, g in shares.values()) + " |")


def print_split(rows: list[dict], names: tuple[str, ...], attribute: str) -> None:
    """Each of `names`' gap closed over the faces with `attribute` and over those without."""
    print(f"\ngap closed by {attribute} of the input face (faces opened / closed):\n"
          "| editor | faces | opening | closing |\n| --- | --- | --- | --- |")
    for name in names:
        for value in (True, False):
            part = [r for r in rows if r["attributes"][attribute] == value]
            counts = [sum(r["opening"] == o for r in part) for o in (True, False)]
            cells = [f"{gap_closed(part, name, o):.1%}" if n else "-"
                     for o, n in zip((True, False), counts)]
            print(f"| {name}, {'with' if value else 'without'} | {counts[0]} / {counts[1]} | "
                  + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=400,
                        help="test faces, the first ones (celebamask_synthetic/64 has 400)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--run", help="a trained run's workdir: score its editor too")
    parser.add_argument("--by", choices=synthetic.MODELED_ATTRIBUTES, metavar="ATTRIBUTE",
                        help="also split the gap closed by this attribute of the input face")
    parser.add_argument("--openness", action="store_true",
                        help="with --run: fit how wide the editor and the truth open each mouth")
    parser.add_argument("--mask", action="store_true",
                        help="with --run: split the editor's error by where its mask lies")
    args = parser.parse_args(argv)
    for flag in ("openness", "mask"):
        if getattr(args, flag) and not args.run:
            parser.error(f"--{flag} needs --run")
    config = builder.synthetic_config(args.resolution)
    files = synthetic.celeba_files(config.num_faces, config.seed)
    test = [k for k in range(config.num_faces)
            if layout.split_of(files[k]) == "test"][:args.faces]
    with tempfile.TemporaryDirectory() as folder:
        rows = [editors(k, args.resolution, config.seed, folder) for k in test]
    opened = sum(r["opening"] for r in rows)
    print(f"celebamask_synthetic/{config.name}, test faces {len(rows)} ({opened} opened, "
          f"{len(rows) - opened} closed); gap to the truth closed:")
    names = ("median draws", "pixel median", "random draws", "truth")
    if args.run:
        add_edits(rows, args.run, name=f"editor of {args.run}")
        names = (f"editor of {args.run}",) + names
    print_tables(rows, names, names[0] if args.run else None)
    if args.by:
        print_split(rows, names, args.by)
    if args.mask:
        print_mask_split(rows, names[0])
    if args.openness:
        print_openings(rows, ("truth", names[0]), args.resolution, config.seed)


if __name__ == "__main__":
    main()
