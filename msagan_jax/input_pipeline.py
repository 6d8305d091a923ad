"""Input pipeline: grain over `tfds.data_source`, with no TensorFlow.

A training element is a dict of numpy arrays, batched along axis 0:

    image  float32 (B, H, W, 3)  in [-1, 1]
    label  float32 (B,)          the chosen attribute, 0 or 1
    mask   float32 (B, H, W, 1)  its guide mask, 0 or 1 (absent for a global attribute)
    index  int32   (B,)          the face number k of CelebA-HQ-img/<k>.jpg

The training loader shuffles with a seed, repeats forever, flips image and mask together (if
asked: `random_flip`), drops the last partial batch and reads only this process's shard of the
split. Its iterator state (`iterator.get_state()`) restores exactly where it stopped. The
evaluation loader reads every example of a split once, in order, unflipped, keeping the last
partial batch.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from typing import Any

import grain
import jax
from absl import flags
import numpy as np
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.proto import tf_example_pb2

import tfds_celebamask  # registers the celebamask builders with TFDS
from msagan_jax import errors
from tfds_celebamask.celebamask import celebamask_dataset_builder, layout


@dataclasses.dataclass(frozen=True)
class Task:
    """What the editor learns: one attribute of one built dataset, and its guide mask."""

    dataset: str = "celebamask/128"  # a TFDS name with its config, e.g. celebamask_synthetic/64
    data_dir: str | None = None  # TFDS data dir; None: $TFDS_DATA_DIR or ~/tensorflow_datasets
    attribute: str = "Mouth_Slightly_Open"
    # The guide mask's region; "" looks it up in layout.ATTRIBUTE_GUIDE_MASK, "none" uses none.
    guide_mask: str = ""

    def __post_init__(self):
        if self.attribute not in layout.ATTRIBUTE_NAMES:
            raise errors.ConfigError(f"unknown attribute {self.attribute!r}; the 40 CelebA attributes "
                             f"are {', '.join(layout.ATTRIBUTE_NAMES)}")
        if self.guide_mask not in ("", "none") + layout.GUIDE_MASK_NAMES:
            raise errors.ConfigError(f"unknown guide mask {self.guide_mask!r}; choose one of "
                             f"{', '.join(layout.GUIDE_MASK_NAMES)}, 'none', or '' for "
                             "the attribute's own")

    @property
    def mask_name(self) -> str | None:
        """The guide-mask feature to read, or None for a global attribute."""
        if self.guide_mask == "none":
            return None
        return self.guide_mask or layout.ATTRIBUTE_GUIDE_MASK.get(self.attribute)


def task_from_config(config: Any) -> Task:
    """The Task of a config (see configs/default.py)."""
    return Task(dataset=config.dataset, data_dir=config.data_dir or None,
                attribute=config.attribute, guide_mask=config.guide_mask)


def prepare(config: Any) -> tfds.core.DatasetInfo:
    """Makes sure the configured dataset is built, and fits the config; returns its info.

    A synthetic dataset (celebamask_synthetic/...) is built on the spot. The real one needs the
    manual download: a DatasetNotFoundError then gives the exact `tfds build` command.
    """
    task = task_from_config(config)
    try:
        builder = tfds.builder(task.dataset, data_dir=task.data_dir)
    except (ValueError, tfds.core.registered.DatasetNotFoundError) as e:
        raise errors.ConfigError(f"dataset={task.dataset!r}: {e}") from None
    if not builder.is_prepared():
        if builder.name != tfds_celebamask.CelebAMaskSynthetic.name:
            raise DatasetNotFoundError(task, "train", FileNotFoundError(
                f"{task.dataset} is not built in {builder.data_dir}"))
        builder.download_and_prepare()
    resolution = builder.info.features["image"].shape[0]
    if resolution != config.image_size:
        raise errors.ConfigError(f"image_size={config.image_size} but {task.dataset} holds "
                         f"{resolution}x{resolution} images; set --config.image_size="
                         f"{resolution} or choose the dataset's {config.image_size} config")
    return builder.info


def data_source(task: Task, split: str, counterparts: bool = False) -> "TaskSource":
    """Random-access source of `split` that decodes only what the task reads (and, if asked
    and the dataset holds them, each face's true counterpart: see TaskSource)."""
    return TaskSource(task, split, counterparts=counterparts)


class TaskSource:
    """One split of a built dataset, as the task's elements (before batching and scaling).

    An element is {"image": uint8 (H, W, 3), "label": float32, "index": int32, and "mask":
    uint8 (H, W, 1) unless the attribute is global}; with `counterparts`, on a dataset that
    stores them (celebamask_synthetic's `counterparts/<attribute>`), also "counterpart": uint8
    (H, W, 3), the same face with the attribute flipped, and "has_counterpart": float32 1 or 0
    (the train split holds none; its counterpart is zeros). TFDS's own decoding turns all the
    features of an example into numpy (some 400 us an example, before any image is decoded);
    this reads the serialized tf.Example and decodes only these. Picklable, for grain's workers.
    """

    def __init__(self, task: Task, split: str, counterparts: bool = False):
        self.task, self.split = task, split
        try:
            self._records = tfds.data_source(
                task.dataset, split=split, data_dir=task.data_dir, download=False,
                deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
        except Exception as e:  # TFDS raises several types for "not built"; say what to do
            raise DatasetNotFoundError(task, split, e) from e
        self._image_shape = tuple(self._records.dataset_info.features["image"].shape)
        self._label_key = f"attributes/{task.attribute}"
        self._mask_key = None if task.mask_name is None else f"guide_masks/{task.mask_name}"
        features = self._records.dataset_info.features
        stored = (features["counterparts"].keys() if "counterparts" in features.keys()
                  else ())
        self._counterpart_key = (f"counterparts/{task.attribute}"
                                 if counterparts and task.attribute in stored else None)

    @property
    def has_counterparts(self) -> bool:
        """Whether elements carry "counterpart" (the dataset stores the attribute's)."""
        return self._counterpart_key is not None

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        feature = tf_example_pb2.Example.FromString(self._records[i]).features.feature
        element = {
            "image": np.frombuffer(feature["image"].bytes_list.value[0], np.uint8).reshape(
                self._image_shape),
            "label": np.float32(feature[self._label_key].int64_list.value[0]),
            "index": np.int32(feature["index"].int64_list.value[0]),
        }
        if self._mask_key is not None:
            with Image.open(io.BytesIO(feature[self._mask_key].bytes_list.value[0])) as png:
                element["mask"] = np.asarray(png)[..., None]
        if self._counterpart_key is not None:
            stored = feature[self._counterpart_key].bytes_list.value[0]
            element["has_counterpart"] = np.float32(bool(stored))
            element["counterpart"] = (np.frombuffer(stored, np.uint8).reshape(self._image_shape)
                                      if stored else np.zeros(self._image_shape, np.uint8))
        return element

    def __repr__(self) -> str:  # grain checks a restored iterator state against this
        return (f"TaskSource({self.task.dataset!r}, split={self.split!r}, "
                f"data_dir={self.task.data_dir!r}, attribute={self.task.attribute!r}, "
                f"mask={self.task.mask_name!r}, "
                # Only when read: older runs' saved iterator states name no counterparts.
                + ("counterparts=True, " if self.has_counterparts else "")
                + f"n={len(self)})")


class DatasetNotFoundError(errors.Error, FileNotFoundError):
    """The dataset (or split) has not been built in the data dir."""

    def __init__(self, task: Task, split: str, cause: Exception):
        self.task = task
        name = task.dataset.split("/")[0]
        if name == "celebamask":
            how = (f"build it from your CelebAMask-HQ download with\n"
                   f"  tfds build {task.dataset} --imports tfds_celebamask --manual_dir DIR"
                   + (f" --data_dir {task.data_dir}" if task.data_dir else "")
                   + "\n\n" + celebamask_dataset_builder.MANUAL_DOWNLOAD_INSTRUCTIONS)
        else:
            how = ("build it with tfds_celebamask.build_synthetic(...) or "
                   f"tfds build {task.dataset} --imports tfds_celebamask")
        super().__init__(f"cannot read split {split!r} of {task.dataset} from "
                         f"{task.data_dir or 'the default TFDS data dir'} ({cause}); {how}")


def _to_model_range(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1]."""
    x = np.multiply(pixels, np.float32(1 / 127.5), dtype=np.float32)
    x -= 1.0  # in place: one pass over the pixels fewer
    return x


def _scale(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """uint8 batch -> the model's batch: image in [-1, 1], mask in {0, 1}, both float32."""
    scaled = {**batch, "image": _to_model_range(batch["image"])}
    if "counterpart" in batch:  # the true edit, on the image's scale
        scaled["counterpart"] = _to_model_range(batch["counterpart"])
    if "mask" in batch:
        scaled["mask"] = batch["mask"].astype(np.float32)
    return scaled


class RandomFlipAndScale(grain.transforms.RandomMap):
    """Flips each example of a batch (image and mask together) with probability 1/2, scales.

    Works on whole batches: per-example transforms cost grain ~100 us each in bookkeeping,
    more than the flip itself.
    """

    def random_map(self, batch: dict[str, np.ndarray], rng: np.random.Generator):
        flip = rng.integers(2, size=len(batch["image"])).astype(bool)
        batch = dict(batch)
        for key in ("image", "mask"):
            if key in batch:
                batch[key] = np.where(flip[:, None, None, None], batch[key][:, :, ::-1],
                                      batch[key])
        return _scale(batch)


class Scale(grain.transforms.Map):
    """Scales without augmentation (evaluation)."""

    def map(self, batch: dict[str, np.ndarray]):
        return _scale(batch)


def process_batch_size(global_batch_size: int, process_count: int | None = None,
                       local_device_count: int | None = None) -> int:
    """This process's share of a global batch; it must split evenly over its devices."""
    process_count = jax.process_count() if process_count is None else process_count
    local_device_count = (jax.local_device_count() if local_device_count is None
                          else local_device_count)
    devices = process_count * local_device_count
    if global_batch_size <= 0 or global_batch_size % devices:
        raise errors.ConfigError(f"batch_size={global_batch_size} must be a positive multiple of "
                                 f"the "
                         f"number of devices ({process_count} process(es) x "
                         f"{local_device_count} local device(s) = {devices})")
    return global_batch_size // process_count


# Reading processes for input_workers=-1 off a CPU: one process reads 64 faces at 128 px in
# ~20 ms (2 CPU cores here), while with workers filling their buffers the training process
# pays ~0.3 ms a batch; 4 feed well over the ~8,000 images/s an H200 trains E1D1 at (bf16,
# batch 256). A fixed number, not one per core: grain's iterator state holds the count, and a
# run resumes only with the count it started with.
ACCELERATOR_WORKERS = 4


def resolve_worker_count(input_workers: int, platform: str | None = None) -> int:
    """config.input_workers -> grain's worker_count: -1 means 0 on a CPU (its cores run the
    training step), ACCELERATOR_WORKERS elsewhere; `platform` defaults to JAX's backend."""
    if input_workers != -1:
        return input_workers
    platform = jax.default_backend() if platform is None else platform
    return 0 if platform == "cpu" else ACCELERATOR_WORKERS


def _loader(source: Any, sampler: Any, operations: list, worker_count: int,
            batch_size: int) -> grain.DataLoader:
    if worker_count > 0 and not flags.FLAGS.is_parsed():
        # grain's workers read its absl flags; outside an absl app (notebooks, tests) nobody
        # parsed them, so take their defaults.
        flags.FLAGS.mark_as_parsed()
    # One reading thread a process, a couple of batches ahead: grain's default (16 threads,
    # 500 elements) polls its whole buffer per element and halves throughput on a few cores.
    read_options = grain.ReadOptions(num_threads=1, prefetch_buffer_size=max(32, 2 * batch_size))
    return grain.DataLoader(data_source=source, sampler=sampler, operations=operations,
                            worker_count=worker_count, read_options=read_options)


def _shard(shard_index: int | None, shard_count: int | None, drop_remainder: bool):
    if shard_index is None and shard_count is None:
        return grain.sharding.ShardByJaxProcess(drop_remainder=drop_remainder)
    return grain.sharding.ShardOptions(shard_index=shard_index or 0,
                                       shard_count=shard_count or 1,
                                       drop_remainder=drop_remainder)


def create_train_loader(task: Task, *, batch_size: int, seed: int, split: str = "train",
                        random_flip: bool = True, worker_count: int = 0,
                        shard_index: int | None = None, shard_count: int | None = None,
                        source: Any = None) -> grain.DataLoader:
    """Shuffled, repeated batches of this process's shard, flipped at random if `random_flip`.

    batch_size is the *global* batch; each of the shard_count processes (by default the JAX
    processes) reads batch_size / shard_count examples per batch. The batches depend only on
    (task, seed, shard): restoring an iterator's state resumes the same sequence.
    """
    shard = _shard(shard_index, shard_count, drop_remainder=True)
    if shard_index is None and shard_count is None:
        per_process = process_batch_size(batch_size)
    elif batch_size <= 0 or batch_size % shard.shard_count:
        raise errors.ConfigError(f"batch_size={batch_size} must be a positive multiple of "
                         f"shard_count={shard.shard_count}")
    else:
        per_process = batch_size // shard.shard_count
    source = data_source(task, split) if source is None else source
    if len(source) < shard.shard_count * per_process:
        raise errors.ConfigError(f"split {split!r} of {task.dataset} has {len(source)} examples, "
                                 f"fewer "
                         f"than one global batch of {batch_size}")
    sampler = grain.samplers.IndexSampler(
        num_records=len(source), shard_options=shard, shuffle=True, num_epochs=None, seed=seed)
    augment = RandomFlipAndScale() if random_flip else Scale()
    return _loader(source, sampler, [grain.transforms.Batch(per_process, drop_remainder=True),
                                     augment], worker_count, per_process)


class _Slice:
    """Examples [start, stop) of a random-access source."""

    def __init__(self, source: Any, start: int, stop: int):
        self.source, self.start, self.stop = source, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.source[self.start + i]

    def __repr__(self) -> str:
        return f"{self.source!r}[{self.start}:{self.stop}]"


def head(source: Any, n: int) -> _Slice:
    """The first `n` examples of a random-access source (all of it when shorter)."""
    return _Slice(source, 0, min(n, len(source)))


def create_eval_loader(task: Task, *, batch_size: int, split: str = "test",
                       worker_count: int = 0, shard_index: int | None = None,
                       shard_count: int | None = None, source: Any = None) -> grain.DataLoader:
    """Every example of this process's shard of `split`, once, in order, unflipped.

    The last batch may be smaller than batch_size; shards differ in size by at most one.
    """
    shard = _shard(shard_index, shard_count, drop_remainder=False)
    source = data_source(task, split) if source is None else source
    # grain's samplers shard by striding and drop the remainder; evaluation needs every
    # example, so each process reads a contiguous slice instead (sizes differ by at most one).
    base, extra = divmod(len(source), shard.shard_count)
    start = shard.shard_index * base + min(shard.shard_index, extra)
    source = _Slice(source, start, start + base + (shard.shard_index < extra))
    sampler = grain.samplers.SequentialSampler(num_records=len(source))
    return _loader(source, sampler, [grain.transforms.Batch(batch_size, drop_remainder=False),
                                     Scale()], worker_count, batch_size)


def padded_eval_batches(task: Task, *, batch_size: int, split: str = "test",
                        source: Any = None) -> Iterator[dict[str, np.ndarray]]:
    """Every example of `split` once, in this process's share of fixed-size global batches.

    Each batch holds exactly batch_size / process_count examples and a `weight` field (1 for a
    real example, 0 for padding), and every process yields the same number of batches, so they
    can be assembled into global arrays and one compiled function sees one shape.
    """
    per_process = process_batch_size(batch_size)
    source = data_source(task, split) if source is None else source
    largest_shard = -(-len(source) // jax.process_count())
    num_batches = -(-largest_shard // per_process)
    loader = iter(create_eval_loader(task, batch_size=per_process, split=split, source=source))
    template = None
    for _ in range(num_batches):
        batch = next(loader, None)
        if batch is None:  # this process's shard ran out before the largest one
            batch = {k: v[:0] for k, v in template.items()}
        template = batch
        n = len(batch["image"])
        batch = {k: np.concatenate([v, np.zeros((per_process - n,) + v.shape[1:], v.dtype)])
                 for k, v in batch.items()}
        batch["weight"] = (np.arange(per_process) < n).astype(np.float32)
        yield batch

