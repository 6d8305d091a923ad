"""MSaGAN in JAX: the command line.

    python main.py --config=configs/quickstart.py --workdir=runs/quickstart
    python main.py --config=configs/e1d1_sde.py --workdir=runs/e1d1_sde [--config.FIELD=VALUE]
    python main.py --config=configs/classifier.py --workdir=runs/judge
    python main.py --mode=evaluate --workdir=runs/e1d1_sde [--judge=runs/judge]
    python main.py --mode=edit --workdir=runs/e1d1_sde --input=photo.jpg --output=edited.png
    python main.py --mode=sweep --config=configs/sweep_synthetic.py --workdir=runs/sweep --seeds=3

train (the default) trains what the config describes in --workdir, resuming from its latest
checkpoint: for an editor, its judge first if none is trained, then the editor (scored on a
validation subset as it learns), then its evaluation on the test split.
A synthetic dataset that is not built yet is built on the spot; a missing real one gets the
exact `tfds build` command. Several hosts: one process per host with --coordinator_address,
--num_processes and --process_id (or --distributed where the cluster sets them up).

Exit status: 0 done; 1 an error (one line: `error: ...`) or files the edit could not read;
3 stopped by SIGTERM or Ctrl-C after saving a checkpoint (run the same command to resume).
"""

from msagan_jax import allocator, console

console.choose_platform()  # before JAX starts: no CUDA probe traceback on a CPU-only machine
if __name__ == "__main__":
    allocator.use_mimalloc()  # on the CPU: this command again, with mimalloc preloaded

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

STOPPED = 3  # the exit status of a run stopped early, with its checkpoint saved
FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/e1d1_sde.py.",
                                lock_config=True)
flags.DEFINE_enum("mode", "train", ["train", "evaluate", "edit", "sweep"],
                  "train: train (and evaluate) the config; evaluate: score a trained editor; "
                  "edit: edit photos with one; sweep: the paper's 16 models x --seeds.")
flags.DEFINE_string("workdir", None, "The run's folder (checkpoints, TensorBoard logs, samples, "
                    "eval/); a run restarted with the same workdir resumes. Sweep: its folder.")
flags.DEFINE_string("judge", None, "evaluate/edit: the judge's workdir (default: the run "
                    "config's judge.workdir).")
flags.DEFINE_integer("step", None, "evaluate/edit: the checkpoint to use (default: latest).")
flags.DEFINE_string("input", None, "edit: an image file or a folder of them.")
flags.DEFINE_string("output", None, "edit: the edited image's path (a folder for a folder); "
                    "its mask goes beside it as <name>_mask.png.")
flags.DEFINE_float("value", None, "edit: the attribute value to edit to (0 or 1); unset flips "
                   "what the judge sees in each photo.")
flags.DEFINE_list("edit_condition", None, "evaluate/edit: the c G is given to edit toward 0 "
                  "and toward 1, e.g. 0,1.5 (default: the run config's edit_condition_to_0 "
                  "and _to_1; the paper's 0,1).")
flags.DEFINE_bool("overwrite", False, "edit: replace existing output files (never an input).")
flags.DEFINE_bool("allow_config_change", False, "train: resume a workdir even though the config "
                  "changes the experiment it holds (the change is recorded in "
                  "<workdir>/config_history.jsonl).")
flags.DEFINE_bool("verbose", False, "Show every library's INFO lines too (they always go to "
                  "<workdir>/log.txt).")
flags.DEFINE_integer("seeds", 1, "sweep: seeds 0..N-1 of every model.")
flags.DEFINE_list("structures", None, "sweep: a subset of e2d2,e2d1,e1d2,e1d1.")
flags.DEFINE_list("mask_losses", None, "sweep: a subset of none,mae,mse,sde.")
flags.DEFINE_bool("report_only", False, "sweep: train nothing; write the report of the runs "
                  "finished so far.")
flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Multi-host: how many processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() with no arguments "
                  "(clusters such as SLURM or Cloud TPU set the processes up).")
flags.mark_flags_as_required(["workdir"])


def _edit() -> int:
    from msagan_jax import editor, photos

    if not FLAGS.input or not FLAGS.output:
        raise app.UsageError("--mode=edit needs --input and --output")
    ed = editor.load_editor(FLAGS.workdir, FLAGS.step, FLAGS.judge)
    if FLAGS.edit_condition is not None:
        ed = ed.with_condition(*_edit_condition())
    written, failed = photos.edit_files(ed, FLAGS.input, FLAGS.output, FLAGS.value,
                                        overwrite=FLAGS.overwrite)
    for path in written:
        print(f"wrote {path} and {photos.mask_path(path).name}")
    if failed:
        print(f"error: {len(failed)} file(s) not edited:\n  " + "\n  ".join(failed))
        return 1
    return 0


def _edit_condition() -> tuple[float, float]:
    """--edit_condition as two numbers; errors.InputError naming it otherwise."""
    from msagan_jax import errors

    try:
        to_0, to_1 = (float(v) for v in FLAGS.edit_condition)
    except ValueError:
        raise errors.InputError(f"--edit_condition={','.join(FLAGS.edit_condition)}: give two "
                                f"numbers, the c toward 0 and toward 1 (e.g. 0,1.5)") from None
    return to_0, to_1


def _config():
    """--config, loaded; errors.InputError in one line when its file does not load."""
    from msagan_jax import errors

    try:
        config = FLAGS.config
        if config is not None:
            config.keys()  # ml_collections loads lazily: the first look raises its error
    except OSError as e:  # the cause names the file
        lines = [line.strip() for line in str(e.__cause__ or e).splitlines() if line.strip()]
        raise errors.InputError(f"--config={FLAGS['config'].config_filename}: "
                                f"{lines[-1] if lines else e}") from None
    if config is None:
        raise app.UsageError(f"--mode={FLAGS.mode} needs --config")
    return config


def _dispatch() -> int:
    from msagan_jax import evaluate, experiment, sweep

    if FLAGS.mode == "train":
        result = experiment.run(_config(), FLAGS.workdir, FLAGS.allow_config_change)
        return 0 if result.finished else STOPPED
    if FLAGS.mode == "sweep":
        results = sweep.run_sweep(_config(), FLAGS.workdir, range(FLAGS.seeds),
                                  FLAGS.structures or sweep.STRUCTURES,
                                  FLAGS.mask_losses or sweep.MASK_LOSSES, FLAGS.report_only)
        return 0 if results is not None else STOPPED
    if FLAGS.mode == "evaluate":
        condition = None if FLAGS.edit_condition is None else _edit_condition()
        print(evaluate.markdown_table(evaluate.evaluate_run(
            FLAGS.workdir, FLAGS.judge, step=FLAGS.step, condition=condition)))
        return 0
    return _edit()


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from msagan_jax import errors, rundir

    try:
        training = FLAGS.mode in ("train", "sweep")
        console.setup(rundir.make(FLAGS.workdir) if training else None, verbose=FLAGS.verbose)
        if FLAGS.distributed or FLAGS.coordinator_address:
            import jax
            jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                                       FLAGS.process_id)
            console.say(f"process {jax.process_index()} of {jax.process_count()}")
        return _dispatch()
    except errors.Error as e:  # the user's to fix: one line; anything else is a bug
        raise SystemExit(f"error: {e}") from None


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's parsing, with a config file that fails to load (a syntax error, an exception in
    its get_config) reported in one line, not as a traceback."""
    try:
        return app.parse_flags_with_usage(argv)
    except Exception as e:  # noqa: BLE001  (the config file's own error, whatever it is)
        given = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "?")
        raise SystemExit(f"error: --config={given}: {type(e).__name__}: {e}") from None


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
