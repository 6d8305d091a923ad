"""Checkpoints: a damaged latest checkpoint is set aside (renamed, never deleted) and the run
resumes from the newest one that restores, ending exactly like an undamaged run."""

from __future__ import annotations

import hashlib
import logging
import pathlib
import shutil

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import tiny_config

from msagan_jax import checkpoint, errors, train


def _leaves_equal(a, b) -> bool:
    a, b = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _config(data_dir, steps: int) -> ml_collections.ConfigDict:
    # No sample grids, learning curve or judge: only the loop and its checkpoints matter.
    return tiny_config(data_dir, num_train_steps=steps, sample_every=0, eval_every=0,
                       evaluate=False)


def _params(result) -> tuple:
    state = jax.device_get(result.state)
    return state.g_params, state.d_params


def _files(folder: pathlib.Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder`."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(synthetic_data_dir, tmp_path_factory):
    """(a workdir trained 4 iterations with checkpoints 2 and 4, the parameters of a straight
    6-iteration run)."""
    trained = tmp_path_factory.mktemp("trained4")
    assert train.train_and_evaluate(_config(synthetic_data_dir, 4), trained).finished
    straight = train.train_and_evaluate(_config(synthetic_data_dir, 6),
                                        tmp_path_factory.mktemp("straight6"))
    return trained, _params(straight)


def _copy(runs, tmp_path) -> pathlib.Path:
    workdir = tmp_path / "run"
    shutil.copytree(runs[0], workdir)
    return workdir


def _largest_file(folder: pathlib.Path) -> pathlib.Path:
    return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _truncate(step: pathlib.Path) -> None:
    path = _largest_file(step / "state")
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _zero(step: pathlib.Path) -> None:
    path = _largest_file(step / "state")
    path.write_bytes(bytes(path.stat().st_size))


def _delete_metadata(step: pathlib.Path) -> None:
    found = list((step / "state").rglob("_METADATA"))
    assert found, sorted(p.name for p in step.rglob("*"))
    for path in found:
        path.unlink()


def _empty_config(step: pathlib.Path) -> None:
    path = step / "config" / "metadata"  # where orbax's JsonSave writes the config
    assert path.is_file(), sorted(p.name for p in (step / "config").iterdir())
    path.write_bytes(b"")


def _delete_state(step: pathlib.Path) -> None:
    shutil.rmtree(step / "state")


DAMAGES = {"truncated": _truncate, "zeroed": _zero, "no_metadata": _delete_metadata,
           "empty_config": _empty_config, "no_state": _delete_state}


def test_a_run_resumed_from_an_earlier_checkpoint_ends_like_a_straight_run(
        runs, synthetic_data_dir, tmp_path):
    # What the damage tests rely on: resuming from 2 re-reads the batches 3..6 of a straight run.
    workdir = _copy(runs, tmp_path)
    shutil.rmtree(workdir / "checkpoints" / "4")
    result = train.train_and_evaluate(_config(synthetic_data_dir, 6), workdir)
    assert result.finished
    assert _leaves_equal(_params(result), runs[1])


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_latest_checkpoint_is_set_aside_and_the_run_resumes_from_the_one_before(
        damage, runs, synthetic_data_dir, tmp_path, caplog):
    workdir = _copy(runs, tmp_path)
    where = workdir / "checkpoints"
    DAMAGES[damage](where / "4")
    damaged_files = _files(where / "4")
    with caplog.at_level(logging.WARNING):
        result = train.train_and_evaluate(_config(synthetic_data_dir, 6), workdir)
    warnings = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    assert "checkpoint 4 " in warnings[0] and "4.damaged" in warnings[0]
    assert "resumed from 2" in warnings[0] and "\n" not in warnings[0]
    assert _files(where / "4.damaged") == damaged_files  # kept as it was, for inspection
    # keep_checkpoints=3: 2, the new 4 and 6; orbax neither lists nor deletes the renamed one.
    assert sorted(p.name for p in where.iterdir()) == ["2", "4", "4.damaged", "6"]
    assert result.finished
    assert _leaves_equal(_params(result), runs[1])


def _zero_all(step: pathlib.Path) -> None:
    for path in (p for p in (step / "state").rglob("*") if p.is_file()):
        path.write_bytes(bytes(path.stat().st_size))


# The editor reads only the parameters: one zeroed file may hold only optimizer moments (orbax
# decides which arrays share a file), which it rightly never reads, so every file is zeroed.
EDITOR_DAMAGES = {"all_zeroed": _zero_all, "no_state": _delete_state}


@pytest.mark.parametrize("damage", sorted(EDITOR_DAMAGES))
def test_an_editor_restores_from_the_newest_checkpoint_that_reads_back(damage, runs, tmp_path,
                                                                         caplog):
    from msagan_jax import editor

    workdir = _copy(runs, tmp_path)
    expected = editor.load_editor(workdir, step=2)
    EDITOR_DAMAGES[damage](workdir / "checkpoints" / "4")
    with caplog.at_level(logging.WARNING):
        ed = editor.load_editor(workdir)
    assert ed.step == 2
    assert any("checkpoint 4 " in r.getMessage() and "damaged" in r.getMessage()
               for r in caplog.records)
    assert _leaves_equal(ed.g_params, expected.g_params)
    assert (workdir / "checkpoints" / "4").is_dir()  # left for training to set aside


def test_when_every_checkpoint_is_damaged_one_error_names_each_and_nothing_is_renamed(
        runs, synthetic_data_dir, tmp_path):
    workdir = _copy(runs, tmp_path)
    where = workdir / "checkpoints"
    _truncate(where / "4")
    _delete_metadata(where / "2")
    with pytest.raises(errors.InputError) as caught:
        train.train_and_evaluate(_config(synthetic_data_dir, 6), workdir)
    message = str(caught.value)
    assert "\n" not in message and "4: " in message and "2: " in message
    assert "no checkpoint in" in message
    assert sorted(p.name for p in where.iterdir()) == ["2", "4"]


def test_a_config_with_other_shapes_is_a_config_error_and_renames_nothing(
        runs, synthetic_data_dir, tmp_path):
    workdir = _copy(runs, tmp_path)
    where = workdir / "checkpoints"
    _truncate(where / "4")
    config = _config(synthetic_data_dir, 6)
    config.width = 8
    with pytest.raises(errors.ConfigError, match="width: checkpoint 4, config 8"):
        train.train_and_evaluate(config, workdir, allow_config_change=True)
    assert sorted(p.name for p in where.iterdir()) == ["2", "4"]


def test_resuming_with_another_reader_count_is_a_config_error_naming_the_saved_one(
        runs, synthetic_data_dir, tmp_path):
    # grain cannot move an iterator across worker counts; the run read in-process (0 on a CPU).
    workdir = _copy(runs, tmp_path)
    config = _config(synthetic_data_dir, 6)
    config.input_workers = 2
    with pytest.raises(errors.ConfigError, match=r"with 0 grain worker processes and this run "
                                                 r"reads with 2; resume with "
                                                 r"--config.input_workers=0"):
        train.train_and_evaluate(config, workdir)
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["2", "4"]


def _save(manager: ocp.CheckpointManager, step: int) -> None:
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave({"w": np.full(3, step, np.float32)}),
        config=ocp.args.JsonSave({"seed": 0})), force=True)
    manager.wait_until_finished()


def test_orbax_ignores_a_renamed_checkpoint_and_the_manager_saves_on_after_it(tmp_path):
    manager = checkpoint.create_manager(tmp_path, keep=2)
    for step in (1, 2, 3):
        _save(manager, step)
    where = checkpoint.checkpoint_dir(tmp_path)
    (where / "3" / "state" / "_METADATA").unlink()
    abstract = {"w": jax.ShapeDtypeStruct((3,), np.float32)}
    config = ml_collections.ConfigDict({"seed": 0})
    step, state = checkpoint.restore_newest(manager, tmp_path, abstract, None, config, ())
    assert step == 2 and np.array_equal(state["w"], np.full(3, 2.0))
    assert manager.all_steps() == [2] and manager.latest_step() == 2
    kept = _files(where / "3.damaged")
    for step in (3, 4, 5):  # step 3 again (no StepAlreadyExistsError), and two collections
        _save(manager, step)
    assert sorted(p.name for p in where.iterdir()) == ["3.damaged", "4", "5"]
    assert _files(where / "3.damaged") == kept
    assert checkpoint.create_manager(tmp_path, keep=2).all_steps() == [4, 5]
    # The same step damaged again gets a new name; the first one stays.
    shutil.rmtree(where / "5" / "state")
    assert checkpoint.restore_newest(manager, tmp_path, abstract, None, config, ())[0] == 4
    _save(manager, 5)
    _empty_config(where / "5")
    assert checkpoint.restore_newest(manager, tmp_path, abstract, None, config, ())[0] == 4
    assert sorted(p.name for p in where.iterdir()) == ["3.damaged", "4", "5.damaged",
                                                      "5.damaged-2"]
