"""Paper experiment: E1D1, MSaGAN's single multitask network, with the MSE guide-mask loss.

    python main.py --config=configs/e1d1_mse.py --workdir=runs/e1d1_mse
"""

from configs import paper


def get_config():
    return paper.get_config("e1d1,mse")
