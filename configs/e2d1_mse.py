"""Paper experiment: E2D1, two encoders and one shared decoder,
with the MSE guide-mask loss.

    python main.py --config=configs/e2d1_mse.py --workdir=runs/e2d1_mse
"""

from configs import default


def get_config():
    """configs/default.py with this structure and mask loss."""
    config = default.get_config()
    config.structure = "e2d1"
    config.mask_loss = "mse"
    return config
