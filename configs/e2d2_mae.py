"""Paper experiment: E2D2, SaGAN's two networks (AMN + SAN), with the MAE guide-mask loss.

    python main.py --config=configs/e2d2_mae.py --workdir=runs/e2d2_mae
"""

from configs import paper


def get_config():
    return paper.get_config("e2d2,mae")
