"""Checkpoints: the train state, the grain iterator's position and the config, with orbax.

A checkpoint lives in <workdir>/checkpoints/<step>/ with three items: `state` (the TrainState
pytree), `data` (each process's grain iterator state) and `config` (JSON). Restoring both the
state and the iterator makes a resumed run continue with the same batches, so a run stopped at
step k and resumed ends with the same parameters as one never stopped. A damaged checkpoint
(a file truncated or lost) is set aside as <step>.damaged, and training resumes from the
newest one that reads back (`restore_newest`).
"""

from __future__ import annotations

import functools
import json
import logging as pylogging
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from absl import logging

from msagan_jax import config_lib, errors, parallel

# A damaged checkpoint <step> is renamed <step>.damaged (then .damaged-2, ...): orbax takes only
# names matching ^(0|[1-9]\d*)$ for steps, so it never lists, restores nor deletes it.
DAMAGED_SUFFIX = ".damaged"


def checkpoint_dir(workdir: os.PathLike) -> pathlib.Path:
    """Where a run's checkpoints live."""
    return pathlib.Path(workdir).absolute() / "checkpoints"


def has_checkpoint(workdir: os.PathLike) -> bool:
    """Whether <workdir>/checkpoints holds a complete checkpoint (a step-named folder; orbax
    writes into a temporary name and renames it when done)."""
    folder = checkpoint_dir(workdir)
    return folder.is_dir() and any(p.name.isdigit() and p.is_dir() for p in folder.iterdir())


def create_manager(workdir: os.PathLike, keep: int = 3) -> ocp.CheckpointManager:
    """An orbax manager of <workdir>/checkpoints that keeps the `keep` latest checkpoints.

    Saves are asynchronous (training goes on while the arrays are written); orbax writes into
    a temporary folder and renames it when complete, so a crash mid-save leaves the previous
    checkpoint as the latest.
    """
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Any, iterator: Any,
         config: Any) -> None:
    """Saves state, iterator position and config as checkpoint `step` (asynchronously)."""
    config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(iterator),
        config=ocp.args.JsonSave(config_dict)), force=True)


def latest_step(manager: ocp.CheckpointManager) -> int | None:
    """The newest complete checkpoint's step, or None."""
    return manager.latest_step()


def saved_config(manager: ocp.CheckpointManager, step: int) -> dict:
    """The config stored with checkpoint `step` (read before the arrays, to check shapes)."""
    return manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore())).config


def restore(manager: ocp.CheckpointManager, step: int, abstract_state: Any,
            iterator: Any = None) -> Any:
    """Restores checkpoint `step` into arrays shaped and sharded like `abstract_state`, and
    moves `iterator` (if given) to where it was; returns the state (`saved_config` reads the
    config)."""
    items = {"state": ocp.args.StandardRestore(abstract_state)}
    if iterator is not None:
        items["data"] = grain.checkpoint.CheckpointRestore(iterator)
    return manager.restore(step, args=ocp.args.Composite(**items)).state


def restore_newest(manager: ocp.CheckpointManager, workdir: os.PathLike, abstract_state: Any,
                   iterator: Any, config: Any,
                   shape_fields: tuple[str, ...]) -> tuple[int, Any] | None:
    """Restores the newest checkpoint that reads back (state, and `iterator`'s position):
    (step, state), or None when there is none.

    Newer checkpoints that fail to read are damaged: each is renamed <step>.damaged (kept for
    inspection, out of orbax's sight) with a warning naming it and why, and `manager` is
    reloaded, so it stays usable. A checkpoint whose config has other `shape_fields` raises
    errors.ConfigError (the user's config is wrong, not the checkpoint); if none reads back,
    errors.InputError names each with its reason and nothing is renamed.
    """
    where = checkpoint_dir(workdir)
    damaged: list[tuple[int, str]] = []
    for step in sorted(manager.all_steps(), reverse=True):
        folder = where / str(step)
        try:
            saved = _read(folder, "config", functools.partial(_saved_config_dict, manager, step))
            check_compatible(saved, config, where, shape_fields)  # raises: not damage
            check_reader(folder, iterator)  # raises: not damage either
            for name in ("state", "state/_METADATA"):  # else orbax blames the pytree
                if not (folder / name).exists():
                    raise _Damaged(f"{name} is missing")
            state = _read(folder, "state or data", functools.partial(
                restore, manager, step, abstract_state, iterator))
        except _Damaged as e:
            damaged.append((step, str(e)))
            continue
        _set_aside(manager, where, damaged, step)
        return step, state
    if damaged:
        # Nothing renamed: when every checkpoint fails, the cause may be ours (the code's
        # state no longer matches), and renaming all would silently restart from scratch.
        raise errors.InputError(
            f"no checkpoint in {where} can be restored: "
            + "; ".join(f"{step}: {reason}" for step, reason in damaged)
            + ". Move them away (or use a new --workdir) to start afresh")
    return None


