"""Errors that the package raises on purpose.

Each carries a message meant for the user: what went wrong and what to do.
The command line prints the message and exits non-zero instead of showing a
traceback.
"""


class HelpersError(Exception):
    """Base of every error the package raises for bad input or bad luck."""


class DataError(HelpersError):
    """The CIFAR-10 files are missing, damaged, or could not be fetched."""


class ConfigError(HelpersError, ValueError):
    """A setting is out of range or contradicts another one."""


class DivergedError(HelpersError, FloatingPointError):
    """Training produced a NaN or infinite cost."""


class CheckpointError(HelpersError):
    """A checkpoint file is missing, of another format or version, or damaged."""


class NotebookError(HelpersError):
    """A notebook of the main job failed to run to its end."""


class OutputError(HelpersError):
    """A result could not be written where the command line was told to write it."""
