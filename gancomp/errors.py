"""The error types gancomp raises; the CLI turns each into one line on stderr.

Exit codes (documented in docs/guide.md and ``gancomp --help``): 1 unexpected failure,
2 bad input or options, 3 corrupt or unsupported .gcz, 4 model missing or mismatching,
5 output cannot be written, 130 interrupted, 141 broken pipe.
"""


class GanCompError(Exception):
    """Base class: any error a user can cause (bad input, bad options, bad files)."""

    exit_code = 1


class FormatError(GanCompError):
    """A .gcz file is malformed, truncated, corrupted, or from an unknown major version."""

    exit_code = 3


class ModelError(GanCompError):
    """A model is missing, fails its SHA-256 check, or differs from the one a file needs."""

    exit_code = 4


class InputError(GanCompError):
    """An input image or option is unusable (missing file, unreadable image, absurd value)."""

    exit_code = 2


class OutputError(GanCompError):
    """An output cannot be written (permission, read-only file system, disk full, ...)."""

    exit_code = 5
