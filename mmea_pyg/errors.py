"""User-facing errors.

Every error a user can cause (bad path, malformed line, checksum mismatch, unknown dataset, missing
model) is an :class:`MMEAError`: its message names the file, the line where there is one, and the fix.
The ``mmea`` command prints these without a traceback and exits with status 1; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class MMEAError(Exception):
    """Base class of the errors a user can cause and fix."""


class DownloadError(MMEAError):
    """A file could not be fetched (missing in a mirror, network failure after all retries)."""


class ChecksumError(DownloadError):
    """A fetched file's content does not match its expected checksum."""


class DataFormatError(MMEAError, ValueError):
    """A raw or feature file is malformed.

    Args:
        path: The offending file.
        message: What is wrong and how to fix it.
        line: 1-based line number, when the problem is on one line.
    """

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = self.path if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {message}")


class ModelNotFoundError(MMEAError):
    """A pretrained model (text or image encoder) is not available offline."""


class ConfigError(MMEAError, ValueError):
    """An option or config value is invalid."""


class NotWritableError(MMEAError):
    """A folder a command must write into cannot be written: read-only file system, no permission, or a
    file where the folder (or one of its parents) would be."""
