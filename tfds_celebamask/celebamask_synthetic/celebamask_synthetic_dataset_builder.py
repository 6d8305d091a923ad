"""The `celebamask_synthetic` builder: faces drawn by `tfds_celebamask.synthetic`, no download.

It writes a synthetic CelebAMask-HQ folder (the exact layout of the manual download) into the
TFDS download dir, then reads it with the `celebamask` builder's own code, so the synthetic
dataset has the real one's schema, splits and guide masks, plus one feature the real data
cannot have: `counterparts`, the same face with one attribute flipped, for the validation and
test examples (see `features`):

    tfds build celebamask_synthetic/64 --imports tfds_celebamask

Configs `64`, `128`, `256` use a fixed face count and source size; a config named
`<resolution>_n<faces>_s<seed>` (e.g. `64_n200_s0`) gives any other count and seed.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from tfds_celebamask import synthetic
from tfds_celebamask.celebamask import celebamask_dataset_builder as celebamask
from tfds_celebamask.celebamask import layout, pool


@dataclasses.dataclass
class SyntheticConfig(celebamask.CelebAMaskConfig):
    """Resolution of the stored examples, plus how many faces to draw and from which seed."""

    num_faces: int = 4000
    seed: int = 0
    source_size: int = 256  # faces are drawn at this size (parts at half), like 1024 for real


# Faces are drawn at 4x the stored size (2x for the parts), as CelebAMask-HQ's 1024 px faces
# and 512 px parts are reduced, so the builder's resizing is exercised the same way.
_STANDARD = {64: 4000, 128: 10000, 256: 10000}
_NAME = re.compile(r"^(\d+)(?:_n(\d+))?(?:_s(\d+))?$")


def synthetic_config(resolution: int, num_faces: int | None = None,
                     seed: int = 0) -> SyntheticConfig:
    """The config for `resolution` (64, 128 or 256), with a face count and a seed."""
    if resolution not in _STANDARD:
        raise ValueError(f"resolution must be one of {sorted(_STANDARD)}, got {resolution}")
    standard = num_faces is None or num_faces == _STANDARD[resolution]
    num_faces = _STANDARD[resolution] if num_faces is None else num_faces
    if num_faces < 3:
        raise ValueError(f"num_faces must be at least 3 (one per split), got {num_faces}")
    name = str(resolution) if standard and seed == 0 else f"{resolution}_n{num_faces}_s{seed}"
    return SyntheticConfig(
        name=name, resolution=resolution, num_faces=num_faces, seed=seed,
        source_size=4 * resolution,
        description=f"{num_faces} synthetic faces (seed {seed}) at {resolution}x{resolution}.")


def _parse_config(name: str) -> SyntheticConfig:
    match = _NAME.match(name)
    if not match:
        raise ValueError(f"unknown celebamask_synthetic config {name!r}: use 64, 128, 256 or "
                         "<resolution>_n<faces>_s<seed>, e.g. 64_n200_s0")
    resolution, num_faces, seed = match.groups()
    return synthetic_config(int(resolution), int(num_faces) if num_faces else None,
                            int(seed or 0))


def features(resolution: int) -> tfds.features.FeaturesDict:
    """The `celebamask` schema plus `counterparts`: attribute -> (n, r, r, 3) uint8 images.

    n is 1 for validation and test examples (the face redrawn with that attribute flipped,
    read exactly as `image` is) and 0 for train ones, which hold no pairs to learn from.
    """
    r = resolution
    schema = dict(celebamask.features(r).items())
    schema["counterparts"] = tfds.features.FeaturesDict({
        attribute: tfds.features.Tensor(
            shape=(None, r, r, 3), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES,
            doc=f"The face with {attribute} flipped, as `image`; 1 in validation and test, "
                f"0 in train")
        for attribute in synthetic.COUNTERPART_ATTRIBUTES})
    return tfds.features.FeaturesDict(schema)


def encode_face(root: str, record: layout.FaceRecord, resolution: int) -> dict[str, Any]:
    """`pool.encode_face` plus the face's counterparts (runs in the builder's workers)."""
    example = pool.encode_face(root, record, resolution)
    paired = record.split != "train"
    example["counterparts"] = {
        # load_image, as layout.read_face reads `image`: a counterpart differs from its face
        # only by what the flip drew, never by how it was read.
        attribute: (layout.load_image(synthetic.counterpart_path(root, attribute, record.index),
                                      resolution)[None] if paired
                    else np.zeros((0, resolution, resolution, 3), np.uint8))
        for attribute in synthetic.COUNTERPART_ATTRIBUTES}
    return example


class Builder(celebamask.Builder):
    """Synthetic CelebAMask-HQ faces, built through the `celebamask` builder's code."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "First release.",
        "1.1.0": "validation and test examples hold paired counterparts for 6 attributes",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = None
    BUILDER_CONFIGS = [synthetic_config(r) for r in sorted(_STANDARD)]
    DEFAULT_CONFIG_NAME = "64"
    DESCRIPTION = ("Synthetic faces drawn by tfds_celebamask.synthetic in the CelebAMask-HQ "
                   "layout, read by the celebamask builder's code. Validation and test "
                   "examples also hold `counterparts`: the same face with one of "
                   f"{', '.join(synthetic.COUNTERPART_ATTRIBUTES)} flipped.\n"
                   + celebamask.Builder.DESCRIPTION)

    def __init__(self, *, config: Any = None, **kwargs: Any):
        # Any face count or seed by name, so tfds.data_source("celebamask_synthetic/64_n200_s0")
        # finds the config that built it.
        if isinstance(config, str) and config not in {c.name for c in self.BUILDER_CONFIGS}:
            config = _parse_config(config)
        super().__init__(config=config, **kwargs)

    def _features(self) -> tfds.features.FeaturesDict:
        return features(self.builder_config.resolution)

    def _face_encoder(self) -> pool.EncodeFn:
        return encode_face

    def _source_dir(self, dl_manager: tfds.download.DownloadManager) -> str:
        """Draws the faces into the download dir (once) and returns that folder."""
        config = self.builder_config
        root = os.path.join(os.fspath(dl_manager.download_dir), "celebamask_synthetic",
                            f"faces_n{config.num_faces}_size{config.source_size}"
                            f"_s{config.seed}")
        # The annotation files are written last: with them, the folder is complete. A folder
        # drawn before counterparts existed (builder 1.0.0) lacks their folders: drawn again.
        if layout.missing_entries(root) or not all(
                os.path.isdir(os.path.join(root, synthetic.COUNTERPART_DIR, attribute))
                for attribute in synthetic.COUNTERPART_ATTRIBUTES):
            synthetic.generate(root, config.num_faces, size=config.source_size,
                               seed=config.seed,
                               workers=pool.worker_count(config.num_faces))
        return root


def build_synthetic(data_dir: str | None = None, resolution: int = 64,
                    num_faces: int | None = None, seed: int = 0) -> tfds.core.DatasetBuilder:
    """Builds (once) the synthetic dataset and returns its builder; no manual step.

    The dataset's name is `celebamask_synthetic/<builder.builder_config.name>`.
    """
    # By name: TFDS refuses a config object that is not the class's own under a standard
    # name (64, 128, 256), and the name finds either kind.
    builder = Builder(config=synthetic_config(resolution, num_faces, seed).name,
                      data_dir=data_dir)
    builder.download_and_prepare()
    return builder
