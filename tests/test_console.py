"""msagan_jax.console: the platform choice before JAX starts, and what reaches the terminal."""

from __future__ import annotations

import glob
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from msagan_jax import console

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def no_other_accelerators(monkeypatch):
    """This machine's plugins do not matter to the probe tests."""
    monkeypatch.setattr(console, "_other_accelerators", lambda: [])


def fake_probes(tmp_path):
    """GPU_PROBES pointed into tmp_path (dev/nvidia0, proc/driver/nvidia, dev/dxg)."""
    (tmp_path / "dev").mkdir()
    (tmp_path / "proc" / "driver").mkdir(parents=True)
    return (str(tmp_path / "dev" / "nvidia[0-9]*"), str(tmp_path / "proc" / "driver" / "nvidia"),
            str(tmp_path / "dev" / "dxg"))


def test_choose_platform_picks_the_cpu_when_no_nvidia_device_exists_and_jax_platforms_is_unset(
        tmp_path, no_other_accelerators):
    probes = fake_probes(tmp_path)
    (tmp_path / "dev" / "nvidiactl").touch()  # the driver's control node alone is no GPU
    environ = {"PATH": "/usr/bin"}
    assert console.choose_platform(environ, gpu_probes=probes) == "cpu"
    assert environ == {"PATH": "/usr/bin", "JAX_PLATFORMS": "cpu"}


@pytest.mark.parametrize("variable", ["JAX_PLATFORMS", "JAX_PLATFORM_NAME"])
def test_choose_platform_leaves_a_users_jax_platforms_alone(tmp_path, no_other_accelerators,
                                                            variable):
    environ = {variable: "cuda"}
    assert console.choose_platform(environ, gpu_probes=fake_probes(tmp_path)) is None
    assert environ == {variable: "cuda"}


@pytest.mark.parametrize("device", ["dev/nvidia0", "dev/nvidia3", "proc/driver/nvidia", "dev/dxg"])
def test_choose_platform_leaves_a_machine_with_an_nvidia_device_alone(
        tmp_path, no_other_accelerators, device):
    probes = fake_probes(tmp_path)
    (tmp_path / device).mkdir()
    environ = {}
    assert console.choose_platform(environ, gpu_probes=probes) is None
    assert environ == {}


def test_choose_platform_leaves_a_machine_with_another_accelerator_plugin_alone(
        tmp_path, monkeypatch):
    monkeypatch.setattr(console, "_other_accelerators", lambda: ["libtpu"])
    environ = {}
    assert console.choose_platform(environ, gpu_probes=fake_probes(tmp_path)) is None
    assert environ == {}


def test_other_accelerators_counts_a_rocm_plugin_but_not_a_cuda_one(tmp_path, monkeypatch):
    for name in ("xla_rocm7", "xla_cuda13"):
        (tmp_path / "jax_plugins" / name).mkdir(parents=True)
        (tmp_path / "jax_plugins" / name / "__init__.py").touch()
    monkeypatch.syspath_prepend(str(tmp_path))
    found = console._other_accelerators()
    assert "jax_plugins.xla_rocm7" in found
    assert not [name for name in found if "cuda" in name]


