"""A run's folder: one-line errors when it cannot be one, one run at a time, one experiment."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, tiny_config
from msagan_jax import config_lib, errors, rundir


def test_a_workdir_that_is_a_file_or_under_a_file_is_one_error_naming_it(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    with pytest.raises(errors.InputError, match="a file is in the way"):
        rundir.make(afile)
    with pytest.raises(errors.InputError, match="a parent of it is a file"):
        rundir.make(afile / "run")
    assert afile.read_text() == "keep me"


def _saved(tmp_path, **fields):
    config = tiny_config(".", **fields)
    rundir.make(tmp_path)
    config_lib.save(tmp_path, config)
    return config


def test_resuming_with_a_config_that_changes_the_experiment_is_refused_naming_each_field(
        tmp_path):
    _saved(tmp_path)
    changed = tiny_config(".", mask_loss="mse", learning_rate=1e-3)
    with pytest.raises(errors.ConfigError) as raised:
        with rundir.claim(tmp_path, changed):
            pass
    assert "mask_loss: 'sde' -> 'mse'" in str(raised.value)
    assert "learning_rate: 0.0002 -> 0.001" in str(raised.value)
    assert config_lib.restore(tmp_path).mask_loss == "sde"  # nothing overwritten


def test_an_allowed_config_change_goes_on_and_is_recorded_in_the_history(tmp_path):
    _saved(tmp_path)
    with rundir.claim(tmp_path, tiny_config(".", mask_loss="mse"), allow_config_change=True):
        pass
    lines = (tmp_path / rundir.HISTORY_FILE).read_text().splitlines()
    assert json.loads(lines[-1])["changed"] == {"mask_loss": ["sde", "mse"]}


def test_fields_that_do_not_change_the_result_may_change_and_a_longer_run_too(tmp_path):
    _saved(tmp_path)
    harmless = tiny_config(".", log_every=7, eval_every=0, eval_batch_size=4, num_train_steps=9,
                           judge__epochs=3, checkpoint_every=5, edit_condition_to_1=1.5)
    with rundir.claim(tmp_path, harmless):
        pass
    assert not (tmp_path / rundir.HISTORY_FILE).exists()
    # With a decaying rate, the run's length is part of its schedule.
    _saved(tmp_path, lr_decay_start=2)
    with pytest.raises(errors.ConfigError, match="num_train_steps: 4 -> 9"):
        with rundir.claim(tmp_path, tiny_config(".", lr_decay_start=2, num_train_steps=9)):
            pass
    # A decay that starts after both lengths (the quick start's, cut short) is a constant rate.
    _saved(tmp_path, lr_decay_start=800)
    with rundir.claim(tmp_path, tiny_config(".", lr_decay_start=800, num_train_steps=9)):
        pass
    assert not (tmp_path / rundir.HISTORY_FILE).exists()


def test_an_editor_in_a_judges_workdir_is_told_it_holds_a_judge(tmp_path):
    _saved(tmp_path, what_to_train="judge")
    with pytest.raises(errors.InputError, match="holds a judge, not an editor"):
        with rundir.claim(tmp_path, tiny_config(".")):
            pass


HOLD = """
import sys, time
sys.path.insert(0, "tests")
from conftest import tiny_config
from msagan_jax import rundir
with rundir.claim(sys.argv[1], tiny_config(".")):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_second_run_on_a_held_workdir_is_refused_and_a_killed_holder_blocks_nothing(
        tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(errors.InputError, match=r"another run is using .*\(pid \d+ on "):
            with rundir.claim(tmp_path, tiny_config(".")):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    time.sleep(0.1)
    with rundir.claim(tmp_path, tiny_config(".")):  # the lock died with its holder
        assert (tmp_path / rundir.LOCK_FILE).read_text().startswith("pid ")
