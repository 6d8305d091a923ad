"""What every training loop here shares: TensorBoard/PNG output, stopping on a signal, and a
vote across processes. Used by train.py (the editor) and classifier.py (the judge)."""

from __future__ import annotations

import os
import pathlib
import signal
import threading

import jax
import numpy as np
from absl import logging

from msagan_jax import visualize


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
    """SIGTERM or Ctrl-C asks the loop to save and stop after the current iteration; a second
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


def any_process(flag: bool) -> bool:
    """True when `flag` is set in any process (every process must stop at the same step)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils
    return bool(np.any(multihost_utils.process_allgather(np.array(flag))))


def process_sum(value: float) -> float:
    """`value` summed over all processes (e.g. counts of each process's own examples)."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils
    return float(np.sum(multihost_utils.process_allgather(np.array(value))))
