"""Atomic writes: write to a temporary file (or folder) beside the target, then rename it over.

A reader never sees a half-written file or folder, and a crash leaves the previous version
intact. Hand-written because the standard library has none (`atomicwrites` on PyPI is
unmaintained and knows no folders).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


class TargetExistsError(FileExistsError):
    """An exclusive write found its target already there (another process made it)."""


@contextlib.contextmanager
def atomic_path(target: str | Path, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it is renamed to `target`.

    With `exclusive`, the result is linked into place only if `target` does not exist yet
    (one atomic link(2)): of two processes writing the same output one wins, the other gets
    TargetExistsError and leaves the winner's file alone. Errors name `target`, never the
    temporary file."""
    target = Path(target)
    # Not tempfile.mkstemp: its files are private (0600); this one gets the usual permissions
    # (0666 minus the umask), like any file the user writes.
    tmp_path = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as e:  # name the file asked for, never the temporary one
        raise OSError(f"cannot write {target}: {e.strerror or e}") from None
    mode = tmp_path.stat().st_mode & 0o777
    try:
        yield tmp_path
        os.chmod(tmp_path, mode)  # writers that replace the file (safetensors) make it 0600
        with open(tmp_path, "rb+") as f:  # make the bytes durable before the rename
            os.fsync(f.fileno())
        if exclusive:
            try:
                os.link(tmp_path, target)
            except FileExistsError:
                raise TargetExistsError(
                    f"{target} was created by another process meanwhile (pass --force to "
                    "overwrite it)"
                ) from None
        else:
            os.replace(tmp_path, target)
    except OSError as e:
        if isinstance(e, TargetExistsError) or str(tmp_path) not in str(e):
            raise
        raise OSError(f"cannot write {target}: {e.strerror or e}") from None
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(target: str | Path, write: Callable[[Path], Any], exclusive: bool = False) -> None:
    """Call `write(tmp_path)` and move the result to `target` atomically (see atomic_path)."""
    with atomic_path(target, exclusive) as tmp:
        write(tmp)


def atomic_write_text(target: str | Path, text: str, exclusive: bool = False) -> None:
    atomic_write(target, lambda p: p.write_text(text, encoding="utf-8"), exclusive)


def atomic_write_json(target: str | Path, obj: Any, exclusive: bool = False) -> None:
    atomic_write_text(target, json.dumps(obj, indent=2, ensure_ascii=False) + "\n", exclusive)


# --- folders ---------------------------------------------------------------------------------

TMP_PREFIX = ".tmp-"  # a folder being built beside its target
OLD_PREFIX = ".old-"  # a replaced folder, moved aside (only where renameat2 is missing)


def temp_dir_beside(target: str | Path) -> Path:
    """A fresh hidden folder beside `target` to build it in (usual permissions, not 0700)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{target.name}-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


def replace_dir(tmp: Path, target: Path) -> None:
    """Make the complete folder `tmp` appear as `target`, replacing any old one.

    A fresh name is one rename(2); an existing folder is swapped in one atomic exchange
    (Linux renameat2 RENAME_EXCHANGE), so at every instant `target` is the old or the new
    folder, whole. Elsewhere the old one is moved aside to OLD_PREFIX+name first (a crash
    between the two renames leaves it there for the caller's recovery to put back).
    """
    if not target.exists():
        os.rename(tmp, target)
        return
    if _renameat2_exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # now holds the old folder
        return
    old = target.with_name(f"{OLD_PREFIX}{target.name}")
    if old.exists():
        shutil.rmtree(old)
    os.rename(target, old)
    os.rename(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def _renameat2_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ≥ 3.15, glibc ≥ 2.28; `os` has no binding for it).
    False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    func = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None)
    if func is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return func(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
