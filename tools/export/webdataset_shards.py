"""The tars of a webdataset copy (see `webdataset`): the run's live samples,
streamed out of its tars and regrouped into new ones, with their new index.

Each source tar is read once, sequentially (tarfile stream mode), and checked
against its manifest entry (size, CRC32C) as it passes; only the members the
shard index lists are copied, byte for byte, so the images tables/deleted
lists are left behind unread. The shard index is held in memory as Arrow,
about 200 bytes an image (2 GB for the 9 million of a full release).
"""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from collections.abc import Callable

import google_crc32c
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.fetch import SHARD_INDEX
from oibeam.tools.export.base import ExportError
from oibeam.tools.runs import Run
from oibeam.transforms.shard.locations import from_run_relative, listed_path
from oibeam.transforms.shard.shard_writer import ShardWriter, checksum_label

_VERIFY = "run `oibeam verify` on the run"
_ROW = "_row"  # a sample's position in copy order
_TAR = "_tar"  # its source tar's position in the manifest


class _Checked:
    """A read stream that keeps the size and checksum of what passed, in the
    form of `expected`, as verify reads it: crc32c:, crc32: (manifests
    before 2026-11-24), else MD5 hex."""

    def __init__(self, handle, expected: str) -> None:
        self._handle, self._expected = handle, expected
        self._kind = expected.split(":")[0] if ":" in expected else "md5"
        self.size, self._crc, self._md5 = 0, 0, hashlib.md5()

    def read(self, n: int = -1) -> bytes:
        data = self._handle.read(n)
        self.size += len(data)
        if self._kind == "crc32c":
            self._crc = google_crc32c.extend(self._crc, data)
        elif self._kind == "crc32":
            self._crc = zlib.crc32(data, self._crc)
        else:
            self._md5.update(data)
        return data

    def matches(self, entry: dict) -> bool:
        checksum = {
            "crc32c": lambda: checksum_label(self._crc),
            "crc32": lambda: f"crc32:{self._crc:08x}",
        }.get(self._kind, self._md5.hexdigest)()
        return self.size == entry["bytes"] and checksum == entry["md5"]


def source_shards(run: Run) -> list[tuple[str, str, dict]]:
    """(index name, path, manifest entry) of each tar of the run, in order."""
    found = []
    for entry in run.manifest["tables"].get("shards", {}).get("files", []):
        relative = entry["path"]
        name = from_run_relative(relative) or relative.removeprefix("shards/")
        found.append((name, listed_path(run.directory, relative), entry))
    return found


def _read_index(run: Run, names: list[str]) -> pa.Table:
    """The shard index in copy order: source tar by tar, then by offset."""
    pieces = []
    for path in run.table_files("shard_index", "shards/index"):
        with FileSystems.open(path) as f:
            pieces.append(pq.ParquetFile(f).read(columns=SHARD_INDEX.names))
    index = pa.concat_tables(pieces) if pieces else SHARD_INDEX.empty_table()
    tar = pc.index_in(index["shard"], value_set=pa.array(names, pa.string()))
    if tar.null_count:
        first = index["shard"].filter(pc.is_null(tar))[0]
        raise ExportError(
            f"{run.directory}: the shard index names {first}, a tar its "
            f"manifest does not list; {_VERIFY}"
        )
    index = index.append_column(_TAR, tar)
    index = index.sort_by([(_TAR, "ascending"), ("offset", "ascending")])
    return index.append_column(_ROW, pa.array(np.arange(index.num_rows)))


def plan(sizes: list[int], target: int) -> np.ndarray:
    """The new tar of each sample: consecutive samples, each tar about
    `target` bytes of members (more only for one sample bigger than it)."""
    which = np.zeros(len(sizes), np.int64)
    tar, filled = 0, 0
    for i, size in enumerate(sizes):
        if filled and filled + size > target:
            tar, filled = tar + 1, 0
        which[i], filled = tar, filled + size
    return which


