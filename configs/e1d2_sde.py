"""Paper experiment: E1D2, one shared encoder and two decoders,
with the SDE guide-mask loss (eq. 4).

    python main.py --config=configs/e1d2_sde.py --workdir=runs/e1d2_sde
"""

from configs import default


def get_config():
    """configs/default.py with this structure and mask loss."""
    config = default.get_config()
    config.structure = "e1d2"
    config.mask_loss = "sde"
    return config
