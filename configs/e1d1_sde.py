"""Paper experiment: E1D1, MSaGAN's single multitask network,
with the SDE guide-mask loss (eq. 4).

MSaGAN as the paper proposes it, and the defaults; this file names it.

    python main.py --config=configs/e1d1_sde.py --workdir=runs/e1d1_sde
"""

from configs import default


def get_config():
    """configs/default.py with this structure and mask loss."""
    config = default.get_config()
    config.structure = "e1d1"
    config.mask_loss = "sde"
    return config
