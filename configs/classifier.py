"""The judge: a ResNet-50 attribute classifier for the paper's attribute-editing accuracy.

    python main.py --config=configs/classifier.py --workdir=runs/judge

Trains on the train split of the configured dataset and attribute (50 epochs, as the paper),
then writes validation and test accuracy to runs/judge/results.json (paper: 93.42% on
Mouth_Slightly_Open). Editors in runs/<name> find it through judge.workdir="../judge".
"""

from configs import default


def get_config():
    """configs/default.py with what_to_train="judge"; the judge.* fields describe it."""
    config = default.get_config()
    config.what_to_train = "judge"
    return config
