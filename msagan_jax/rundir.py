"""A run's folder: made with a one-line error when it cannot be, used by one run at a time, and
kept to one experiment.

    rundir.make(workdir)                       # errors.InputError when it cannot be a folder
    with rundir.claim(workdir, config, allow_config_change=False):
        ...                                    # the training loop

`claim` takes an exclusive lock on <workdir>/.lock (an OS lock: a killed run holds it no
longer, so no stale lock ever blocks), and refuses a config that would change the experiment
the workdir holds, naming each field; with allow_config_change=True the change is recorded in
<workdir>/config_history.jsonl. Fields that do not change the result may always change.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import ml_collections

from msagan_jax import config_lib, errors

LOCK_FILE = ".lock"
HISTORY_FILE = "config_history.jsonl"
# Fields that change what is logged, kept or read from where, not what is learned.
RESULT_FREE = ("data_dir", "input_workers", "log_every", "sample_every", "num_samples",
               "checkpoint_every", "keep_checkpoints", "collapse_threshold",
               "collapse_patience", "eval_every", "eval_examples", "evaluate", "eval_split",
               "eval_batch_size", "judge.workdir", "conv_impl", "cpu_devices",
               "edit_condition_to_0", "edit_condition_to_1")
# What a judge's training reads; the rest of its config (the editor's fields) does not matter.
JUDGE_FIELDS = ("dataset", "image_size", "attribute", "seed", "judge.depth", "judge.width",
                "judge.epochs", "judge.batch_size", "judge.learning_rate",
                "judge.weight_decay", "judge.random_flip")


def make(workdir: os.PathLike) -> pathlib.Path:
    """Creates `workdir` (and its parents); errors.InputError naming it when it cannot be a
    writable folder (a file is in the way, or no permission)."""
    path = pathlib.Path(workdir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise errors.InputError(f"--workdir {path}: a file is in the way (not a folder)") \
            from None
    except NotADirectoryError:
        raise errors.InputError(f"--workdir {path}: a parent of it is a file, not a folder") \
            from None
    except OSError as e:
        raise errors.InputError(f"--workdir {path}: cannot create it ({e.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise errors.InputError(f"--workdir {path}: not writable")
    return path


def experiment_changes(saved: ml_collections.ConfigDict,
                       config: ml_collections.ConfigDict) -> dict[str, tuple[Any, Any]]:
    """{field: (saved, new)} for the fields whose change would alter what the run learns."""
    old, new = config_lib.flatten(saved), config_lib.flatten(config)
    if config.what_to_train == "judge":
        names = JUDGE_FIELDS
    else:
        names = [n for n in new if n not in RESULT_FREE and not n.startswith("judge.")]
        # A run sized in epochs has no length here: it counts as falling if a decay is set.
        lengths = [c.num_train_steps if c.num_train_steps > 0 else float("inf")
                   for c in (saved, config)]
        if not any(map(config_lib.rate_falls, (saved, config), lengths)):
            # A constant rate: a longer (or shorter) run is the same experiment.
            names = [n for n in names if n not in ("num_train_steps", "num_epochs")]
    return {n: (old.get(n), new.get(n)) for n in names if old.get(n) != new.get(n)}


def _check_config(workdir: pathlib.Path, config: ml_collections.ConfigDict,
                  allow_change: bool) -> None:
    if not (workdir / config_lib.CONFIG_FILE).exists():
        return
    saved = config_lib.restore(workdir)
    config_lib.check_holds(saved, config.what_to_train, workdir)
    changes = experiment_changes(saved, config)
    if not changes:
        return
    listed = "; ".join(f"{n}: {a!r} -> {b!r}" for n, (a, b) in changes.items())
    if not allow_change:
        raise errors.ConfigError(
            f"{workdir} holds a run with another config ({listed}); resuming would mix two "
            f"experiments. Use a new --workdir, or --allow_config_change to go on anyway")
    with open(workdir / HISTORY_FILE, "a") as f:
        f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                            "changed": {n: [a, b] for n, (a, b) in changes.items()}}) + "\n")


@contextlib.contextmanager
def claim(workdir: os.PathLike, config: ml_collections.ConfigDict,
          allow_config_change: bool = False, lock: bool = True) -> Iterator[pathlib.Path]:
    """Holds `workdir` for one run (see the module docstring). `lock=False` in every process
    but the first of a multi-process run, which share the folder."""
    path = make(workdir)
    if not lock:
        _check_config(path, config, allow_config_change)
        yield path
        return
    with open(path / LOCK_FILE, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise errors.RunInUseError(f"another run is using {path} ({holder}); wait for it "
                                       f"to end, or use another --workdir") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        try:
            _check_config(path, config, allow_config_change)
            yield path
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
