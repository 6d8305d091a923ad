"""Paper experiment: E1D1, MSaGAN's single multitask network,
with no guide-mask loss (SaGAN's objective).

    python main.py --config=configs/e1d1_nomask.py --workdir=runs/e1d1_nomask
"""

from configs import default


def get_config():
    """configs/default.py with this structure and mask loss."""
    config = default.get_config()
    config.structure = "e1d1"
    config.mask_loss = "none"
    return config
