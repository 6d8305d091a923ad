"""The `celebamask` TFDS dataset folder (`tfds build` can run inside it)."""
