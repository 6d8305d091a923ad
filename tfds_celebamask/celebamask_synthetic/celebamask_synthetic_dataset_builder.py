"""The `celebamask_synthetic` builder: faces drawn by `tfds_celebamask.synthetic`, no download.

It writes a synthetic CelebAMask-HQ folder (the exact layout of the manual download) into the
TFDS download dir, then reads it with the `celebamask` builder's own code, so the synthetic
dataset has the same schema, splits and guide masks as the real one:

    tfds build celebamask_synthetic/64 --imports tfds_celebamask

Configs `64`, `128`, `256` use a fixed face count and source size; a config named
`<resolution>_n<faces>_s<seed>` (e.g. `64_n200_s0`) gives any other count and seed.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

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


class Builder(celebamask.Builder):
    """Synthetic CelebAMask-HQ faces, built through the `celebamask` builder's code."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = None
    BUILDER_CONFIGS = [synthetic_config(r) for r in sorted(_STANDARD)]
    DEFAULT_CONFIG_NAME = "64"
    DESCRIPTION = ("Synthetic faces drawn by tfds_celebamask.synthetic in the CelebAMask-HQ "
                   "layout, read by the celebamask builder's code.\n"
                   + celebamask.Builder.DESCRIPTION)

    def __init__(self, *, config: Any = None, **kwargs: Any):
        # Any face count or seed by name, so tfds.data_source("celebamask_synthetic/64_n200_s0")
        # finds the config that built it.
        if isinstance(config, str) and config not in {c.name for c in self.BUILDER_CONFIGS}:
            config = _parse_config(config)
        super().__init__(config=config, **kwargs)

    def _source_dir(self, dl_manager: tfds.download.DownloadManager) -> str:
        """Draws the faces into the download dir (once) and returns that folder."""
        config = self.builder_config
        root = os.path.join(os.fspath(dl_manager.download_dir), "celebamask_synthetic",
                            f"faces_n{config.num_faces}_size{config.source_size}"
                            f"_s{config.seed}")
        # The annotation files are written last: with them, the folder is complete.
        if layout.missing_entries(root):
            synthetic.generate(root, config.num_faces, size=config.source_size,
                               seed=config.seed,
                               workers=pool.worker_count(config.num_faces))
        return root


def build_synthetic(data_dir: str | None = None, resolution: int = 64,
                    num_faces: int | None = None, seed: int = 0) -> tfds.core.DatasetBuilder:
    """Builds (once) the synthetic dataset and returns its builder; no manual step.

    The dataset's name is `celebamask_synthetic/<builder.builder_config.name>`.
    """
    builder = Builder(config=synthetic_config(resolution, num_faces, seed), data_dir=data_dir)
    builder.download_and_prepare()
    return builder
