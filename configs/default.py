"""Default config: every field, with what it means. Paper configs change a few of them.

    python main.py --config=configs/default.py --config.dataset=celebamask_synthetic/64 \
        --config.image_size=64
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    """The default configuration: the paper's data at 128 px."""
    config = ml_collections.ConfigDict()
    # Data.
    config.dataset = "celebamask/128"  # TFDS name/config; celebamask_synthetic/64 needs no download
    config.data_dir = ""  # TFDS data dir; "" means $TFDS_DATA_DIR or ~/tensorflow_datasets
    config.attribute = "Mouth_Slightly_Open"  # the CelebA attribute the editor learns to flip
    config.guide_mask = ""  # guide-mask region; "" the attribute's own, "none" for none
    config.image_size = 128  # pixels; must equal the dataset's resolution
    config.batch_size = 16  # global batch, split over all devices of all processes
    config.input_workers = 0  # grain worker processes; 0 reads in the training process
    config.seed = 0  # seeds the data order and flips (and, later, the model)
    return config
