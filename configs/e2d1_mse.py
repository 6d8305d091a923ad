"""Paper experiment: E2D1, two encoders and one decoder, with the MSE guide-mask loss.

    python main.py --config=configs/e2d1_mse.py --workdir=runs/e2d1_mse
"""

from configs import paper


def get_config():
    return paper.get_config("e2d1,mse")
