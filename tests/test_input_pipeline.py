"""The grain input pipeline: deterministic, restorable, sharded, and flips image and mask together."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from msagan_jax import input_pipeline

TASK = input_pipeline.Task(dataset="in_memory", attribute="Mouth_Slightly_Open")
SIZE = 8


class FakeSource:
    """Elements like TaskSource's: a left-right asymmetric uint8 image and its mask."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:  # grain checks that a restored state fits its source by repr
        return f"FakeSource({self.n})"

    def __getitem__(self, k: int) -> dict:
        rng = np.random.default_rng(k)
        mask = np.zeros((SIZE, SIZE, 1), np.uint8)
        mask[:, : 1 + k % (SIZE - 1)] = 1  # touches the left edge only: a flip shows
        image = np.where(mask == 1, 255, rng.integers(0, 100, (SIZE, SIZE, 3))).astype(np.uint8)
        return {"image": image, "label": np.float32(k % 2), "index": np.int32(k), "mask": mask}


def _train(n=40, batch_size=4, seed=0, **kw):
    return input_pipeline.create_train_loader(
        TASK, batch_size=batch_size, seed=seed, source=FakeSource(n),
        **{"shard_index": 0, "shard_count": 1, **kw})


def _take(iterator, count):
    return [next(iterator) for _ in range(count)]


def _equal(a, b):
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


def test_a_batch_has_the_models_layout():
    batch = next(iter(_train()))
    assert batch["image"].shape == (4, SIZE, SIZE, 3) and batch["image"].dtype == np.float32
    assert batch["image"].min() >= -1.0 and batch["image"].max() == 1.0
    assert batch["mask"].shape == (4, SIZE, SIZE, 1) and set(np.unique(batch["mask"])) <= {0, 1}
    assert batch["label"].shape == (4,) and batch["label"].dtype == np.float32
    np.testing.assert_array_equal(batch["label"], batch["index"] % 2)


def test_the_same_seed_gives_the_same_batches_and_another_seed_others():
    first = _take(iter(_train(seed=1)), 12)
    assert _equal(first, _take(iter(_train(seed=1)), 12))
    assert not _equal(first, _take(iter(_train(seed=2)), 12))


def test_a_flip_moves_image_and_mask_together():
    flipped = unflipped = 0
    for batch in _take(iter(_train()), 20):
        for image, mask, k in zip(batch["image"], batch["mask"], batch["index"]):
            # The mask is exactly where the image is white, flipped or not.
            np.testing.assert_array_equal(mask[..., 0] == 1, (image == 1.0).all(-1))
            original = FakeSource(40)[int(k)]["mask"].astype(np.float32)
            if np.array_equal(mask, original):
                unflipped += 1
            else:
                np.testing.assert_array_equal(mask, original[:, ::-1])
                flipped += 1
    assert flipped > 10 and unflipped > 10


def test_restoring_the_iterator_state_reproduces_the_next_batches():
    iterator = iter(_train(n=30, batch_size=4))
    _take(iterator, 9)  # past the first epoch (30 // 4 = 7 batches)
    state = iterator.get_state()
    expected = _take(iterator, 12)
    resumed = iter(_train(n=30, batch_size=4))
    resumed.set_state(state)
    assert _equal(_take(resumed, 12), expected)


def test_training_repeats_and_drops_the_last_partial_batch():
    epoch_batches = _take(iter(_train(n=10, batch_size=4)), 5)
    assert all(b["image"].shape[0] == 4 for b in epoch_batches)
    first_epoch = np.concatenate([b["index"] for b in epoch_batches])
    assert set(first_epoch[:8]) < set(range(10))


def test_two_processes_shards_are_disjoint_and_cover_the_split():
    n = 37
    shards = [np.concatenate([b["index"] for b in input_pipeline.create_eval_loader(
        TASK, batch_size=5, source=FakeSource(n), shard_index=i, shard_count=2)])
        for i in range(2)]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(np.concatenate(shards)) == list(range(n))
    train = [np.concatenate([b["index"] for b in _take(iter(_train(
        n=n, batch_size=4, shard_index=i, shard_count=2)), 9)]) for i in range(2)]
    assert not set(train[0]) & set(train[1])  # each process reads only its own faces


