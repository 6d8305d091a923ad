"""Checkpoints: the train state, the grain iterator's position and the config, with orbax.

A checkpoint lives in <workdir>/checkpoints/<step>/ with three items: `state` (the TrainState
pytree), `data` (each process's grain iterator state) and `config` (JSON). Restoring both the
state and the iterator makes a resumed run continue with the same batches, so a run stopped at
step k and resumed ends with the same parameters as one never stopped.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

# Config fields that fix the parameter shapes: a workdir's checkpoints only fit a run that
# agrees on them.
SHAPE_FIELDS = ("structure", "image_size", "width", "num_down", "num_res_blocks", "d_width",
                "d_num_layers")


def checkpoint_dir(workdir: os.PathLike) -> pathlib.Path:
    """Where a run's checkpoints live."""
    return pathlib.Path(workdir).absolute() / "checkpoints"


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


def check_compatible(saved: dict, config: Any, where: os.PathLike,
                     fields: tuple[str, ...] = SHAPE_FIELDS) -> None:
    """Raises if the workdir's checkpoints come from a run with other parameter shapes."""
    differ = [f"{name}: checkpoint {saved.get(name)!r}, config {config[name]!r}"
              for name in fields if saved.get(name) != config[name]]
    if differ:
        raise ValueError(f"the checkpoints in {where} were written by a run with another model "
                         f"({'; '.join(differ)}); use a new --workdir or the same config")


def read_config(workdir: os.PathLike) -> dict:
    """The config a run saved in <workdir>/config.json."""
    path = pathlib.Path(workdir) / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist: is {workdir} a training workdir?") \
            from None


def write_config(workdir: os.PathLike, config: Any) -> None:
    """Writes the run's config as <workdir>/config.json (process 0 only)."""
    if jax.process_index() == 0:
        path = pathlib.Path(workdir) / "config.json"
        path.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
