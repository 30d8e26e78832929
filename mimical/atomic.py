"""Replace a file or a directory in one step: readers see the old one or the whole new one.

Everything mimical writes for another process to read (corpora, reports, stored
objects, model versions, the model server's config) is written under a temporary dot
name in the same directory, flushed to disk, and renamed over its target: a rename
within one filesystem is atomic, and dot names are ignored by every listing (storage,
model servers). When the writing fails, the temporary file or directory is removed and
the target is left as it was.

`private=True` makes what is written readable by this user alone (stored chats and
models); otherwise it gets the usual permissions (the umask's), as `open` would give.

    with atomic_file(path) as out:
        out.write(data)
    atomic_write(report_path, html)
    with atomic_directory(version_dir, private=True) as staging:
        storage.get_tree(prefix, staging)

A writer that must not replace what is there (the next free model version, say) stages
with `staging_directory` and moves it with `rename_new`:

    with staging_directory(model_dir / "new") as staging:
        write(staging)
        while not rename_new(staging, model_dir / str(version)):
            version += 1
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _partial(path: Path, parent: Path | None = None) -> Path:
    """A fresh dot name beside `path` (or in `parent`): concurrent writers never share one."""
    return (parent or path.parent) / f".{path.name}.{secrets.token_hex(6)}.partial"


@contextlib.contextmanager
def atomic_file(path: Path, *, private: bool = False, buffering: int = -1) -> Iterator[BinaryIO]:
    """A binary file to write that replaces `path` when the block ends without error."""
    path = Path(path)
    partial = _partial(path)
    handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
    try:
        with os.fdopen(handle, "wb", buffering=buffering) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def atomic_write(path: Path, content: bytes | str, *, private: bool = False) -> None:
    """Replace `path` with `content` (text is written as UTF-8)."""
    with atomic_file(path, private=private) as out:
        out.write(content.encode() if isinstance(content, str) else content)


@contextlib.contextmanager
def atomic_directory(
    path: Path, *, private: bool = False, staging_parent: Path | None = None
) -> Iterator[Path]:
    """An empty directory to fill that replaces `path` when the block ends without error.

    An existing `path` is moved aside, the new one renamed in, then the old one deleted.
    `staging_parent` (default: `path`'s parent) must be on the same filesystem.
    """
    path = Path(path)
    with staging_directory(path, private=private, staging_parent=staging_parent) as staging:
        yield staging
        if path.exists():
            old = _partial(path)
            path.rename(old)
            staging.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(path)


@contextlib.contextmanager
def staging_directory(
    path: Path, *, private: bool = False, staging_parent: Path | None = None
) -> Iterator[Path]:
    """An empty directory of a fresh dot name beside `path`, removed with whatever is left
    in it when the block ends: for a writer that renames it itself (`rename_new`), e.g.
    one that picks its target's name only once the content is written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _partial(path, staging_parent)
    staging.mkdir(mode=0o700 if private else 0o777)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def rename_new(staging: Path, target: Path) -> bool:
    """Rename the directory `staging` to `target` unless `target` is taken; True if it moved.

    Never replaces: a rename over a non-empty directory fails, and an existing `target`
    (even an empty one, which a rename would replace) counts as taken. Another error
    (a missing parent, another filesystem) is raised.
    """
    if os.path.lexists(target):
        return False
    try:
        Path(staging).rename(target)
    except OSError:
        if not os.path.lexists(target):
            raise
        return False
    return True
