"""Paper experiment: E1D1, MSaGAN's single multitask network, with the SDE guide-mask loss (eq. 4).

MSaGAN as the paper proposes it, and the defaults.

    python main.py --config=configs/e1d1_sde.py --workdir=runs/e1d1_sde
"""

from configs import paper


def get_config():
    return paper.get_config("e1d1,sde")
