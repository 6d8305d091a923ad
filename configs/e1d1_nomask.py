"""Paper experiment: E1D1, MSaGAN's single multitask network, with no guide-mask loss.

    python main.py --config=configs/e1d1_nomask.py --workdir=runs/e1d1_nomask
"""

from configs import paper


def get_config():
    return paper.get_config("e1d1,none")
