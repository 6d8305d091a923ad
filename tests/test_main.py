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
             "--config.sample_every=2", "--config.checkpoint_every=2", "--config.evaluate=false",
             "--config.eval_every=0")
    first = _main(*flags, "--config.num_train_steps=2", config="configs/quickstart.py")
    assert first.returncode == 0, first.stderr[-3000:]
    # The console: the progress bar and our own lines; libraries' INFO goes to log.txt.
    log = (workdir / "log.txt").read_text()
    assert "celebamask_synthetic/64_n30_s0/1.1.0: train 24, validation 3, test 3" in log
    assert "celebamask_synthetic/64_n30_s0/1.1.0: train 24" not in first.stderr
    assert "orbax" in log and "orbax" not in first.stderr.lower()
    assert "e1d1+sde: 100%" in first.stderr and "cuInit" not in first.stderr
    assert (workdir / "checkpoints" / "2").is_dir()
    assert (workdir / "samples" / "step_0000002.png").is_file()
    assert list(workdir.glob("events.out.tfevents.*"))
    assert (workdir / "config.json").is_file()

    second = _main(*flags, "--config.num_train_steps=3", config="configs/quickstart.py")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "e1d1+sde: resumed from iteration 2" in second.stderr
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
                             f"--workdir={trained_run}", "--edit_condition=0,1.5"], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| attribute-editing accuracy |" in result.stdout
    assert "| faces | 10 |" in result.stdout
    assert "| c given to edit toward 0 / 1 | 0 / 1.5 |" in result.stdout


def test_main_trains_a_judge_from_the_classifier_config(synthetic_data_dir, tmp_path):
    result = _main(*TINY_FLAGS, f"--config.data_dir={synthetic_data_dir}",
                   f"--workdir={tmp_path}", config="configs/classifier.py")
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"test_accuracy"' in (tmp_path / "results.json").read_text()


def test_a_run_stopped_by_sigterm_exits_3_after_saving_and_resumes(synthetic_data_dir, tmp_path):
    import signal
    import time

    workdir = tmp_path / "run"
    command = [sys.executable, "main.py", "--config=configs/default.py", *TINY_FLAGS,
               f"--config.data_dir={synthetic_data_dir}", f"--workdir={workdir}",
               "--config.num_train_steps=100000", "--config.checkpoint_every=1",
               "--config.evaluate=false", "--config.eval_every=0"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (workdir / "checkpoints" / "1").is_dir() and time.time() < deadline:
        time.sleep(0.5)  # the first checkpoint: the loop (and its signal handler) is running
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 3, stderr[-3000:]
    assert "stopped at iteration" in stderr and "run the same command to resume" in stderr
    saved = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert saved >= 1


def test_a_missing_or_broken_config_file_is_one_line_naming_it(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config(:\n")
    failing = tmp_path / "failing.py"
    failing.write_text("def get_config():\n    return 1 / 0\n")
    for config, message in (("configs/nonexistent.py", "No such file or directory"),
                            (str(broken), "SyntaxError"), (str(failing), "ZeroDivisionError")):
        result = _main(f"--workdir={tmp_path / 'run'}", config=config)
        assert result.returncode == 1, config
        assert f"error: --config={config}: " in result.stderr and message in result.stderr
        assert "Traceback" not in result.stderr, result.stderr[-2000:]


def test_a_workdir_that_is_a_file_is_one_line_and_the_file_is_kept(tmp_path):
    afile = tmp_path / "results.txt"
    afile.write_text("precious")
    result = _main(f"--workdir={afile}", config="configs/quickstart.py")
    assert result.returncode == 1
    assert f"error: --workdir {afile}: a file is in the way" in result.stderr
    assert "Traceback" not in result.stderr and afile.read_text() == "precious"
