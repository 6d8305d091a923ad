"""Paper experiment: E2D2, SaGAN's two networks (AMN + SAN), with the MSE guide-mask loss.

    python main.py --config=configs/e2d2_mse.py --workdir=runs/e2d2_mse
"""

from configs import paper


def get_config():
    return paper.get_config("e2d2,mse")
