"""main.py: trains from a config into a workdir, builds synthetic data, explains bad input."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO, TINY_FLAGS


def _main(*flags: str, config: str = "configs/default.py") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", f"--config={config}", *flags],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_main_builds_missing_synthetic_data_trains_and_resumes(tmp_path):
    workdir, data_dir = tmp_path / "run", tmp_path / "data"
    flags = (*TINY_FLAGS, "--config.dataset=celebamask_synthetic/64_n30_s0",
             f"--config.data_dir={data_dir}", f"--workdir={workdir}", "--config.log_every=1",
             "--config.sample_every=2", "--config.checkpoint_every=2", "--config.evaluate=false")
    first = _main(*flags, "--config.num_train_steps=2", config="configs/quickstart.py")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "celebamask_synthetic/64_n30_s0/1.0.0: train 24, validation 3, test 3" in first.stderr
    assert (workdir / "checkpoints" / "2").is_dir()
    assert (workdir / "samples" / "step_0000002.png").is_file()
    assert list(workdir.glob("events.out.tfevents.*"))
    assert (workdir / "config.json").is_file()

    second = _main(*flags, "--config.num_train_steps=3", config="configs/quickstart.py")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from the checkpoint of iteration 2" in second.stderr
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["2", "3"]


def test_main_gives_the_build_command_for_the_real_dataset(tmp_path):
    result = _main(f"--config.data_dir={tmp_path}", f"--workdir={tmp_path / 'run'}")
    assert result.returncode == 1
    assert (f"tfds build celebamask/128 --imports tfds_celebamask --manual_dir DIR "
            f"--data_dir {tmp_path}") in result.stderr
    assert "CelebAMask-HQ-mask-anno/" in result.stderr


def test_main_refuses_an_image_size_the_dataset_does_not_have(synthetic_data_dir, tmp_path):
    result = _main("--config.dataset=celebamask_synthetic/64_n96_s3",
                   f"--config.data_dir={synthetic_data_dir}", f"--workdir={tmp_path}")
    assert result.returncode == 1
    assert "image_size=128 but celebamask_synthetic/64_n96_s3 holds 64x64 images" in result.stderr


def test_main_refuses_an_unknown_attribute_structure_or_loss_by_name(tmp_path):
    for flag, message in (("--config.attribute=Mouth_Open", "unknown attribute 'Mouth_Open'"),
                          ("--config.structure=e3d1", "unknown structure 'e3d1'"),
                          ("--config.mask_loss=l1", "unknown mask_loss 'l1'")):
        result = _main(flag, f"--workdir={tmp_path}")
        assert result.returncode == 1, flag
        assert message in result.stderr, result.stderr[-2000:]


def test_main_needs_a_workdir():
    result = _main()
    assert result.returncode == 1
    assert "--workdir" in result.stderr


def test_main_evaluates_a_trained_run_and_prints_the_table(trained_run):
    result = subprocess.run([sys.executable, "main.py", "--mode=evaluate",
                             f"--workdir={trained_run}"], cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| attribute-editing accuracy |" in result.stdout
    assert "| test faces | 10 |" in result.stdout


def test_main_trains_a_judge_from_the_classifier_config(synthetic_data_dir, tmp_path):
    result = _main(*TINY_FLAGS, f"--config.data_dir={synthetic_data_dir}",
                   f"--workdir={tmp_path}", config="configs/classifier.py")
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"test_accuracy"' in (tmp_path / "results.json").read_text()
