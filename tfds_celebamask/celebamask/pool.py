"""Reads CelebAMask-HQ faces into TFDS examples, in a pool of worker processes.

Decoding a 1024 px JPEG and a dozen 512 px part PNGs costs some 35 ms a face; the pool spreads
that over the cores. Kept apart from the builder module, which TFDS's builder tests keep free
of `os` calls.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from . import layout

# Worker processes used to read and resize faces; one per core unless set.
WORKERS_ENV = "CELEBAMASK_WORKERS"
# Below this many faces a pool costs more (interpreter start-up) than it saves.
_MIN_FACES_FOR_POOL = 64


def encode_face(root: str, record: layout.FaceRecord, resolution: int) -> dict[str, Any]:
    """Reads one face and returns a TFDS example whose images are already PNG bytes.

    Runs in worker processes: PNG encoding of the masks happens here, in parallel, so the
    writer only serialises bytes.
    """
    face = layout.read_face(root, record.index, resolution)
    return {
        "image": face["image"],
        "attributes": layout.attributes_dict(record.attributes),
        "segmentation": layout.encode_png(face["segmentation"][..., 0]),
        "guide_masks": {name: layout.encode_png(mask[..., 0])
                        for name, mask in face["guide_masks"].items()},
        "index": record.index,
        "celeba_file": record.celeba_file,
    }


# A function (root, record, resolution) -> example, like encode_face. Workers receive it
# pickled, so it must be a module-level function.
EncodeFn = Callable[[str, layout.FaceRecord, int], dict[str, Any]]


def _encode_task(task: tuple[EncodeFn, str, layout.FaceRecord, int]
                 ) -> tuple[int, dict[str, Any]]:
    encode, root, record, resolution = task
    return record.index, encode(root, record, resolution)


@contextlib.contextmanager
def _importable_by_children() -> Iterator[None]:
    """Lets spawned workers import this package, also when `tfds build` loaded it by path.

    In `tfds build` run inside the dataset folder, the package is importable only while TFDS
    holds its parent folder on sys.path; spawned children copy sys.path at start, so the
    folder is put back for as long as the pool starts.
    """
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(layout.__file__)))
    root = package_parent
    for _ in range(layout.__name__.count(".") - 1):  # tfds_celebamask.celebamask.layout
        root = os.path.dirname(root)
    added = [p for p in (package_parent, root) if p not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for p in added:
            sys.path.remove(p)


def worker_count(num_faces: int) -> int:
    """Worker processes for `num_faces`: $CELEBAMASK_WORKERS, else one per core."""
    value = os.environ.get(WORKERS_ENV)
    if value is not None:
        try:
            workers = int(value)
        except ValueError:
            raise ValueError(f"${WORKERS_ENV} must be a whole number, got {value!r}") from None
    else:
        workers = os.cpu_count() or 1
        if num_faces < _MIN_FACES_FOR_POOL:
            workers = 1
    return max(1, workers)


class FaceReader:
    """Encodes the faces of every split with one pool of worker processes.

    Starting a spawned worker costs seconds (a fresh interpreter importing TFDS), so the pool
    is started once, on first use, and shared by the splits' generators; it closes when the
    last of them finishes. `encode` makes each example (default: `encode_face`); a builder
    that stores more per face passes its own module-level function.
    """

    def __init__(self, root: str, resolution: int, num_faces: int, num_splits: int,
                 encode: EncodeFn = encode_face):
        self.root, self.resolution, self.encode_fn = root, resolution, encode
        self.workers = worker_count(num_faces)
        self._open_splits = num_splits
        self._pool: Any = None

    def encode(self, records: list[layout.FaceRecord]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yields (key, example) for `records`, in order."""
        tasks = [(self.encode_fn, self.root, r, self.resolution) for r in records]
        try:
            if self.workers == 1:
                yield from map(_encode_task, tasks)
                return
            if self._pool is None:
                # spawn, not fork: the parent may hold TensorFlow's threads (`tfds build`).
                with _importable_by_children():
                    self._pool = multiprocessing.get_context("spawn").Pool(self.workers)
            yield from self._pool.imap(_encode_task, tasks, chunksize=16)
        except BaseException:  # an unreadable face, or the writer stopped reading
            self.close()
            raise
        finally:
            self._open_splits -= 1
            if self._open_splits <= 0:
                self.close()

    def close(self) -> None:
        """Stops the worker processes (also after an error: nothing is left running)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
