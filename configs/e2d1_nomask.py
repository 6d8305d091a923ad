"""Paper experiment: E2D1, two encoders and one shared decoder,
with no guide-mask loss (SaGAN's objective).

    python main.py --config=configs/e2d1_nomask.py --workdir=runs/e2d1_nomask
"""

from configs import default


def get_config():
    """configs/default.py with this structure and mask loss."""
    config = default.get_config()
    config.structure = "e2d1"
    config.mask_loss = "none"
    return config
