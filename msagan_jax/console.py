"""What a run shows in the terminal, and what it keeps in `<workdir>/log.txt`.

main.py calls, in this order:

    platform = console.choose_platform()   # before anything imports jax
    ...
    def main(argv):
        console.setup(FLAGS.workdir)        # inside app.run: after absl installed its handler
        console.say("training the judge in runs/judge")

The console gets the progress bar, the project's own lines (`say`) and warnings or errors
from anyone; everyone's INFO (orbax prints each save's options and throughput, grain and
TFDS their plans) goes to the log file only, with timestamps and logger names.
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import logging
import os
import pathlib
import pkgutil
import sys
from collections.abc import Iterable, MutableMapping

# Paths whose presence means an NVIDIA GPU may be here: the driver's device nodes and its
# /proc entry on Linux, and WSL2's GPU bridge (WSL exposes CUDA through /dev/dxg, with no
# /dev/nvidia*). Any match leaves the choice to JAX. Not /dev/nvidiactl alone: it can exist
# with the driver installed and no card.
GPU_PROBES = ("/dev/nvidia[0-9]*", "/proc/driver/nvidia", "/dev/dxg")

LOG_FILE = "log.txt"
# The logger of `say` and `warn`: the log file names the project's lines apart from absl's.
LOGGER_NAME = "msagan_jax"
# A record carrying this attribute (set by `say`) is shown on the console whatever its level.
_SAY = "msagan_say"
# Set on the handlers `setup` installs, so a later call finds and replaces them (even after
# this module is reloaded, when the module globals are new).
_MARK = "msagan_console"

_logger = logging.getLogger(LOGGER_NAME)


def choose_platform(environ: MutableMapping[str, str] = os.environ, *,
                    gpu_probes: Iterable[str] = GPU_PROBES) -> str | None:
    """Sets JAX_PLATFORMS=cpu when no NVIDIA GPU is present; returns "cpu", or None if unchanged.

    Call it before jax is imported: JAX reads the variable once, at import. Without it,
    jax[cuda12] on a GPU-less machine prints the CUDA plugin's traceback (`cuInit(0) failed:
    ... error 303`) before falling back to the CPU, which reads as a crash. A user's own
    JAX_PLATFORMS or JAX_PLATFORM_NAME (non-empty, as JAX reads them) is left alone, and so
    is a machine with another accelerator's JAX plugin (TPU, ROCm, Metal...) installed.
    `gpu_probes` are glob patterns; tests point them into a temporary folder.
    """
    if environ.get("JAX_PLATFORMS") or environ.get("JAX_PLATFORM_NAME"):
        return None
    if any(glob.glob(pattern) for pattern in gpu_probes):
        return None
    if _other_accelerators():
        return None
    environ["JAX_PLATFORMS"] = "cpu"
    return "cpu"


def _other_accelerators() -> list[str]:
    """The installed JAX accelerator plugins that are not CUDA ones, found without importing
    jax: libtpu, and the `jax_plugins` modules and entry points JAX itself would load."""
    found = []
    if importlib.util.find_spec("libtpu") is not None:
        found.append("libtpu")
    plugins = set()
    spec = importlib.util.find_spec("jax_plugins")  # a namespace package: nothing is imported
    if spec is not None and spec.submodule_search_locations:
        plugins.update(f"jax_plugins.{module.name}"
                       for module in pkgutil.iter_modules(spec.submodule_search_locations))
    plugins.update(entry.value for entry in importlib.metadata.entry_points(group="jax_plugins"))
    # The CUDA plugins are the ones that fail without an NVIDIA GPU; any other may drive the
    # accelerator this machine has.
    found.extend(sorted(name for name in plugins if "cuda" not in name.lower()))
    return found


class _ConsoleHandler(logging.Handler):
    """Writes records to the current sys.stderr through tqdm, so a progress bar is cleared and
    redrawn around the line instead of being broken by it.

    A plain logging.Handler, not a StreamHandler: absl's use_absl_handler() removes root's
    StreamHandlers on stderr, and the stream is looked up per record so that a redirected
    sys.stderr (pytest, notebooks) is honoured.
    """

    def __init__(self, level: int):
        super().__init__(logging.NOTSET)
        self.threshold = level
        setattr(self, _MARK, True)

    def filter(self, record: logging.LogRecord) -> bool:
        # `say` lines show at any level; everything else from the threshold up.
        shown = record.levelno >= self.threshold or getattr(record, _SAY, False)
        return bool(shown) and bool(super().filter(record))

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, _SAY, False):
            return record.getMessage()
        return super().format(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _write(self.format(record))
        except Exception:  # noqa: BLE001  (logging's contract: report, never raise)
            self.handleError(record)


def _write(line: str) -> None:
    # stderr, not stdout: stdout carries a command's results (evaluate's table, edit's list),
    # so `main.py --mode=evaluate > metrics.md` stays clean, and status lines keep their order
    # with warnings and the progress bar, which are on stderr too.
    try:
        import tqdm
    except ImportError:  # tqdm is only needed for the bar; without one, print plainly
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
        return
    tqdm.tqdm.write(line, file=sys.stderr)


def _is_terminal_handler(handler: logging.Handler) -> bool:
    """Root handlers that print to the terminal: absl's (app.run installs it; it prints every
    INFO with absl's prefix) and plain StreamHandlers on stderr/stdout (logging.basicConfig,
    which absl.logging calls if it logs while root has no handler)."""
    import absl.logging

    if handler is absl.logging.get_absl_handler():
        return True
    return (type(handler) is logging.StreamHandler
            and handler.stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__))


def setup(workdir: os.PathLike | str | None, verbose: bool = False) -> pathlib.Path | None:
    """Routes Python and absl logging for a run; returns the log file's path (None: no file).

    Console (stderr): WARNING and above from everyone, plus `say` lines (INFO too if
    `verbose`). `<workdir>/log.txt` (appended, folder created): INFO and above from everyone,
    absl-logged code (orbax, grain, TFDS, this project) included, with time, level, logger,
    file:line. Idempotent: a second call replaces the first's handlers, so a second workdir
    switches the file. Call it after app.run has parsed the flags (inside main); app.run
    installs absl's handler at start-up, and this replaces it.
    """
    import absl.logging

    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False) or _is_terminal_handler(handler):
            root.removeHandler(handler)
            if getattr(handler, _MARK, False):
                handler.close()  # our log file; absl's handler belongs to absl

    # Records must reach the handlers at INFO: root defaults to WARNING outside app.run, and
    # absl's logger is held at WARNING until app.run parses --verbosity. A more verbose root
    # (--verbosity=1 under app.run) is kept.
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    absl.logging.get_absl_logger().setLevel(logging.NOTSET)  # inherit root's level

    console = _ConsoleHandler(logging.INFO if verbose else logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root.addHandler(console)

    if workdir is None:
        return None
    path = pathlib.Path(workdir) / LOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    file = logging.FileHandler(path, mode="a", encoding="utf-8")
    setattr(file, _MARK, True)
    file.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(filename)s:%(lineno)d] %(message)s"))
    root.addHandler(file)
    return path


def _console_installed() -> bool:
    return any(isinstance(h, _ConsoleHandler) for h in logging.getLogger().handlers)


def say(message: str) -> None:
    """Shows one of the project's own lines on the console (above any progress bar, on
    stderr) and writes it to the log file at INFO."""
    if _console_installed():
        # One record: the console handler shows it (whatever its threshold), the file keeps it.
        _logger.info(message, extra={_SAY: True}, stacklevel=2)
    else:
        # No setup (a notebook, a library call): still show it, and log it for whoever listens.
        _write(message)
        _logger.info(message, stacklevel=2)


def warn(message: str) -> None:
    """Logs a warning: shown once on the console and kept in the log file."""
    _logger.warning(message, stacklevel=2)
