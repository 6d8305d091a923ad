"""Paper experiment: E2D2, SaGAN's two networks (AMN and SAN),
with no guide-mask loss (SaGAN's objective).

    python main.py --config=configs/e2d2_nomask.py --workdir=runs/e2d2_nomask
"""

from configs import default


def get_config():
    """configs/default.py with this structure and mask loss."""
    config = default.get_config()
    config.structure = "e2d2"
    config.mask_loss = "none"
    return config
