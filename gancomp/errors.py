"""The error types gancomp raises; the CLI turns each into one line on stderr."""


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