def _copy_tar(path: str, entry: dict, rows: list[dict], place: Callable) -> None:
    """Streams one source tar, handing each member `rows` name to
    place(row, is_json, data); ExportError if one is missing or misplaced, or
    the tar is not the one the manifest lists."""
    wanted = {}
    for row in rows:
        wanted[row["member"]] = (row, False, row["offset"], row["size"])
        wanted[row["json_member"]] = (row, True, row["json_offset"], row["json_size"])
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        checked = _Checked(f, entry["md5"])
        with tarfile.open(fileobj=checked, mode="r|") as tar:
            for member in tar:
                if member.name not in wanted:
                    continue
                row, is_json, offset, size = wanted.pop(member.name)
                if (member.offset_data, member.size) != (offset, size):
                    raise ExportError(
                        f"{path}: {member.name} is not where the shard index "
                        f"says; {_VERIFY}"
                    )
                place(row, is_json, tar.extractfile(member).read())
        while checked.read(1 << 20):
            pass  # the end blocks tarfile stops before, for the checksum
    if wanted:
        raise ExportError(f"{path} lacks {min(wanted)}; {_VERIFY}")
    if not checked.matches(entry):
        raise ExportError(
            f"{path}: its size or checksum is not the manifest's; {_VERIFY}"
        )


class _Output:
    """The new tars, written one after the other, and where each member went."""

    def __init__(self, directory: str, names: list[str], which: np.ndarray) -> None:
        self._directory, self._names, self._which = directory, names, which
        self.offsets = np.full((len(which), 2), -1, np.int64)
        self.entries: list[dict] = []
        self._writer: ShardWriter | None = None
        self._current = -1

    def place(self, row: dict, is_json: bool, data: bytes) -> None:
        tar = int(self._which[row[_ROW]])
        if tar < self._current:  # a committed tar is never reopened
            raise ExportError(f"{row['member']}: the members of a sample are apart")
        if tar > self._current:
            self.finish()
            self._writer = ShardWriter(f"{self._directory}/{self._names[tar]}")
            self._current = tar
        member = row["json_member" if is_json else "member"]
        self.offsets[row[_ROW], int(is_json)] = self._writer.add(member, data).offset
        self._writer.samples += int(is_json)

    def finish(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            size, crc = writer.commit()
            name = writer.path.rsplit("/", 1)[-1]
            self.entries.append(
                {
                    "path": f"shards/{name}",
                    "rows": writer.samples,
                    "bytes": size,
                    "md5": crc,
                }
            )

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


def write_shards(run: Run, out: str, target: int) -> tuple[pa.Table, list[dict]]:
    """Writes OUT/shards/images-SSSSS-of-NNNNN.tar; returns the copy's shard
    index (in copy order) and the tars' manifest entries."""
    tars = source_shards(run)
    index = _read_index(run, [name for name, _, _ in tars])
    which = plan(pc.add(index["size"], index["json_size"]).to_pylist(), target)
    count = int(which[-1]) + 1 if len(which) else 0
    names = [f"images-{k:05d}-of-{count:05d}.tar" for k in range(count)]
    output = _Output(f"{out}/shards", names, which)
    ends = np.searchsorted(index[_TAR].to_numpy(), np.arange(len(tars) + 1))
    try:
        for n, (_, path, entry) in enumerate(tars):
            rows = index.slice(ends[n], ends[n + 1] - ends[n]).to_pylist()
            if rows:
                _copy_tar(path, entry, rows, output.place)
        output.finish()
    except BaseException:
        output.abort()
        raise
    shard = pa.array(names, pa.string()).take(pa.array(which))
    index = index.set_column(index.schema.get_field_index("shard"), "shard", shard)
    for column, offsets in zip(
        ("offset", "json_offset"), output.offsets.T, strict=True
    ):
        at = index.schema.get_field_index(column)
        index = index.set_column(at, column, pa.array(offsets))
    return index.select(SHARD_INDEX.names).cast(SHARD_INDEX), output.entries
