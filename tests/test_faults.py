"""Fault injection: main.py killed with SIGKILL at random moments, including inside a
checkpoint save, and rerun each time, ends with the parameters of a run never killed."""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
from conftest import REPO, TINY_FLAGS

STEPS = 12
TMP = ".orbax-checkpoint-tmp"  # orbax saves into <step>.orbax-checkpoint-tmp, then renames


def _command(data_dir: pathlib.Path, workdir: pathlib.Path) -> list[str]:
    return [sys.executable, "main.py", "--config=configs/default.py", *TINY_FLAGS,
            f"--config.data_dir={data_dir}", f"--workdir={workdir}",
            f"--config.num_train_steps={STEPS}", "--config.checkpoint_every=1",
            "--config.log_every=1", "--config.evaluate=false", "--config.eval_every=0",
            "--config.sample_every=0"]


def _entries(workdir: pathlib.Path) -> list[str]:
    try:
        return os.listdir(workdir / "checkpoints")
    except FileNotFoundError:
        return []


def _steps(workdir: pathlib.Path) -> list[int]:
    return sorted(int(name) for name in _entries(workdir) if name.isdigit())


def _start(command: list[str], log: pathlib.Path) -> subprocess.Popen:
    # Output to a file: a pipe nobody reads while we poll could fill and block the run.
    with open(log, "w") as out:
        return subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def _kill_when(process: subprocess.Popen, ready, timeout: float = 150) -> bool:
    """SIGKILLs `process` as soon as `ready()` holds (polled every millisecond); False if the
    process ended first."""
    deadline = time.time() + timeout
    while process.poll() is None:
        assert time.time() < deadline, "the run neither finished nor reached the kill point"
        if ready():
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.001)
    return False


def _params(workdir: pathlib.Path):
    from msagan_jax import editor

    ed = editor.load_editor(workdir)
    return jax.device_get((ed.g_params, ed.d_params))


def test_runs_killed_at_random_moments_and_resumed_end_like_an_uninterrupted_run(
        synthetic_data_dir, tmp_path):
    rng = random.Random(0)
    workdir = tmp_path / "killed"
    command = _command(synthetic_data_dir, workdir)

    def saving_at_least(step: int):  # a save in progress, of `step` or later
        return lambda: lambda: any(TMP in name and int(name.split(".")[0]) >= step
                                   for name in _entries(workdir))

    def after_a_new_checkpoint(delay: float):  # `delay` s after this start's first save
        def start():
            first, seen = max(_steps(workdir), default=0), []

            def ready() -> bool:
                if not seen and max(_steps(workdir), default=0) > first:
                    seen.append(time.time())
                return bool(seen) and time.time() - seen[0] >= delay
            return ready
        return start

    kill_points = [saving_at_least(rng.randint(1, 3)),
                   after_a_new_checkpoint(rng.uniform(0, 0.5)),
                   saving_at_least(rng.randint(6, 9))]
    killed, left_mid_save = [], []
    for i, kill_point in enumerate(kill_points):
        before, process = _steps(workdir), _start(command, tmp_path / f"log{i}.txt")
        if not _kill_when(process, kill_point()):
            break  # the run finished before this point: nothing left to kill
        if i:
            assert "resumed from iteration" in (tmp_path / f"log{i}.txt").read_text()
        unfinished = [name for name in _entries(workdir) if TMP in name]
        killed.append((before, _steps(workdir), unfinished))
        left_mid_save += unfinished
    print("killed (checkpoints before, after, unfinished saves):", killed)
    for attempt in range(3):  # rerun the same command until it exits 0
        log = tmp_path / f"final{attempt}.txt"
        process = _start(command, log)
        if process.wait(timeout=300) == 0:
            break
    else:
        raise AssertionError(log.read_text()[-3000:])
    assert len(killed) == 3, killed
    assert left_mid_save, "no kill landed inside a checkpoint save"
    assert "resumed from iteration" in log.read_text()
    assert _steps(workdir)[-1] == STEPS

    straight = tmp_path / "straight"
    result = subprocess.run(_command(synthetic_data_dir, straight), check=False, cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for a, b in zip(jax.tree.leaves(_params(workdir)), jax.tree.leaves(_params(straight)),
                    strict=True):
        np.testing.assert_array_equal(a, b)
