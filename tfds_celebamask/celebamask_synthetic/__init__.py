"""The `celebamask_synthetic` TFDS dataset: synthetic faces through the `celebamask` builder."""
