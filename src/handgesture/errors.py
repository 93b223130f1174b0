"""The error bases, and which failures are the user's input.

`InputError` marks bad input: a config key, a data folder, a checkpoint, a URI or credentials that are wrong.
Retrying cannot help, so every "don't retry" decision (Prefect tasks, background uploads) and every "exit 2"
(the commands) asks `isinstance(error, InputError)` and nothing else. Storage failures that can pass (an
unreachable endpoint, a server error) are plain `StorageError`s and are retried.
"""

from __future__ import annotations

import sys


class InputError(Exception):
    """Bad input: the message names the input and what was expected. Never retried."""


class ConfigError(InputError, ValueError):
    """A config file, override or value is not what the schema expects."""


class DataError(InputError, ValueError):
    """The data on disk is not what HaGRID's format (or a usable dataset) requires."""


class CheckpointError(InputError, ValueError):
    """A checkpoint is missing, unreadable, not ours, or does not fit the config."""


class StorageError(RuntimeError):
    """A store operation failed; the message names the URI or setting and what was expected."""


class StorageUnreachableError(StorageError):
    """The storage endpoint could not be reached: an outage that may pass."""


class StorageNotAnsweringError(StorageError, InputError):
    """An endpoint accepted connections but never answered: a wrong endpoint, not an outage to wait out."""


class InvalidStorageURIError(StorageError, InputError):
    """A URI, key, prefix or block reference that no store can serve."""


class UnsupportedSchemeError(InvalidStorageURIError): ...


class ObjectNotFoundError(StorageError, InputError): ...


class BucketNotFoundError(StorageError, InputError): ...


class StorageCredentialsError(StorageError, InputError): ...


class ChecksumMismatchError(StorageError, InputError): ...


class ExportError(RuntimeError):
    """An exported model does not reproduce the PyTorch model's outputs (or could not be written)."""


def report_error(error: Exception) -> int:
    """One line instead of a traceback (Prefect has logged any details); the exit status: 2 for bad input,
    1 for a failure that may pass."""
    print(f"error: {error}", file=sys.stderr)
    return 2 if isinstance(error, InputError) else 1
