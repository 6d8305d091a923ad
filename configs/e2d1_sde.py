"""Paper experiment: E2D1, two encoders and one decoder, with the SDE guide-mask loss (eq. 4).

    python main.py --config=configs/e2d1_sde.py --workdir=runs/e2d1_sde
"""

from configs import paper


def get_config():
    return paper.get_config("e2d1,sde")
