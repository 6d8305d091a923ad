"""The CelebAMask-HQ dataset for TFDS: its file layout, the builders, and synthetic faces.

Importing this package registers the `celebamask` builder (the real download) and the
`celebamask_synthetic` builder (faces drawn by `tfds_celebamask.synthetic`).
"""

from tfds_celebamask.celebamask import layout
from tfds_celebamask.celebamask.celebamask_dataset_builder import Builder as CelebAMask
from tfds_celebamask.celebamask_synthetic.celebamask_synthetic_dataset_builder import (
    Builder as CelebAMaskSynthetic, build_synthetic, synthetic_config)

__all__ = ["CelebAMask", "CelebAMaskSynthetic", "build_synthetic", "layout", "synthetic_config"]
