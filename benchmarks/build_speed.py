"""How fast the `celebamask` builder turns a full-resolution CelebAMask-HQ folder into TFDS.

Writes (once) a synthetic folder in the dataset's full-resolution layout (1024x1024 JPEG faces,
512x512 part PNGs), builds `celebamask/<resolution>` from it with the builder's own code
(worker pool included) several times, and prints the median images per second and what that
means for the full 30,000 faces. With --real DIR it also times the per-face read on real
CelebAMask-HQ files (e.g. ../shared/celebamask_sample), to check that synthetic faces cost
what real ones do.

    python -m benchmarks.build_speed --num 600 --resolution 128 --repeats 3
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("num", 600, "Synthetic faces in the layout.")
flags.DEFINE_integer("resolution", 128, "Config to build: 64, 128 or 256.")
flags.DEFINE_integer("repeats", 3, "Builds to time; the median is reported.")
flags.DEFINE_string("layout", os.path.join(tempfile.gettempdir(), "celebamask_bench_layout"),
                    "Where the full-resolution synthetic folder is written (kept for reuse).")
flags.DEFINE_string("real", None, "A real CelebAMask-HQ folder to time per-face reads on.")


def _ensure_layout(root: str, num: int) -> None:
    from tfds_celebamask import synthetic
    from tfds_celebamask.celebamask import layout

    if not layout.missing_entries(root) and len(layout.list_images(root)) == num:
        return
    shutil.rmtree(root, ignore_errors=True)
    start = time.perf_counter()
    synthetic.generate(root, num, size=1024, seed=0, workers=os.cpu_count() or 1)
    print(f"wrote {num} synthetic 1024 px faces to {root} in "
          f"{time.perf_counter() - start:.0f} s (not part of the figure below)")


def _time_reads(root: str, resolution: int) -> float:
    """Median seconds to read, resize and encode one face, in this process."""
    from tfds_celebamask.celebamask import pool
    from tfds_celebamask.celebamask import layout

    records = layout.read_index(root)
    times = []
    for record in records:
        start = time.perf_counter()
        pool.encode_face(root, record, resolution)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv) -> None:
    del argv
    import tensorflow_datasets as tfds

    import tfds_celebamask  # noqa: F401  (registers the builder)
    from tfds_celebamask.celebamask import pool

    _ensure_layout(FLAGS.layout, FLAGS.num)
    workers = pool.worker_count(FLAGS.num)
    rates = []
    for repeat in range(FLAGS.repeats):
        data_dir = tempfile.mkdtemp(prefix="celebamask_bench_tfds_")
        try:
            start = time.perf_counter()
            builder = tfds.builder(f"celebamask/{FLAGS.resolution}", data_dir=data_dir)
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=FLAGS.layout))
            seconds = time.perf_counter() - start
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
        rates.append(FLAGS.num / seconds)
        print(f"build {repeat + 1}: {FLAGS.num} faces in {seconds:.1f} s = "
              f"{rates[-1]:.1f} images/s")
    median = statistics.median(rates)
    print(f"median: {median:.1f} images/s with {workers} worker process(es) on "
          f"{os.cpu_count()} cores; 30,000 faces at {FLAGS.resolution} px would take "
          f"{30000 / median / 60:.1f} min")
    one = _time_reads(FLAGS.layout, FLAGS.resolution)
    print(f"one face, read + resize + encode in one process: synthetic {one * 1e3:.1f} ms")
    if FLAGS.real:
        print(f"                                              real      "
              f"{_time_reads(FLAGS.real, FLAGS.resolution) * 1e3:.1f} ms ({FLAGS.real})")


if __name__ == "__main__":
    app.run(main)
