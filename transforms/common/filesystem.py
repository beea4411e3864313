"""Directories the same way on every Beam filesystem.

An object store (gs://) has no directories: files.exists() of a prefix
is False whatever lies under it, and deleting a path without a trailing '/'
removes only the object of exactly that name. These two helpers ask and
delete by prefix there, and by path on local disks.
"""

from __future__ import annotations

import errno
import os
import shutil
import time

from oibeam.transforms.common import files


def _is_uri(path: str) -> bool:
    return "://" in path


def holds_anything(path: str) -> bool:
    """Whether `path` is a file, or a directory (prefix) with anything in it."""
    path = path.rstrip("/")
    if files.exists(path):
        return True
    if not _is_uri(path):
        return False
    return bool(files.match([f"{path}/**"], limits=[1])[0].metadata_list)


def remove_tree(path: str) -> None:
    """Deletes a file, or a directory (prefix) and everything under it."""
    path = path.rstrip("/")
    if _is_uri(path):
        if files.exists(path):
            files.delete([path])
        files.delete([f"{path}/"])  # recursive under the prefix
    elif os.path.isdir(path):
        # A worker of a failed run may still add a file while this walks the
        # tree (ENOTEMPTY): walk it again.
        for attempt in range(5):
            try:
                shutil.rmtree(path)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno != errno.ENOTEMPTY or attempt == 4:
                    raise
                time.sleep(0.1)
    elif os.path.lexists(path):
        os.remove(path)
