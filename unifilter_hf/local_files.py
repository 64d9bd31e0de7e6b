"""Read a local image file named by a data row: only inside the data's root, only regular files, capped.

A path in a row is the data author's choice, not the curator's. With a ``root`` (the data file's folder, or
``--image-root``), a row's path is read only when it resolves inside that root (symlinks followed); absolute
paths outside it, ``~``, ``..`` escapes and ``file://`` URLs pointing elsewhere are refused with one reason
that does not say whether the file exists. The opt-in ``allow_local_files`` names what else may be read:
``True`` (any path) or a list of folders; ``None`` reads ``$UNIFILTER_ALLOW_LOCAL_FILES`` (``1`` for any
path, or folders separated by ``os.pathsep``).

Without a ``root`` the path is the caller's own argument (``load_image("/photos/x.jpg")``, the pipeline's
``images=``) and is read as given. Either way only regular files are read (a device such as ``/dev/zero``
or a FIFO is refused, without blocking), and at most ``max_bytes`` bytes are read.

Example:
    >>> import tempfile
    >>> try:
    ...     read_local("/etc/hostname", root=tempfile.gettempdir(), max_bytes=100, allow_local_files=False)
    ... except SampleError as err:
    ...     print(err.reason)
    image: local path outside the data folder refused (see allow_local_files)
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from .sample import SampleError

__all__ = ["ALLOW_LOCAL_FILES_ENV", "allowed_folders", "read_local", "resolve_local"]

ALLOW_LOCAL_FILES_ENV = "UNIFILTER_ALLOW_LOCAL_FILES"
_TRUE = {"1", "true", "yes", "all", "on"}
_REFUSED = "image: local path outside the data folder refused (see allow_local_files)"
_REASON_CHARS = 120


def allowed_folders(allow: bool | str | Iterable[str | os.PathLike] | None) -> tuple[str, ...] | bool:
    """``True`` when any local path may be read, else the extra folders a row's path may name.

    Example:
        >>> allowed_folders(False), allowed_folders("1")
        ((), True)
    """
    if allow is None:
        allow = os.environ.get(ALLOW_LOCAL_FILES_ENV, "")
    if allow is True:
        return True
    if not allow:
        return ()
    if isinstance(allow, str):
        if allow.strip().lower() in _TRUE:
            return True
        allow = [part for part in allow.split(os.pathsep) if part.strip()]
    return tuple(os.path.realpath(os.path.expanduser(os.fspath(folder))) for folder in allow)


def resolve_local(
    path: str | os.PathLike,
    *,
    root: str | os.PathLike | None,
    allow_local_files: bool | str | Iterable[str | os.PathLike] | None = None,
) -> Path:
    """The path to read, or :class:`SampleError` when policy refuses it (before any look at the file)."""
    text = os.fspath(path)
    if "\x00" in text:
        raise SampleError("image: bad path (NUL byte)")
    if root is None:  # the caller's own argument: trusted
        return Path(text).expanduser()
    allowed = allowed_folders(allow_local_files)
    if allowed is True:
        return Path(root, os.path.expanduser(text))
    if text.startswith("~"):
        raise SampleError(_REFUSED)
    real = os.path.realpath(os.path.join(root, text))  # an absolute text replaces root here
    for folder in (os.path.realpath(root), *allowed):
        if real == folder or real.startswith(folder.rstrip(os.sep) + os.sep):
            return Path(real)
    raise SampleError(_REFUSED)


def read_local(
    path: str | os.PathLike,
    *,
    root: str | os.PathLike | None,
    max_bytes: int,
    allow_local_files: bool | str | Iterable[str | os.PathLike] | None = None,
) -> bytes:
    """Read a regular file's bytes under the policy above; raises :class:`SampleError` with a reason."""
    target = resolve_local(path, root=root, allow_local_files=allow_local_files)
    shown = _shown(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below as not a regular file.
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:  # only ever said of a path policy allows: inside the root, or the caller's own
        raise SampleError(f"image: file not found: {_shown(target)}") from None
    except (OSError, ValueError) as err:
        raise SampleError(f"image: cannot read file {shown} ({getattr(err, 'strerror', None) or 'error'})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SampleError(f"image: cannot read file {shown} (not a regular file)")
        if info.st_size > max_bytes:
            raise SampleError(f"image: file larger than max_bytes={max_bytes}: {shown}")
        data = _read_capped(fd, max_bytes)
    except OSError as err:
        raise SampleError(f"image: cannot read file {shown} ({err.strerror or 'error'})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # the file grew while we read it
        raise SampleError(f"image: file larger than max_bytes={max_bytes}: {shown}")
    if not data:
        raise SampleError("image: empty file (0 bytes)")
    return data


def _read_capped(fd: int, max_bytes: int) -> bytes:
    chunks, size = [], 0
    while size <= max_bytes and (chunk := os.read(fd, min(1 << 20, max_bytes + 1 - size))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _shown(path: str | os.PathLike) -> str:
    text = os.fspath(path)
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."
