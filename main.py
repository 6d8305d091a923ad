"""MSaGAN in JAX: the command line.

    python main.py --config=configs/quickstart.py --workdir=runs/quickstart
    python main.py --config=configs/e1d1_sde.py --workdir=runs/e1d1_sde [--config.FIELD=VALUE]

Trains the configured editor in --workdir, resuming from its latest checkpoint. A synthetic
dataset that is not built yet is built on the spot; a missing real one gets the exact `tfds
build` command. Several hosts: start one process per host with --coordinator_address,
--num_processes and --process_id (or none of them where the cluster sets them up, e.g. SLURM).
"""

from absl import app, flags, logging
from ml_collections import config_flags

from msagan_jax import train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/e1d1_sde.py.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, TensorBoard logs and samples go; a "
                    "run restarted with the same workdir resumes.")
flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Multi-host: how many processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() with no arguments "
                  "(clusters such as SLURM or Cloud TPU set the processes up).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.distributed or FLAGS.coordinator_address:
        import jax
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                                   FLAGS.process_id)
        logging.info("process %d of %d", jax.process_index(), jax.process_count())
    try:
        train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (FileNotFoundError, ValueError, train.NonFiniteLossError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    app.run(main)
