"""Paper experiment: E1D2, one encoder and two decoders, with the SDE guide-mask loss (eq. 4).

    python main.py --config=configs/e1d2_sde.py --workdir=runs/e1d2_sde
"""

from configs import paper


def get_config():
    return paper.get_config("e1d2,sde")
