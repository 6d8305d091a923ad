"""Images per second out of the training input pipeline, by number of grain worker processes.

Builds (once) a synthetic `celebamask_synthetic/<resolution>_n<num>_s0` dataset, then times
the training loader (shuffle, flip, scale to [-1, 1], batch) after a warm-up, several times
per worker count, and prints the medians.

    python -m benchmarks.input_pipeline_speed --resolution 128 --num 3000 --workers 0,1,2
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("resolution", 128, "Dataset resolution: 64, 128 or 256.")
flags.DEFINE_integer("num", 3000, "Synthetic faces in the dataset (about 80% are train).")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_integer("batches", 100, "Batches timed per repeat.")
flags.DEFINE_integer("repeats", 3, "Timed repeats per worker count; the median is reported.")
flags.DEFINE_list("workers", ["0", "1", "2"], "grain worker counts to compare.")
flags.DEFINE_string("data_dir", os.path.join(tempfile.gettempdir(), "msagan_bench_tfds"),
                    "TFDS data dir (the dataset is built there once).")


def main(argv) -> None:
    del argv
    import tfds_celebamask
    from msagan_jax import input_pipeline

    builder = tfds_celebamask.build_synthetic(FLAGS.data_dir, resolution=FLAGS.resolution,
                                              num_faces=FLAGS.num)
    task = input_pipeline.Task(dataset=f"celebamask_synthetic/{builder.builder_config.name}",
                               data_dir=FLAGS.data_dir)
    print(f"{task.dataset}: {builder.info.splits['train'].num_examples} training faces at "
          f"{FLAGS.resolution} px, batch {FLAGS.batch_size}, {os.cpu_count()} cores")
    for workers in map(int, FLAGS.workers):
        loader = input_pipeline.create_train_loader(
            task, batch_size=FLAGS.batch_size, seed=0, worker_count=workers,
            shard_index=0, shard_count=1)
        iterator = iter(loader)
        for _ in range(10):  # warm-up: worker start-up, first reads
            next(iterator)
        rates = []
        for _ in range(FLAGS.repeats):
            start = time.perf_counter()
            for _ in range(FLAGS.batches):
                next(iterator)
            rates.append(FLAGS.batches * FLAGS.batch_size / (time.perf_counter() - start))
        print(f"workers={workers}: median {statistics.median(rates):.0f} images/s "
              f"(runs: {', '.join(f'{r:.0f}' for r in rates)})", flush=True)
        del iterator


if __name__ == "__main__":
    app.run(main)
