"""Shards' images fetched, verified and written into their tars, in ImageID
order (no Beam here: FetchImages begins one shard per element).

Every task (see image_tasks) is started ahead, --concurrency of them in
flight on the worker's fetch loop (and no more than BUFFER_BYTES of their
expected bytes held), across the shards begun, and their results are taken
back in task order, so a tar's bytes do not depend on which fetch finished
first. Then each shard's index part and images-table part are committed
after its tar (see shard_outputs).
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
    internal_columns,
    sample_json,
)
from oibeam.transforms.fetch.in_order import InOrder
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
# Shards a worker has begun and not committed, at most, while it asks for more
# (each holds an open tar): at 200 ms round trips a shard's slowest images
# take seconds, while the next ~3 shards of ~300 images could be fetched.
MAX_OPEN = 8


def _expected_size(row: dict) -> float:
    size = row.get("OriginalSize")
    return float(size) if isinstance(size, int) and size > 0 else _UNKNOWN_SIZE


class _ShardJob:
    """One shard being written: its tar, and what its tasks came to so far."""

    def __init__(self, paths: ShardPaths, tasks: pa.Table, fingerprint: str, writer):
        self.paths, self.tasks, self.fingerprint = paths, tasks, fingerprint
        self.writer = writer
        self.left = tasks.num_rows  # results not yet taken
        self.statuses: list[dict] = []
        self.index: list[tuple] = []
        self.received: dict[int, str] = {}  # bytes that came but were not ok


class ShardFetcher:
    """Fetches shards with `config.concurrency` requests in flight; one per
    worker (it owns a fetch loop and keep-alive connections: close() it).

    Shards begun one after another share one line of tasks: while one
    shard's last images are awaited, the next ones' are in flight, so the
    window does not drain at every shard's end (at 200 ms round trips a shard
    of ~300-500 images is one or two windows deep)."""

    def __init__(self, config: FetchConfig, outputs: ShardOutputs) -> None:
        self._config = config
        self._outputs = outputs
        self._runner = TaskRunner(config)
        self._open: list[_ShardJob] = []  # begun, not yet complete, in order
        self._new_line()

    def _new_line(self) -> None:
        runner = self._runner
        self._line = InOrder(
            lambda job_row: runner.start(job_row[1]),
            self._config.concurrency,
            lambda job_row: _expected_size(job_row[1]),
            BUFFER_BYTES,
        )

    def close(self) -> None:
        self.abort()
        self._runner.close()

    def begin(self, paths: ShardPaths, tasks: pa.Table, tasks_fingerprint: str):
        """Opens the shard's tar and starts its tasks (sorted by ImageID) as
        the window allows; complete() takes them. Returns the shard's job."""
        job = _ShardJob(paths, tasks, tasks_fingerprint, self._outputs.open_tar(paths))
        self._open.append(job)
        if job.left:
            self._line.feed((job, row) for row in tasks.to_pylist())
        try:
            self._line.refill()
        except BaseException:
            self.abort()
            raise
        return job

    def complete(self, on_status: Callable[[dict], None], feeding: bool = False):
        """Takes results into their tars; yields (job, (images-table part,
        every file written)) for each shard committed, in begin order.
        `on_status` sees each image's status as it is taken. Without
        `feeding`, returns once every shard begun is committed; with it, as
        soon as every task begun has started and at most MAX_OPEN shards are
        open: the caller begins the next shard while these are in flight, so
        a shard's slow last images do not idle the window."""
        try:
            while self._open:
                head = self._open[0]
                if not head.left:
                    self._open.pop(0)
                    yield head, self._commit(head)
                    continue
                taken = self._line.take(
                    unless_starving=feeding and len(self._open) <= MAX_OPEN
                )
                if taken is None:
                    return
                (job, row), result = taken
                job.left -= 1
                self._write(job, row, result)
                on_status(job.statuses[-1])
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Removes the tars of open shards; what is in flight is let go."""
        jobs, self._open = self._open, []
        if jobs:
            self._new_line()  # results of the old line are never taken
        for job in jobs:
            job.writer.abort()

    def _write(self, job: _ShardJob, row: dict, result) -> None:
        status = result.status
        if result.ok:
            status["shard"] = job.paths.shard_name
            ext = contract.FORMAT_EXTENSIONS.get(status["format"], "bin")
            image, meta = job.writer.add_sample(
                row["ImageID"],
                ext,
                result.data,
                sample_json(row, status, self._outputs.frozen_json),
            )
            job.index.append(_index_row(row["ImageID"], status["shard"], image, meta))
        if result.received_md5 is not None:
            job.received[len(job.statuses)] = result.received_md5
        job.statuses.append(status)

    def _commit(self, job: _ShardJob) -> tuple[pa.Table, list[WrittenFile]]:
        """The tar, then the index and images parts (see shard_outputs)."""
        placeholders.mark_repeated(job.statuses, job.received)
        size, crc = job.writer.commit()
        tar = WrittenFile("shards", job.paths.tar, job.writer.samples, size, crc)
        images = with_status(job.tasks, job.statuses, self._outputs.schema)
        written = self._outputs.commit_tables(
            job.paths, images, job.index, job.fingerprint
        )
        return images, [tar, *written]
