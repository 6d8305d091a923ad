"""The project's error types: what `main.py` reports as one line, with no traceback.

An `Error` is a problem with what the user gave us (a config value, a file, a workdir, a
dataset that is not built) or a run that cannot go on (a non-finite loss); its message names
the field, file or value and says what to do. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class Error(Exception):
    """A problem the user can fix; the message says which and how."""


class ConfigError(Error, ValueError):
    """A config field has a value the project cannot use; the message names the field."""


class InputError(Error, ValueError):
    """A file, folder, workdir or argument that cannot be used; the message names it."""


class RunInUseError(InputError):
    """Another live process holds the workdir (its lock); a sweep skips such a run."""


class NonFiniteLossError(Error, FloatingPointError):
    """A loss became NaN or infinite; names the iteration and the term."""
