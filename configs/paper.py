"""The paper's 16 models: configs/default.py with one structure and one guide-mask loss.

    python main.py --config=configs/paper.py:e1d1,sde --workdir=runs/e1d1_sde
    python main.py --config=configs/e1d1_sde.py --workdir=runs/e1d1_sde      # the same

Structures (paper Fig. 2): e2d2 (SaGAN), e2d1, e1d2, e1d1 (MSaGAN). Mask losses (eqs. 4-5):
none, mae, mse, sde. The defaults are the paper's recipe: 128 px, batch 16, 8 epochs, no flips.
"""

from configs import default


def get_config(arg: str = "e1d1,sde"):
    """configs/default.py with `arg` = "<structure>,<mask loss>"."""
    structure, _, mask_loss = arg.partition(",")
    config = default.get_config()
    config.structure = structure
    config.mask_loss = mask_loss
    return config
