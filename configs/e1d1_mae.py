"""Paper experiment: E1D1, MSaGAN's single multitask network,
with the MAE guide-mask loss.

    python main.py --config=configs/e1d1_mae.py --workdir=runs/e1d1_mae
"""

from configs import default


def get_config():
    """configs/default.py with this structure and mask loss."""
    config = default.get_config()
    config.structure = "e1d1"
    config.mask_loss = "mae"
    return config
