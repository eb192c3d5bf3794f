"""Files: atomic writes with unique temporary names, checkpoint loading that cannot run code, and the
device resolver every command uses.

Every file the library writes goes through :func:`atomic_write`: the content is written to a temporary
file in the destination's folder whose name is unique to the writer (``tempfile.mkstemp``), flushed and
renamed over the destination with :func:`os.replace`. A reader never sees a half-written file, an
interrupted writer leaves the previous version whole, and two processes writing the same destination
never share a temporary file (the last rename wins, whole).

Temporary files left by an interrupted write (``kill -9``) are removed by the next write into the same
folder once they are :data:`STALE_AFTER_SECONDS` old (:func:`remove_stale_temporaries`). Before long
work, :func:`check_writable_dir` makes sure a folder can be written (creating nothing), and
:func:`made_dirs` removes the empty folders of a build that failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from mmea_pyg.errors import ConfigError, MMEAError, NotWritableError


class UnreadableFileError(MMEAError):
    """A file cannot be loaded (missing, truncated, not a torch file); ``reason`` says why in a few
    words, the message adds the file and the fix."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class UnsafeFileError(UnreadableFileError):
    """A file needs more than tensors and plain data to load (it could run code) and was refused."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a unique temporary file beside ``path`` for writing; rename it over ``path`` when the block
    ends without an exception, else remove it.

    Args:
        path: Destination. Its folder is created if needed.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        encoding: Text encoding (ignored for ``"wb"``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # mkstemp's private 0600 -> the mode open() would have given
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


#: A temporary file (or folder) of an interrupted write older than this many seconds is removed by the
#: next write into its folder: a live writer keeps its file's modification time fresh.
STALE_AFTER_SECONDS = 600
#: The names this module gives temporary files and folders: ``.<name>.<8 random characters>.tmp``.
TEMPORARY_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def remove_stale_temporaries(
    folder: str | os.PathLike, older_than: float = STALE_AFTER_SECONDS
) -> list[Path]:
    """Remove the temporary files and folders of interrupted writes in ``folder`` (named as
    :data:`TEMPORARY_NAME`, unchanged for ``older_than`` seconds), such as the 0-byte ``*.tmp`` a
    ``kill -9`` leaves; returns what was removed. Anything that cannot be removed is left alone."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    now, removed = time.time(), []
    for entry in entries:
        if not TEMPORARY_NAME.fullmatch(entry.name):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < older_than:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:  # removed meanwhile by another writer, or not ours to remove
            continue
        removed.append(Path(entry.path))
    return removed


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` (made absolute) or its nearest ancestor that exists: the folder a new ``path`` would be
    created in."""
    path = Path(path).expanduser().absolute()
    return next(p for p in (path, *path.parents) if p.exists())


def check_writable_dir(path: str | os.PathLike, what: str, fix: str = "choose another folder") -> None:
    """Make sure the folder ``path`` can be created (where missing) and written into, creating nothing:
    a unique temporary file is created in ``path``'s nearest existing ancestor and removed at once.

    Args:
        path: The folder.
        what: What the folder is, for the message (e.g. ``"run folder (--out)"``).
        fix: How to fix it, for the message.

    Raises:
        NotWritableError: A file is in the way, or the nearest existing folder cannot be written (no
            permission, read-only file system, ...); the message says which folder and why.
    """
    base = nearest_existing(path)
    if not base.is_dir():
        reason = f"{base} is a file, not a folder"
    elif not os.access(base, os.W_OK | os.X_OK):
        reason = f"no permission to write in {base}"
    else:
        try:
            fd, probe = tempfile.mkstemp(dir=base, prefix=".mmea-write-check.", suffix=".tmp")
        except OSError as exc:
            reason = f"cannot write in {base} ({exc.strerror or exc})"
        else:
            os.close(fd)
            os.unlink(probe)
            return
    raise NotWritableError(f"{what} {path}: {reason}; {fix}")


@contextlib.contextmanager
def made_dirs(path: str | os.PathLike) -> Iterator[Path]:
    """Create the folder ``path`` (and missing parents) for the block; when the block raises, remove
    again the folders this call created that are still empty (deepest first), so that a failed build
    leaves no empty folder behind."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    except BaseException:
        for folder in missing:
            with contextlib.suppress(OSError):  # not empty (another writer's files), or already gone
                folder.rmdir()
        raise


def temporary_sibling_dir(path: str | os.PathLike) -> Path:
    """Create an empty folder with a unique temporary name beside ``path`` (``.<name>.<random>.tmp``,
    the pattern of :func:`atomic_write`'s files, with the mode a plain ``mkdir`` would give), to fill
    and then rename to ``path``. The parent folder must exist."""
    path = Path(path)
    remove_stale_temporaries(path.parent)
    folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    os.chmod(folder, 0o777 & ~_umask())
    return folder


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON (with a final newline) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """:func:`torch.save` ``obj`` to ``path`` atomically."""
    with atomic_write(path, "wb") as handle:
        torch.save(obj, handle)


def safe_torch_load(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", what: str = "file"
) -> Any:
    """Load a file written by :func:`torch.save` with ``weights_only=True``: tensors, containers and
    plain Python values only, so loading cannot run code.

    Raises:
        UnsafeFileError: The file holds other objects (a pickle that would import or call something).
        UnreadableFileError: The file is missing, truncated or not a torch file.
    """
    path = Path(path)
    if not path.exists():
        raise UnreadableFileError(f"{what} {path} not found", "file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines()]
        detail = next((line for line in lines if "GLOBAL" in line), "")
        if not detail:  # not a blocked import or call: the bytes are simply not a torch file
            raise UnreadableFileError(
                f"{path}: not a readable {what} (not a torch file); rebuild or retrain it", "not a torch file"
            ) from None
        reason = (
            f"it holds objects other than tensors and plain data, which could run code when loaded ({detail})"
        )
        raise UnsafeFileError(
            f"{path}: refused to load this {what}: {reason}; use only {what}s that mmea-pyg wrote, or retrain",
            reason,
        ) from None
    except Exception as exc:  # noqa: BLE001 - truncated zip, wrong magic number, ...: one meaning to the user
        text = str(exc).strip()
        reason = text.splitlines()[0].split(". ")[0] if text else type(exc).__name__
        raise UnreadableFileError(
            f"{path}: not a readable {what} ({reason}); rebuild or retrain it", reason
        ) from None


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise the named device, checked to exist.

    Raises:
        ConfigError: A CUDA device was asked for on a machine without CUDA, or the name is not a device.
    """
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"--device {name}: not a device ({exc}); use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
    return device
