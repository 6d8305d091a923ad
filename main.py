"""MSaGAN in JAX: the command line.

    python main.py --config=configs/default.py [--config.FIELD=VALUE ...]

Today it prepares the configured data: a synthetic dataset is built on the spot, the real one
gets the exact `tfds build` command; then it reports the splits. Training is added by the
training issue on top of this.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from msagan_jax import input_pipeline

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/default.py.",
                                lock_config=True)
flags.mark_flags_as_required(["config"])


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        info = input_pipeline.prepare(FLAGS.config)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    splits = ", ".join(f"{name} {split.num_examples}" for name, split in info.splits.items())
    logging.info("%s in %s: %s", info.full_name, info.data_dir, splits)
    print(f"{info.full_name}: {splits}")


if __name__ == "__main__":
    app.run(main)
