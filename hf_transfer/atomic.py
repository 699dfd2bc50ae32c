"""Writes that a kill at any moment (SIGKILL, OOM, preemption) cannot leave half done.

Every file or folder a run publishes is first written under a temporary name in the same
folder (``NAME.partial``) and then renamed into place; a rename within one file system is
atomic, so a reader sees the old version, the new one or (while a folder is replaced)
none — never a mixture. Folders are deleted the same way in reverse: renamed to
``NAME.trash`` first, then removed, so a half-deleted folder never carries a name that
anything would load. Leftover ``.partial``/``.trash`` entries are removed by the next write.

Scope: this protects against the *process* dying. Files are not fsync'ed, so after a
kernel crash or power loss the newest files may be empty or missing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

PARTIAL = ".partial"
TRASH = ".trash"


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON through a temporary file and a rename."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + PARTIAL)
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def remove_tree(path: Path) -> None:
    """Delete a folder (or file) so that it is never seen half-deleted under its name."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink():
        trash = path.with_name(path.name + TRASH)
        if trash.exists():
            shutil.rmtree(trash)
        path.rename(trash)
        shutil.rmtree(trash)
    else:
        path.unlink()


def partial_dir(final: Path) -> Path:
    """A fresh, empty ``FINAL.partial`` folder to write into (a leftover one is removed)."""
    final = Path(final)
    partial = final.with_name(final.name + PARTIAL)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def publish_dir(partial: Path, final: Path) -> None:
    """Move a completely written folder into place, replacing (then deleting) an older one."""
    partial, final = Path(partial), Path(final)
    follow_umask(partial)
    trash = final.with_name(final.name + TRASH)
    if trash.exists():  # left by a save killed between the two renames below
        shutil.rmtree(trash)
    replaced = final.exists()
    if replaced:
        final.rename(trash)
    partial.rename(final)
    if replaced:
        shutil.rmtree(trash)


def follow_umask(folder: Path) -> None:
    """Give the files under ``folder`` the mode the user's umask gives any new file. Libraries
    that write through a private temporary file (``mkstemp``: mode 0600) and rename it, as the
    safetensors writer does, would otherwise leave a shared folder unreadable by the group."""
    mode = 0o666 & ~current_umask()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)


def current_umask() -> int:
    """The process's umask (reading it means setting it: set back at once)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def clean_leftovers(folder: Path, pattern: str = "*") -> list[Path]:
    """Remove ``.partial``/``.trash`` entries that a killed writer left in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for suffix in (PARTIAL, TRASH):
        for path in folder.glob(pattern + suffix):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
