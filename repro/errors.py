"""The kit's error type: one clear line for the user, a non-zero exit from the CLI."""


class ReproError(Exception):
    """A user-facing failure. The message names the file, field or value at fault."""

    exit_code = 2


class InputError(ReproError):
    """Bad input data or configuration (a file, a field, a value)."""
