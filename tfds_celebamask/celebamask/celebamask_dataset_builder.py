"""The `celebamask` TFDS builder: CelebAMask-HQ faces with attributes, parts and guide masks.

Build it from the manual download with either of

    tfds build celebamask --imports tfds_celebamask --manual_dir DIR       # from the repo root
    cd tfds_celebamask/celebamask && tfds build --manual_dir DIR           # inside this folder

Configs are named by resolution: `celebamask/64`, `celebamask/128` (default, the paper's) and
`celebamask/256`. The files are array_record, so `tfds.data_source` reads them (random access,
no TensorFlow).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from . import layout, pool

_DESCRIPTION = """\
CelebAMask-HQ (Lee et al., CVPR 2020): 30,000 CelebA-HQ faces with 40 CelebA attributes and
hand-drawn masks of 18 face parts. Each example holds the face resized to the config's
resolution, its attributes by name, a 19-class label map painted in the dataset's own order,
and binary guide masks (unions of part files) for region-local attribute editing (MSaGAN).
Splits follow CelebA's official partition of each face's original CelebA file.
"""

_CITATION = """\
@inproceedings{CelebAMask-HQ,
  title={MaskGAN: Towards Diverse and Interactive Facial Image Manipulation},
  author={Lee, Cheng-Han and Liu, Ziwei and Wu, Lingyun and Luo, Ping},
  booktitle={IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  year={2020}
}
"""

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
CelebAMask-HQ cannot be downloaded by a script. Request it from
https://github.com/switchablenorms/CelebAMask-HQ (Google Drive or Baidu links there),
unzip CelebAMask-HQ.zip, and pass the unzipped `CelebAMask-HQ/` folder as the manual dir
(`--manual_dir DIR`, or place it at `<data_dir>/downloads/manual/`). It must hold:

  CelebA-HQ-img/                      30,000 JPEG faces, 0.jpg ... 29999.jpg
  CelebAMask-HQ-mask-anno/            part masks, 0/ ... 14/, e.g. 0/00000_u_lip.png
  CelebAMask-HQ-attribute-anno.txt    the 40 CelebA attributes of each face
  CelebA-HQ-to-CelebA-mapping.txt     each face's original CelebA file (for the splits)
"""

@dataclasses.dataclass
class CelebAMaskConfig(tfds.core.BuilderConfig):
    """A config of the builder: the square resolution every image and mask is stored at."""

    resolution: int = 128


def _config(resolution: int) -> CelebAMaskConfig:
    return CelebAMaskConfig(
        name=str(resolution),
        resolution=resolution,
        description=f"Faces, label maps and guide masks at {resolution}x{resolution}.",
    )


def features(resolution: int) -> tfds.features.FeaturesDict:
    """The dataset's schema (the project's public contract; see the README)."""
    r = resolution
    return tfds.features.FeaturesDict({
        # Raw pixels (the array_record files are zstd-compressed as a whole): decoding a PNG
        # costs the input pipeline more than everything else it does per image.
        "image": tfds.features.Tensor(shape=(r, r, 3), dtype=np.uint8,
                                      encoding=tfds.features.Encoding.BYTES,
                                      doc="RGB face, resized from 1024 px"),
        "attributes": tfds.features.FeaturesDict(
            {name: tfds.features.Scalar(dtype=np.bool_) for name in layout.ATTRIBUTE_NAMES}),
        "segmentation": tfds.features.Image(
            shape=(r, r, 1), encoding_format="png", use_colormap=True,
            doc=f"Label map, 0 = background, i + 1 = {list(layout.PART_NAMES)}[i]."),
        "guide_masks": tfds.features.FeaturesDict({
            name: tfds.features.Image(
                shape=(r, r, 1), encoding_format="png",
                doc=f"1 inside {' | '.join(parts)}, else 0.")
            for name, parts in layout.GUIDE_MASK_PARTS.items()}),
        "index": tfds.features.Scalar(dtype=np.int32, doc="k of CelebA-HQ-img/<k>.jpg"),
        "celeba_file": tfds.features.Text(doc="The original CelebA file, e.g. 162771.jpg"),
    })


class Builder(tfds.core.GeneratorBasedBuilder):
    """CelebAMask-HQ for facial attribute editing."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: image, attributes, segmentation, guide masks."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    BUILDER_CONFIGS = [_config(64), _config(128), _config(256)]
    DEFAULT_CONFIG_NAME = "128"
    DESCRIPTION = _DESCRIPTION

    def __init__(self, *, file_format: str | None = None, **kwargs: Any):
        # array_record, unless asked otherwise: tfds.data_source needs random access.
        super().__init__(file_format=file_format or "array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=self.DESCRIPTION,
            features=self._features(),
            homepage="https://github.com/switchablenorms/CelebAMask-HQ",
            citation=_CITATION,
        )

    def _features(self) -> tfds.features.FeaturesDict:
        """The schema at this config's resolution; a builder that stores more extends it."""
        return features(self.builder_config.resolution)

    def _face_encoder(self) -> pool.EncodeFn:
        """Makes each example from a face, in the worker processes; it goes with `_features`.

        Must return a module-level function: the workers receive it pickled.
        """
        return pool.encode_face

    def _source_dir(self, dl_manager: tfds.download.DownloadManager) -> str:
        """The folder holding the CelebAMask-HQ layout: the manual dir, checked."""
        try:
            root = os.fspath(dl_manager.manual_dir)
        except AssertionError as e:  # TFDS's own "manual dir does not exist or is empty"
            raise AssertionError(f"{e}\n\nMissing: everything ({', '.join(layout.MANUAL_ENTRIES)})"
                                 ) from None
        missing = layout.missing_entries(root)
        if missing:
            raise AssertionError(
                f"The manual dir {root} lacks {', '.join(missing)}.\n\n"
                f"{MANUAL_DOWNLOAD_INSTRUCTIONS}")
        return root

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = self._source_dir(dl_manager)
        records = layout.read_index(root)
        by_split = {split: [r for r in records if r.split == split] for split in layout.SPLITS}
        # A partial download may lack a split; TFDS refuses empty ones.
        by_split = {split: rs for split, rs in by_split.items() if rs}
        reader = pool.FaceReader(root, self.builder_config.resolution, len(records),
                                 num_splits=len(by_split), encode=self._face_encoder())
        return {split: self._generate_examples(reader, rs) for split, rs in by_split.items()}

    def _generate_examples(self, reader: pool.FaceReader, records: list[layout.FaceRecord]):
        yield from reader.encode(records)
