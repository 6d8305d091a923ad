"""Shared test fixtures: CPU-only JAX, the real-sample path, and small built datasets."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile

# Tests run on the CPU even where jax[cuda12] is installed; say so before jax is imported.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Small datasets are read in-process; tests that want the worker pool set this themselves.
os.environ.setdefault("CELEBAMASK_WORKERS", "1")
# Tests compile many tiny graphs and run each a few times: XLA's backend optimisations cost
# more than they save there (an iteration compiles in 8 s, not 13 s). Same numbers.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=0").strip()
# Runs that compile the same graph (a run and its resumption) compile it once.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="jax_cache_"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SAMPLE = pathlib.Path(os.environ.get("CELEBAMASK_SAMPLE",
                                     REPO.parent / "shared" / "celebamask_sample"))

needs_sample = pytest.mark.skipif(
    not (SAMPLE / "CelebA-HQ-img").is_dir(),
    reason=f"the real CelebAMask-HQ sample is absent ({SAMPLE}); set $CELEBAMASK_SAMPLE")

# Makes TensorFlow look uninstalled (find_spec finds nothing, import fails), as on a machine
# that never installed it: benchmarks/gpu_check.py's finder (that module imports no JAX). Prepend
# to the code run by `run_without_tensorflow`; that code may use `sys` without importing it.
HIDE_TENSORFLOW = '''
import sys
from benchmarks.gpu_check import hide_tensorflow
hide_tensorflow()
'''


def run_without_tensorflow(code: str, timeout: float = 300) -> str:
    """Runs `code` in a fresh interpreter where TensorFlow cannot be imported; returns stdout.

    The code's last act should be to check `"tensorflow" not in sys.modules`.
    """
    result = subprocess.run([sys.executable, "-c", HIDE_TENSORFLOW + code], cwd=REPO,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def build_from(manual_dir: os.PathLike, data_dir: os.PathLike, config: str = "64"):
    """Builds `celebamask/<config>` from a CelebAMask-HQ folder with the Python API."""
    import tensorflow_datasets as tfds
    import tfds_celebamask  # noqa: F401  (registers the builders)

    builder = tfds.builder(f"celebamask/{config}", data_dir=os.fspath(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)))
    return builder


@pytest.fixture(scope="session")
def synthetic_layout(tmp_path_factory) -> pathlib.Path:
    """A small synthetic CelebAMask-HQ folder (24 faces, 128 px faces, 64 px parts)."""
    from tfds_celebamask import synthetic

    root = tmp_path_factory.mktemp("synthetic_layout") / "CelebAMask-HQ"
    synthetic.generate(root, 24, size=128, seed=7)
    return root


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory) -> pathlib.Path:
    """A TFDS data dir holding celebamask_synthetic/64_n96_s3, built with no manual step."""
    import tfds_celebamask

    data_dir = tmp_path_factory.mktemp("tfds")
    tfds_celebamask.build_synthetic(os.fspath(data_dir), resolution=64, num_faces=96, seed=3)
    return data_dir


# The tiny recipe: 64 px synthetic faces, 4-channel nets, batch 2, evaluation every 2 iterations.
TINY = {"dataset": "celebamask_synthetic/64_n96_s3", "image_size": 64, "width": 4,
        "num_down": 2, "num_res_blocks": 1, "d_width": 4, "d_num_layers": 3, "batch_size": 2,
        "num_samples": 2, "eval_batch_size": 8, "eval_examples": 6, "eval_every": 2,
        "judge.depth": 10, "judge.width": 4, "judge.epochs": 1, "judge.batch_size": 8,
        # One device: a pytest process fixes its device count at the first JAX use, whichever
        # test that is; 1 vs several devices is tested apart (test_parallel.py).
        "cpu_devices": 1}
TINY_FLAGS = tuple(f"--config.{name}={value}" for name, value in TINY.items())


def set_fields(config, fields: dict):
    """Sets config fields by dotted name ("judge.depth"); returns the config."""
    for name, value in fields.items():
        *parents, leaf = name.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return config


def tiny_config(data_dir: os.PathLike, **overrides):
    """configs/default.py shrunk to seconds on a CPU (TINY), 4 iterations, saving every 2.
    Overrides may name nested fields with "__" for "." (judge__depth=18)."""
    from configs import default

    config = set_fields(default.get_config(), TINY)
    config.update(data_dir=os.fspath(data_dir), num_train_steps=4, log_every=2,
                  sample_every=2, checkpoint_every=2)
    return set_fields(config, {k.replace("__", "."): v for k, v in overrides.items()})


@pytest.fixture(scope="session")
def trained_run(synthetic_data_dir, tmp_path_factory) -> pathlib.Path:
    """A tiny editor trained 4 iterations, its judge in <run>/judge, evaluated: main.py's
    train mode as a library call."""
    from msagan_jax import experiment

    workdir = tmp_path_factory.mktemp("trained_run")
    result = experiment.run(tiny_config(synthetic_data_dir, judge__workdir="judge"), workdir)
    assert result.finished and result.metrics["examples"] == 10
    return workdir
