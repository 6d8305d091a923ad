"""main.py prepares the configured data: builds a synthetic set, explains a missing real one."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def _main(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", "--config=configs/default.py", *flags],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_main_builds_a_missing_synthetic_dataset_and_reports_its_splits(tmp_path):
    result = _main("--config.dataset=celebamask_synthetic/64_n30_s0",
                   f"--config.data_dir={tmp_path}", "--config.image_size=64")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "celebamask_synthetic/64_n30_s0/1.0.0: train 24, validation 3, test 3" in result.stdout


def test_main_gives_the_build_command_for_the_real_dataset(tmp_path):
    result = _main(f"--config.data_dir={tmp_path}")
    assert result.returncode == 1
    assert (f"tfds build celebamask/128 --imports tfds_celebamask --manual_dir DIR "
            f"--data_dir {tmp_path}") in result.stderr
    assert "CelebAMask-HQ-mask-anno/" in result.stderr


def test_main_refuses_an_image_size_the_dataset_does_not_have(synthetic_data_dir):
    result = _main("--config.dataset=celebamask_synthetic/64_n96_s3",
                   f"--config.data_dir={synthetic_data_dir}")
    assert result.returncode == 1
    assert "image_size=128 but celebamask_synthetic/64_n96_s3 holds 64x64 images" in result.stderr


def test_main_refuses_an_unknown_attribute(tmp_path):
    result = _main("--config.attribute=Mouth_Open", f"--config.data_dir={tmp_path}")
    assert result.returncode == 1
    assert "unknown attribute 'Mouth_Open'" in result.stderr