def check_reader(folder: pathlib.Path, iterator: Any) -> None:
    """errors.ConfigError when checkpoint `folder`'s input pipeline read with another number of
    grain worker processes than `iterator`: grain cannot restore its position across counts
    (and input_workers=-1 picks the count by platform), so the user must set it back."""
    if iterator is None:
        return
    path = folder / "data" / f"process_{jax.process_index()}-of-{jax.process_count()}.json"
    try:
        saved = json.loads(path.read_text())["worker_count"]
        current = json.loads(iterator.get_state())["worker_count"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return  # nothing to compare: the restore itself judges the file
    if saved != current:
        raise errors.ConfigError(
            f"checkpoint {folder} was saved reading with {saved} grain worker processes and "
            f"this run reads with {current}; resume with --config.input_workers={saved}")


class _Damaged(Exception):
    """A checkpoint that does not read back; the message says why, in one line."""


def _read(folder: pathlib.Path, what: str, read: Callable[[], Any]) -> Any:
    """`read()`, any failure of which means the checkpoint in `folder` is damaged."""
    try:
        return read()
    except Exception as e:  # noqa: BLE001  (whatever orbax, TensorStore or json raise)
        _silence_abandoned_reads()
        while e.__cause__ is not None:  # orbax wraps TensorStore's error, which names the file
            e = e.__cause__
        lines = str(e).replace(f"{folder}/", "").strip().splitlines() or ["(no message)"]
        raise _Damaged(f"{what} unreadable ({type(e).__name__}: {lines[0][:300]})") from None


def _saved_config_dict(manager: ocp.CheckpointManager, step: int) -> Any:
    saved = saved_config(manager, step)
    if not isinstance(saved, dict) or not saved:
        raise ValueError(f"the saved config is {'empty' if not saved else type(saved).__name__}")
    return config_lib.merge(saved)


def _silence_abandoned_reads() -> None:
    """When one array fails to read, orbax leaves its other reads running on an event loop it
    closes; as each finishes (in TensorStore's threads) or is collected, Python prints a
    traceback ("Event loop is closed", "Exception ignored in: <coroutine ...>"): hundreds of
    lines for one bad file, long after the failure. Drops exactly those, for the rest of the
    process (they come late, so no window would do); everything else passes."""
    pylogging.getLogger("asyncio").addFilter(_keep_asyncio_record)  # once: same object
    previous = sys.unraisablehook
    if getattr(previous, "__name__", "") == "_drop_abandoned_reads":
        return

    def _drop_abandoned_reads(unraisable: Any) -> None:
        closed = (isinstance(unraisable.exc_value, RuntimeError)
                  and str(unraisable.exc_value) == "Event loop is closed")
        if not closed and getattr(unraisable.object, "__name__", "") not in _ORBAX_READS:
            previous(unraisable)

    sys.unraisablehook = _drop_abandoned_reads


_ORBAX_READS = ("_read_array_index_and_device_put", "async_deserialize")


def _keep_asyncio_record(record: pylogging.LogRecord) -> bool:
    message = record.getMessage()
    return not (message.startswith("Task exception was never retrieved")
                and any(name in message for name in _ORBAX_READS))


def _set_aside(manager: ocp.CheckpointManager, where: pathlib.Path,
               damaged: list[tuple[int, str]], resumed: int) -> None:
    """Renames each damaged step folder out of orbax's sight and warns, then reloads
    `manager` (its cached step list would still hold them, and a new save of the same step
    would raise StepAlreadyExistsError).

    Several processes: process 0 renames; the others wait for it (any_process is a
    collective) before reloading. Each process decided "damaged" on its own reading; on a
    shared filesystem they agree, but a read that fails on one host only is not handled.
    """
    if not damaged:
        return
    for step, reason in damaged:
        if jax.process_index() == 0:
            target = _unused_name(where / f"{step}{DAMAGED_SUFFIX}")
            (where / str(step)).rename(target)
            logging.warning("checkpoint %d in %s is damaged: %s; renamed it %s and resumed "
                            "from %d", step, where, reason, target.name, resumed)
    parallel.any_process(False)  # a barrier: the renames are done before anyone reloads
    manager.reload()


def _unused_name(path: pathlib.Path) -> pathlib.Path:
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def restore_subset(manager: ocp.CheckpointManager, step: int, abstract: dict) -> dict:
    """Only the named parts of checkpoint `step`'s state (e.g. the parameters, without the
    optimizer), shaped and sharded like `abstract`: what an editor or a judge needs to run."""
    args = ocp.args.PyTreeRestore(item=abstract, partial_restore=True,
                                  restore_args=ocp.checkpoint_utils.construct_restore_args(
                                      abstract))
    return manager.restore(step, args=ocp.args.Composite(state=args)).state


def check_compatible(saved: Any, config: Any, where: os.PathLike,
                     fields: tuple[str, ...]) -> None:
    """Raises errors.ConfigError if the workdir's checkpoints come from a run whose `fields`
    (dotted names, e.g. "judge.depth"), which fix the parameter shapes, differ."""
    saved, config = config_lib.flatten(saved), config_lib.flatten(config)
    differ = [f"{name}: checkpoint {saved.get(name)!r}, config {config.get(name)!r}"
              for name in fields if saved.get(name) != config.get(name)]
    if differ:
        raise errors.ConfigError(
            f"the checkpoints in {where} were written by a run with another model "
            f"({'; '.join(differ)}); use a new --workdir or the same config")


def open_run(workdir: os.PathLike,
             what_to_train: str) -> tuple[Any, ocp.CheckpointManager]:
    """The config and checkpoint manager of the run of `what_to_train` ("editor" or "judge")
    in `workdir`; errors.InputError when the workdir holds another kind of run or no
    checkpoint."""
    config = config_lib.restore(workdir)
    config_lib.check_holds(config, what_to_train, workdir)
    manager = create_manager(workdir, config.keep_checkpoints)
    if latest_step(manager) is None:
        raise errors.InputError(f"{checkpoint_dir(workdir)} holds no checkpoint yet")
    return config, manager


def restore_parameters(manager: ocp.CheckpointManager, abstract: dict,
                       step: int | None = None) -> tuple[int, dict]:
    """(step, the parts of its state named in `abstract`) of checkpoint `step`, or by default
    of the newest checkpoint that reads back: a damaged newer one is skipped with a warning
    and left in place (the next training start sets it aside, see restore_newest)."""
    if step is not None:
        return step, restore_subset(manager, step, abstract)
    where = pathlib.Path(manager.directory)
    damaged = []
    for candidate in sorted(manager.all_steps(), reverse=True):
        try:
            return candidate, _read(where / str(candidate), "parameters",
                                    functools.partial(restore_subset, manager, candidate,
                                                      abstract))
        except _Damaged as e:
            damaged.append(f"{candidate}: {e}")
            logging.warning("checkpoint %d in %s is damaged (%s); using an older one",
                            candidate, where, e)
    raise errors.InputError(f"no checkpoint in {where} can be restored: {'; '.join(damaged)}")
