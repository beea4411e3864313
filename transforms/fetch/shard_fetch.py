"""One shard's images fetched, verified and written into its tar, in ImageID
order (no Beam here: FetchImages runs one of these per shard element).

Every task (see image_tasks) is started ahead, --concurrency of them in
flight on the worker's fetch loop (and no more than BUFFER_BYTES of their
expected bytes held), and their results are taken back in task order, so the
tar's bytes do not depend on which fetch finished first. Then the shard's
index part and images-table part are committed after the tar (see
shard_outputs).
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from oibeam.schemas import fetch as contract
from oibeam.schemas.elements import WrittenFile
from oibeam.transforms.fetch import placeholders
from oibeam.transforms.fetch.image_tasks import (
    FetchConfig,
    TaskRunner,
    in_order,
    internal_columns,
    sample_json,
)
from oibeam.transforms.fetch.pixel_boxes import with_upright_boxes
from oibeam.transforms.shard.shard_outputs import ShardOutputs, ShardPaths
from oibeam.transforms.shard.shard_writer import Member


def with_status(tasks: pa.Table, statuses: list[dict], schema: pa.Schema) -> pa.Table:
    """The images-table part: task columns (internal ones dropped) + statuses,
    boxes in pixels of the upright image."""
    table = tasks.drop_columns(internal_columns(tasks))
    for f in contract.STATUS_FIELDS:
        table = table.append_column(f, pa.array([s[f.name] for s in statuses], f.type))
    return with_upright_boxes(table).select(schema.names).cast(schema)


def _index_row(image_id: str, shard: str, image: Member, meta: Member) -> tuple:
    """A shard index row (schemas.fetch INDEX): where the sample's members are."""
    return (
        image_id,
        shard,
        image.name,
        image.offset,
        image.size,
        meta.name,
        meta.offset,
        meta.size,
    )


# Expected bytes (OriginalSize) of the images started and not yet written a
# worker holds at most: 256 originals of ~2 MB in flight, not 256 of 15 MB.
BUFFER_BYTES = 512 << 20
_UNKNOWN_SIZE = 300_000  # a thumbnail's, or a row without OriginalSize


def _expected_size(row: dict) -> float:
    size = row.get("OriginalSize")
    return float(size) if isinstance(size, int) and size > 0 else _UNKNOWN_SIZE


class ShardFetcher:
    """Fetches shards with `config.concurrency` requests in flight; one per
    worker (it owns a fetch loop and keep-alive connections: close() it)."""

    def __init__(self, config: FetchConfig, outputs: ShardOutputs) -> None:
        self._config = config
        self._outputs = outputs
        self._runner = TaskRunner(config)

    def close(self) -> None:
        self._runner.close()

    def fetch(
        self,
        paths: ShardPaths,
        tasks: pa.Table,
        tasks_fingerprint: str,
        on_status: Callable[[dict], None],
    ) -> tuple[pa.Table, list[WrittenFile]]:
        """Runs the shard's tasks (sorted by ImageID) into its tar; then commits
        the index and images parts. Returns (images-table part, every file
        written); `on_status` sees each image's status as it is taken."""
        tar, index, statuses = self._write_tar(paths, tasks, on_status)
        images = with_status(tasks, statuses, self._outputs.schema)
        written = self._outputs.commit_tables(paths, images, index, tasks_fingerprint)
        return images, [tar, *written]

    def _write_tar(self, paths: ShardPaths, tasks: pa.Table, on_status):
        """(the tar WrittenFile, index rows, a status per task)."""
        writer = self._outputs.open_tar(paths)
        statuses, index = [], []
        received: dict[int, str] = {}  # bytes that came but were not ok
        try:
            rows = tasks.to_pylist()
            taken = in_order(
                self._runner.start,
                rows,
                self._config.concurrency,
                _expected_size,
                BUFFER_BYTES,
            )
            for row, result in taken:
                status = result.status
                if result.ok:
                    status["shard"] = paths.shard_name
                    ext = contract.FORMAT_EXTENSIONS.get(status["format"], "bin")
                    image, meta = writer.add_sample(
                        row["ImageID"],
                        ext,
                        result.data,
                        sample_json(row, status, self._outputs.frozen_json),
                    )
                    index.append(
                        _index_row(row["ImageID"], status["shard"], image, meta)
                    )
                if result.received_md5 is not None:
                    received[len(statuses)] = result.received_md5
                statuses.append(status)
                on_status(status)
            placeholders.mark_repeated(statuses, received)
            size, crc = writer.commit()
        except BaseException:
            writer.abort()
            raise
        tar = WrittenFile("shards", paths.tar, writer.samples, size, crc)
        return tar, index, statuses