def run_python(code: str, cwd, env=None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


# Logs as a run does: third-party INFO via absl (orbax's way) and via a named logger, one of
# the project's lines, and a warning. {call} runs `main` either plainly or under app.run,
# which installs absl's stderr handler and sets the verbosity to INFO first.
SCRIPT = """
import logging, sys
import absl.logging
from absl import app
from msagan_jax import console

def main(argv):
    {setup}
    absl.logging.info("orbax-like detail")
    logging.getLogger("orbax").info("orbax options")
    console.say("our line 100%")
    absl.logging.warning("a warning")

{call}
"""
CALLS = {"plain": "main([])", "app.run": "app.run(main)"}
LINES = ["orbax-like detail", "orbax options", "our line 100%", "a warning"]


@pytest.mark.parametrize("call", CALLS)
def test_third_party_info_goes_to_the_log_file_not_the_console(tmp_path, call):
    code = SCRIPT.format(setup=f"console.setup({str(tmp_path / 'run')!r})", call=CALLS[call])
    result = run_python(code, tmp_path)
    assert result.stdout == ""  # the project's lines and warnings go to stderr
    assert result.stderr.count("our line 100%") == 1
    assert result.stderr.count("a warning") == 1
    assert "orbax" not in result.stderr
    assert "Logging before flag parsing" not in result.stderr
    log = (tmp_path / "run" / "log.txt").read_text()
    for line in LINES:
        assert log.count(line) == 1, (line, log)
    assert " INFO msagan_jax <string>:" in log  # say's record names the caller, not console.py


def test_verbose_shows_info_on_the_console_once(tmp_path):
    code = SCRIPT.format(setup=f"console.setup({str(tmp_path)!r}, verbose=True)",
                         call=CALLS["app.run"])
    stderr = run_python(code, tmp_path).stderr
    for line in LINES:
        assert stderr.count(line) == 1, (line, stderr)


def test_setup_twice_does_not_duplicate_lines_and_a_second_workdir_switches_the_file(tmp_path):
    setup = (f"console.setup({str(tmp_path / 'judge')!r}); "
             f"console.setup({str(tmp_path / 'editor')!r})")
    stderr = run_python(SCRIPT.format(setup=setup, call=CALLS["app.run"]), tmp_path).stderr
    assert stderr.count("our line 100%") == 1
    assert stderr.count("a warning") == 1
    assert (tmp_path / "judge" / "log.txt").read_text() == ""
    log = (tmp_path / "editor" / "log.txt").read_text()
    for line in LINES:
        assert log.count(line) == 1, (line, log)


def test_setup_appends_to_an_existing_log_file(tmp_path):
    (tmp_path / "log.txt").write_text("an earlier run\n")
    run_python(SCRIPT.format(setup=f"console.setup({str(tmp_path)!r})", call=CALLS["plain"]),
               tmp_path)
    log = (tmp_path / "log.txt").read_text()
    assert log.startswith("an earlier run\n") and "our line 100%" in log


def test_warn_is_shown_once_and_logged(tmp_path):
    code = f"""
    from msagan_jax import console
    console.setup({str(tmp_path)!r})
    console.warn("stopped at iteration 4 of 10")
    """
    stderr = run_python(code, tmp_path).stderr
    assert stderr.count("stopped at iteration 4 of 10") == 1
    assert "WARNING msagan_jax" in (tmp_path / "log.txt").read_text()


def test_say_without_setup_still_prints(tmp_path):
    code = """
    from msagan_jax import console
    console.say("resumed from iteration 400")
    """
    assert run_python(code, tmp_path).stderr == "resumed from iteration 400\n"


def environment_without_jax_platforms() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("JAX_PLATFORMS", None)  # conftest sets it for the other tests
    env.pop("JAX_PLATFORM_NAME", None)
    return env


JAX_DEVICES = """
{choose}
import jax
print([d.platform for d in jax.devices()])
"""
no_nvidia_gpu = pytest.mark.skipif(any(glob.glob(p) for p in console.GPU_PROBES),
                                   reason="this machine may have an NVIDIA GPU")
cuda_plugin = pytest.mark.skipif(importlib.util.find_spec("jax_plugins.xla_cuda12") is None,
                                 reason="jax[cuda12] is not installed")


@no_nvidia_gpu
@cuda_plugin
def test_without_choose_platform_jax_cuda12_prints_the_cuinit_traceback_here(tmp_path):
    """The problem choose_platform solves, seen on this GPU-less machine."""
    result = run_python(JAX_DEVICES.format(choose=""), tmp_path,
                        env=environment_without_jax_platforms())
    assert "cuInit" in result.stderr and "Traceback" in result.stderr


@no_nvidia_gpu
def test_with_choose_platform_jax_starts_on_the_cpu_without_a_cuda_traceback(tmp_path):
    choose = "from msagan_jax import console; assert console.choose_platform() == 'cpu'"
    result = run_python(JAX_DEVICES.format(choose=choose), tmp_path,
                        env=environment_without_jax_platforms())
    assert result.stdout.strip() == "['cpu']"
    for text in ("cuInit", "CUDA", "Traceback"):
        assert text not in result.stderr, result.stderr


def test_choose_platform_does_not_import_jax(tmp_path):
    code = """
    import sys
    from msagan_jax import console
    console.choose_platform({})
    assert "jax" not in sys.modules and "jaxlib" not in sys.modules, sorted(sys.modules)
    """
    run_python(code, tmp_path)
