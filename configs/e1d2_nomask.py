"""Paper experiment: E1D2, one shared encoder and two decoders,
with no guide-mask loss (SaGAN's objective).

    python main.py --config=configs/e1d2_nomask.py --workdir=runs/e1d2_nomask
"""

from configs import default


def get_config():
    """configs/default.py with this structure and mask loss."""
    config = default.get_config()
    config.structure = "e1d2"
    config.mask_loss = "none"
    return config
