"""Paper experiment: E2D2, SaGAN's two networks (AMN + SAN), with the SDE guide-mask loss (eq. 4).

    python main.py --config=configs/e2d2_sde.py --workdir=runs/e2d2_sde
"""

from configs import paper


def get_config():
    return paper.get_config("e2d2,sde")
