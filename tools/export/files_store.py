"""Where `--format files` reads and writes: the members of a run's tars, read
at their offsets, and the tree of files it writes, each under a temporary
name renamed when whole, with what an earlier export left there.
"""

from __future__ import annotations

import collections
import os

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from oibeam.tools.export.base import ExportError
from oibeam.transforms.common import files
from oibeam.transforms.common.write_files import commit, temporary_name
from oibeam.transforms.shard.locations import listed_path, run_relative

_OPEN_SHARDS = 16
_DELETE_BATCH = 1000
# What an entry of a tree is: ("file", size) or ("link", target).
Entry = tuple[str, object]


class ShardMembers:
    """Reads members at their offsets, a few shards kept open (images come
    in ImageID order, from every shard in turn)."""

    def __init__(self, run_directory: str) -> None:
        self._run = run_directory
        self._open: collections.OrderedDict = collections.OrderedDict()

    def read(self, shard: str, offset: int, size: int) -> bytes:
        handle = self._open.pop(shard, None)
        if handle is None:
            path = listed_path(self._run, run_relative(shard))
            handle = FileSystems.open(
                path, compression_type=CompressionTypes.UNCOMPRESSED
            )
            while len(self._open) >= _OPEN_SHARDS:
                self._open.popitem(last=False)[1].close()
        self._open[shard] = handle
        handle.seek(offset)
        data = handle.read(size)
        if len(data) != size:
            raise ExportError(
                f"{shard}: the member at {offset} runs past the end of the "
                "shard; run `oibeam verify` on the run"
            )
        return data

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()


def listing(directory: str) -> dict[str, Entry]:
    """Every file below `directory`, by path relative to it."""
    found: dict[str, Entry] = {}
    if files.is_uri(directory):
        for m in FileSystems.match([f"{directory}/**"])[0].metadata_list:
            found[m.path[len(directory) + 1 :]] = ("file", m.size_in_bytes)
        return found
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, directory).replace(os.sep, "/")
            if os.path.islink(path):
                found[relative] = ("link", os.readlink(path))
            else:
                found[relative] = ("file", os.path.getsize(path))
    return found


class FileTree:
    """The files below `directory`: those found there at the start (each
    claimed by `there` or removed by `sweep`) and those written now."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.local = not files.is_uri(directory)
        self._found = listing(directory)

    def claim(self, relative: str) -> Entry | None:
        """What was at `relative`, now this export's to keep or replace."""
        return self._found.pop(relative, None)

    def there(self, relative: str, expected: Entry | None) -> bool:
        """Whether `relative` is there as `expected` (None: any file)."""
        found = self.claim(relative)
        if found is None:
            return False
        return found[0] == "file" if expected is None else found == expected

    def put(self, relative: str, data: bytes) -> None:
        path = f"{self.directory}/{relative}"
        temp = temporary_name(path)
        try:
            with files.create(temp) as handle:
                handle.write(data)
            if self.local:
                os.replace(temp, path)
            else:
                commit(temp, path)
        except BaseException:
            if files.exists(temp):
                files.delete([temp])
            raise

    def link(self, relative: str, target: str) -> None:
        """A symlink at `relative` to `target` (relative to its folder)."""
        path = f"{self.directory}/{relative}"
        temp = temporary_name(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, temp)
        os.replace(temp, path)

    def sweep(self) -> list[str]:
        """Deletes what was found and never claimed; returns the paths."""
        paths = [f"{self.directory}/{r}" for r in sorted(self._found)]
        for start in range(0, len(paths), _DELETE_BATCH):
            files.delete(paths[start : start + _DELETE_BATCH])
        self._found = {}
        if self.local:
            # Deepest first, so a folder that only held empty ones goes too.
            for root, _, _ in os.walk(self.directory, topdown=False):
                if root != self.directory and not os.listdir(root):
                    try:
                        os.rmdir(root)
                    except OSError:
                        pass  # something appeared in it meanwhile
        return paths
