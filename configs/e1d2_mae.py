"""Paper experiment: E1D2, one encoder and two decoders, with the MAE guide-mask loss.

    python main.py --config=configs/e1d2_mae.py --workdir=runs/e1d2_mae
"""

from configs import paper


def get_config():
    return paper.get_config("e1d2,mae")
