"""The one training loop, which the editor (train.py) and the judge (classifier.py) both run.

    result = loop.run(trainer, config, workdir)
    result.finished      # False when a signal stopped it (a checkpoint was saved first)

It restores the workdir's newest checkpoint that restores (state and data position; a damaged
newer one is set aside, renamed, with a warning) or initialises, then

    for step, batch in zip(range(start + 1, num_steps + 1), batches):
        state, metrics = trainer.step(state, trainer.to_device(batch))

logging every `log_every` steps (TensorBoard and the progress bar; a NaN or inf stops the run
with errors.NonFiniteLossError), running the trainer's hooks (sample grids, evaluation) at
their intervals and saving every `checkpoint_every` steps, at the end, and when SIGTERM or
Ctrl-C asks it to stop. `itstime` is the one rule for "every N steps, and at the last".
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from msagan_jax import checkpoint, config_lib, console, errors, parallel, rundir, visualize

Metrics = dict[str, float]


def itstime(step: int, every: int, total: int) -> bool:
    """True every `every` steps and at the last step (`total`); never when every <= 0."""
    return every > 0 and (step % every == 0 or step == total)


@dataclasses.dataclass
class Hook:
    """Something to run after a step, every `every` steps and at the last."""

    every: int
    run: Callable[[int, Any, "Writer"], None]  # (step, state, writer)


@dataclasses.dataclass
class Trainer:
    """What differs between the editor's training and the judge's."""

    name: str  # progress-bar label
    num_steps: int
    init: Callable[[], Any]  # the initial state, on the mesh
    abstract: Callable[[], Any]  # its shapes and shardings, to restore a checkpoint into
    step: Callable[[Any, Any], tuple[Any, dict]]  # jitted (state, batch) -> (state, metrics)
    batches: Iterator  # a checkpointable grain iterator of this process's host batches
    to_device: Callable[[Any], Any]  # host batch -> global arrays on the mesh
    shape_fields: tuple[str, ...]  # config fields that fix the state's shapes
    postfix: Callable[[Metrics], dict[str, str]]  # a log's means -> progress-bar text
    hooks: Sequence[Hook] = ()
    on_log: Callable[[int, Metrics], Metrics] | None = None  # extra scalars from a log
    unit: str = "it"
    images_per_step: int = 0  # for the images/s figure


@dataclasses.dataclass
class Result:
    """How a run ended."""

    state: Any
    step: int  # steps done
    num_steps: int
    speeds: list[float]  # steps/s of each log of this start but the first (compilation)
    metrics: dict | None = None  # what the final evaluation measured, when the caller ran one

    @property
    def finished(self) -> bool:
        return self.step >= self.num_steps


def run(trainer: Trainer, config: ml_collections.ConfigDict, workdir: os.PathLike,
        allow_config_change: bool = False) -> Result:
    """Trains `trainer` in `workdir` to trainer.num_steps, resuming from its checkpoints. The
    workdir is held for this run alone, and a config that would change the experiment it holds
    is refused unless `allow_config_change` (rundir.py)."""
    with rundir.claim(workdir, config, allow_config_change,
                      lock=jax.process_index() == 0) as workdir:
        manager = checkpoint.create_manager(workdir, config.keep_checkpoints)
        start, state = _restore_or_init(trainer, manager, config, workdir)
        config_lib.save(workdir, config)
        return _train(trainer, config, workdir, manager, start, state)


def _train(trainer: Trainer, config: ml_collections.ConfigDict, workdir: pathlib.Path,
           manager: Any, start: int, state: Any) -> Result:
    import tqdm  # here: notebooks that only build models need not have it
    bar = tqdm.tqdm(total=trainer.num_steps, initial=start, unit=trainer.unit,
                    desc=trainer.name, smoothing=0.1, disable=jax.process_index() != 0)
    writer = Writer(workdir)
    log = _Log(trainer, writer, bar)
    step = start
    try:
        with StopRequest() as stop:
            for step, batch in zip(range(start + 1, trainer.num_steps + 1), trainer.batches):
                state, metrics = trainer.step(state, trainer.to_device(batch))
                log.add(step, metrics)
                bar.update()
                if itstime(step, config.log_every, trainer.num_steps):
                    log.flush()
                for hook in trainer.hooks:
                    if itstime(step, hook.every, trainer.num_steps):
                        hook.run(step, state, writer)
                stopping = _stop_requested(stop, step, config.log_every)
                if stopping or itstime(step, config.checkpoint_every, trainer.num_steps):
                    log.flush()  # never save parameters that came from a non-finite loss
                    checkpoint.save(manager, step, state, trainer.batches, config)
                if stopping:
                    logging.warning("%s: stopped at %s %d of %d; run the same command to resume",
                                    trainer.name, {"it": "iteration"}.get(trainer.unit, "step"),
                                    step, trainer.num_steps)
                    break
            log.flush()
    finally:
        manager.wait_until_finished()
        bar.close()
        writer.close()
    return Result(state, step, trainer.num_steps, log.speeds)


def _restore_or_init(trainer: Trainer, manager: Any, config: ml_collections.ConfigDict,
                     workdir: pathlib.Path) -> tuple[int, Any]:
    if checkpoint.latest_step(manager) is None:
        return 0, trainer.init()
    # The newest checkpoint that reads back; damaged newer ones are renamed, with a warning.
    restored = checkpoint.restore_newest(manager, workdir, trainer.abstract(), trainer.batches,
                                         config, trainer.shape_fields)
    if restored is None:
        return 0, trainer.init()
    start, state = restored
    unit = {"it": "iteration"}.get(trainer.unit, trainer.unit)
    console.say(f"{trainer.name}: resumed from {unit} {start} in {workdir}")
    return start, state


def _stop_requested(stop: "StopRequest", step: int, log_every: int) -> bool:
    # Several processes vote only at log steps: a vote is a collective, so all take part.
    if jax.process_count() > 1 and step % log_every:
        return False
    return parallel.any_process(stop.requested)


class _Log:
    """Metrics of the steps since the last log: brought to the host only at a log (no sync
    inside an iteration), checked, averaged and written."""

    def __init__(self, trainer: Trainer, writer: "Writer", bar: Any):
        self.trainer, self.writer, self.bar = trainer, writer, bar
        self.pending: list[tuple[int, dict]] = []
        self.speeds: list[float] = []
        self.first = True
        self.timer = time.perf_counter()

    def add(self, step: int, metrics: dict) -> None:
        self.pending.append((step, metrics))

    def flush(self) -> None:
        if not self.pending:
            return
        history = [(s, {n: float(v) for n, v in m.items()})
                   for s, m in jax.device_get(self.pending)]
        self.pending.clear()
        check_finite(history)
        step = history[-1][0]
        means = {name: float(np.mean([m[name] for _, m in history])) for name in history[0][1]}
        now = time.perf_counter()
        speed = len(history) / max(now - self.timer, 1e-9)
        self.timer = now
        if not self.first:  # the first log of a process includes the compilation
            self.speeds.append(speed)
        self.first = False
        means["perf/steps_per_s"] = speed
        means["perf/images_per_s"] = speed * self.trainer.images_per_step
        if self.trainer.on_log is not None:
            means.update(self.trainer.on_log(step, means))
        self.writer.scalars(step, means)
        self.bar.set_postfix(self.trainer.postfix(means), refresh=False)


def check_finite(history: Sequence[tuple[int, Metrics]]) -> None:
    """Raises errors.NonFiniteLossError naming the first step with a NaN or inf, and every
    term that is not finite there."""
    for step, metrics in history:
        bad = [f"{name}={value}" for name, value in metrics.items() if not math.isfinite(value)]
        if bad:
            raise errors.NonFiniteLossError(
                f"non-finite loss at step {step}: {', '.join(bad)}. Training stopped; the last "
                f"checkpoint is from before it. Lower the learning rate or check the data.")


class Writer:
    """TensorBoard (tensorboardX: no TensorFlow needed) and PNG output of process 0; the other
    processes write nothing."""

    def __init__(self, workdir: os.PathLike, enabled: bool | None = None):
        self.workdir = pathlib.Path(workdir)
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self._tb = None
        if self.enabled:
            from tensorboardX import SummaryWriter
            self._tb = SummaryWriter(os.fspath(self.workdir))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self._tb is not None:
            for name, value in values.items():
                self._tb.add_scalar(name, value, step)
            self._tb.flush()

    def text(self, step: int, name: str, text: str) -> None:
        if self._tb is not None:
            self._tb.add_text(name, text, step)
            self._tb.flush()

    def grid(self, step: int, grid: np.ndarray, name: str = "samples") -> None:
        """A uint8 image in TensorBoard and as <workdir>/<name>/step_XXXXXXX.png."""
        if self._tb is not None:
            self._tb.add_image(name, grid, step, dataformats="HWC")
            visualize.save_png(grid, self.workdir / name / f"step_{step:07d}.png")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


class StopRequest:
    """SIGTERM or Ctrl-C asks the loop to save and stop after the current step; a second
    Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        logging.warning("got signal %d: saving a checkpoint and stopping", signum)
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