def test_evaluation_reads_every_example_once_in_order_unflipped():
    batches = list(input_pipeline.create_eval_loader(TASK, batch_size=4, source=FakeSource(10),
                                                     shard_index=0, shard_count=1))
    assert [len(b["index"]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b["index"] for b in batches]), np.arange(10))
    for batch in batches:
        for mask, k in zip(batch["mask"], batch["index"]):
            np.testing.assert_array_equal(mask, FakeSource(10)[int(k)]["mask"])


def test_worker_processes_give_the_same_batches_on_every_run_and_restore_their_state():
    # Each worker batches its own records, so the order differs from worker_count=0, but it
    # is fixed by (seed, worker_count), and so is a restored state.
    iterator = iter(_train(seed=5, worker_count=2))
    first = _take(iterator, 3)
    state = iterator.get_state()
    expected = _take(iterator, 3)
    again = iter(_train(seed=5, worker_count=2))
    assert _equal(_take(again, 3), first)
    resumed = iter(_train(seed=5, worker_count=2))
    resumed.set_state(state)
    assert _equal(_take(resumed, 3), expected)


def test_a_global_attribute_has_no_mask_and_bad_names_are_refused():
    assert input_pipeline.Task(attribute="Young").mask_name is None
    assert input_pipeline.Task(attribute="Smiling").mask_name == "mouth"
    with pytest.raises(ValueError, match="Mouth_Open"):
        input_pipeline.Task(attribute="Mouth_Open")
    with pytest.raises(ValueError, match="lips"):
        input_pipeline.Task(guide_mask="lips")


def test_a_batch_that_does_not_split_over_the_devices_is_refused():
    assert input_pipeline.process_batch_size(16, process_count=2, local_device_count=4) == 8
    with pytest.raises(ValueError, match="batch_size=12"):
        input_pipeline.process_batch_size(12, process_count=2, local_device_count=4)
    with pytest.raises(ValueError, match="shard_count=3"):
        _train(batch_size=4, shard_count=3)


def test_an_unbuilt_dataset_says_how_to_build_it(tmp_path):
    task = input_pipeline.Task(dataset="celebamask/128", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="tfds build celebamask/128 --imports"):
        input_pipeline.create_train_loader(task, batch_size=4, seed=0)


def test_a_built_synthetic_dataset_feeds_the_pipeline(synthetic_data_dir):
    task = input_pipeline.Task(dataset="celebamask_synthetic/64_n96_s3",
                               data_dir=str(synthetic_data_dir))
    batch = next(iter(input_pipeline.create_train_loader(task, batch_size=8, seed=0,
                                                         shard_index=0, shard_count=1)))
    assert batch["image"].shape == (8, 64, 64, 3) and batch["mask"].shape == (8, 64, 64, 1)
    assert 0 < batch["mask"].mean() < 0.2  # a mouth: present, and small
    evaluated = sum(len(b["index"]) for b in input_pipeline.create_eval_loader(
        task, batch_size=8, split="validation", shard_index=0, shard_count=1))
    import tensorflow_datasets as tfds
    assert evaluated == len(tfds.data_source(task.dataset, split="validation",
                                             data_dir=task.data_dir, download=False))


def test_a_batch_without_a_mask_is_flipped_and_scaled():
    batch = {"image": np.full((2, 4, 4, 3), 255, np.uint8), "label": np.zeros(2, np.float32)}
    out = input_pipeline.RandomFlipAndScale().random_map(batch, np.random.default_rng(0))
    assert "mask" not in out and out["image"].dtype == np.float32
    np.testing.assert_array_equal(out["image"], 1.0)


def test_auto_workers_read_in_the_training_process_on_a_cpu_and_in_4_processes_elsewhere():
    resolve = input_pipeline.resolve_worker_count
    assert resolve(-1, "cpu") == 0  # the CPU's cores run the training step
    assert resolve(-1, "gpu") == resolve(-1, "tpu") == input_pipeline.ACCELERATOR_WORKERS == 4
    assert resolve(0, "gpu") == 0 and resolve(2, "cpu") == 2  # a set count is kept
    assert resolve(-1) == (0 if jax.default_backend() == "cpu" else 4)
