"""MSaGAN in JAX: the command line.

    python main.py --config=configs/quickstart.py --workdir=runs/quickstart
    python main.py --config=configs/e1d1_sde.py --workdir=runs/e1d1_sde [--config.FIELD=VALUE]
    python main.py --config=configs/classifier.py --workdir=runs/judge
    python main.py --mode=evaluate --workdir=runs/e1d1_sde [--judge=runs/judge]
    python main.py --mode=edit --workdir=runs/e1d1_sde --input=photo.jpg --output=edited.png
    python main.py --mode=sweep --config=configs/sweep_synthetic.py --workdir=runs/sweep --seeds=3

train (the default) trains what the config describes in --workdir, resuming from its latest
checkpoint, then evaluates an editor on the test split (training its judge first if needed).
A synthetic dataset that is not built yet is built on the spot; a missing real one gets the
exact `tfds build` command. Several hosts: one process per host with --coordinator_address,
--num_processes and --process_id (or --distributed where the cluster sets them up).
"""

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/e1d1_sde.py.",
                                lock_config=True)
flags.DEFINE_enum("mode", "train", ["train", "evaluate", "edit", "sweep"],
                  "train: train (and evaluate) the config; evaluate: score a trained editor; "
                  "edit: edit photos with one; sweep: the paper's 16 models x --seeds.")
flags.DEFINE_string("workdir", None, "The run's folder (checkpoints, TensorBoard logs, samples, "
                    "eval/); a run restarted with the same workdir resumes. Sweep: its folder.")
flags.DEFINE_string("judge", None, "evaluate/edit: the judge's workdir (default: the run "
                    "config's judge_workdir).")
flags.DEFINE_integer("step", None, "evaluate/edit: the checkpoint to use (default: latest).")
flags.DEFINE_string("input", None, "edit: an image file or a folder of them.")
flags.DEFINE_string("output", None, "edit: the edited image's path (a folder for a folder); "
                    "its mask goes beside it as <name>_mask.png.")
flags.DEFINE_float("value", None, "edit: the attribute value to edit to (0 or 1); unset flips "
                   "what the judge sees in each photo.")
flags.DEFINE_integer("seeds", 1, "sweep: seeds 0..N-1 of every model.")
flags.DEFINE_list("structures", None, "sweep: a subset of e2d2,e2d1,e1d2,e1d1.")
flags.DEFINE_list("mask_losses", None, "sweep: a subset of none,mae,mse,sde.")
flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Multi-host: how many processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() with no arguments "
                  "(clusters such as SLURM or Cloud TPU set the processes up).")
flags.mark_flags_as_required(["workdir"])


def _dispatch() -> int:
    from msagan_jax import editor, evaluate, experiment, sweep

    if FLAGS.mode in ("train", "sweep") and FLAGS.config is None:
        raise app.UsageError(f"--mode={FLAGS.mode} needs --config")
    if FLAGS.mode == "train":
        experiment.run(FLAGS.config, FLAGS.workdir)
    elif FLAGS.mode == "sweep":
        sweep.run_sweep(FLAGS.config, FLAGS.workdir, range(FLAGS.seeds),
                        FLAGS.structures or sweep.STRUCTURES,
                        FLAGS.mask_losses or sweep.MASK_LOSSES)
    elif FLAGS.mode == "evaluate":
        print(evaluate.markdown_table(evaluate.evaluate_run(FLAGS.workdir, FLAGS.judge,
                                                            step=FLAGS.step)))
    else:
        if not FLAGS.input or not FLAGS.output:
            raise app.UsageError("--mode=edit needs --input and --output")
        ed = editor.load_editor(FLAGS.workdir, FLAGS.step, FLAGS.judge)
        written, errors = editor.edit_files(ed, FLAGS.input, FLAGS.output, FLAGS.value)
        for path in written:
            print(f"wrote {path} and {editor.mask_path(path).name}")
        if errors:
            print(f"error: {len(errors)} file(s) not edited:\n  " + "\n  ".join(errors))
            return 1
    return 0


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.distributed or FLAGS.coordinator_address:
        import jax
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                                   FLAGS.process_id)
        logging.info("process %d of %d", jax.process_index(), jax.process_count())
    from msagan_jax import train
    try:
        return _dispatch()
    except (FileNotFoundError, ValueError, train.NonFiniteLossError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    app.run(main)
