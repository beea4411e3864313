"""Read a finished run's samples without Beam: the one-liners users call.

    from oibeam.tools.dataset import samples
    for sample in samples("gs://bucket/root"):  # its LATEST; or ROOT/ID
        sample["__key__"], sample["jpg"], sample["labels"]

or with the standard WebDataset reader (local paths only, see below):

    import webdataset as wds
    from oibeam.tools.dataset import shard_urls, skip_deleted, with_labels
    data = (
        wds.WebDataset(shard_urls(run), shardshuffle=False)
        .select(skip_deleted(run))
        .map(with_labels(run))
    )

webdataset (1.0.2 checked) hands each sample's tar URL, exactly as given, in
`__url__` and its key in `__key__`: the callables look both up, and refuse a
URL that shard_urls did not give (a deleted image would slip through).
Both callables pickle, for DataLoader workers.

A snapshot's manifest lists every tar it uses, pooled ones included, and
tables/deleted the images whose bytes sit in those tars but are not part of
the snapshot (removed, or fetched again into a newer tar): a reader must skip
them, as `samples` and `skip_deleted` do. Labels are read from the run's
tables (a pooled tar's JSON has none: a relabel never rewrites a tar);
`samples` and `with_labels` add them as {LabelName, Confidence, Source} rows.

`samples` opens tars through Beam's FileSystems, so local paths and gs:// both
work. webdataset opens its URLs itself: a local path as a file, gs:// through
a `gsutil cat` subprocess (its own credentials, not Beam's), so for gs:// use
`samples`, or copy the snapshot locally (`oibeam export --format webdataset`).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from oibeam.tools.runs import BadManifest, Run, resolve_run
from oibeam.transforms.shard.locations import listed_path, shard_location

LabelRow = dict[str, Any]  # {"LabelName", "Confidence", "Source"}


def _load(run: str) -> Run:
    """ROOT/ID, or a snapshot ROOT meaning its LATEST (NotARun otherwise)."""
    return Run.load(resolve_run(run))


def shard_urls(run: str) -> list[str]:
    """The tars of the run's manifest (`tables.shards.files`), in its order,
    as paths or gs:// URLs."""
    return _urls(_load(run))


def _urls(loaded: Run) -> list[str]:
    files = loaded.manifest["tables"].get("shards", {}).get("files", [])
    return [listed_path(loaded.directory, f["path"]) for f in files]


def deleted(run: str) -> dict[str, set[str]]:
    """Shard URL -> the ImageIDs tables/deleted lists for it (empty for a run
    without that table: fetch runs, snapshots from before the pool)."""
    return _deleted(_load(run))


def _deleted(loaded: Run) -> dict[str, set[str]]:
    table = loaded.read("deleted", ["ImageID", "shard"])
    found: dict[str, set[str]] = {}
    if table is None:
        return found
    for image_id, shard in zip(
        table["ImageID"].to_pylist(), table["shard"].to_pylist(), strict=True
    ):
        try:
            url = shard_location(loaded.directory, shard)
        except ValueError as e:
            raise BadManifest(f"{loaded.directory}: tables/deleted: {e}") from None
        found.setdefault(url, set()).add(image_id)
    return found


def _labels(loaded: Run) -> dict[str, list[LabelRow]]:
    """ImageID -> its label rows: tables/labels, or for a run without it
    (fetch runs) the images table's nested labels.

    Held whole in memory as Python objects, about 300 bytes a label row
    (label names and sources are shared): fine for a subset, tens of GB for
    the tens of millions of rows of a full release (read its Parquet tables
    with Arrow instead)."""
    by_image: dict[str, list[LabelRow]] = {}
    shared: dict[str, str] = {}
    columns = ["ImageID", "LabelName", "Confidence", "Source"]
    if loaded.schema("labels") is not None:
        for batch in loaded.batches("labels", columns):
            for row in batch.to_pylist():
                image_id = row.pop("ImageID")
                for key in ("LabelName", "Source"):
                    row[key] = shared.setdefault(row[key], row[key])
                by_image.setdefault(image_id, []).append(row)
        return by_image
    for batch in loaded.batches("images", ["ImageID", "labels"]):
        if "labels" not in batch.schema.names:
            break  # a run with no labels at all
        for image_id, labels in zip(
            batch.column("ImageID").to_pylist(),
            batch.column("labels").to_pylist(),
            strict=True,
        ):
            by_image[image_id] = [
                {
                    "LabelName": item["label"],
                    "Confidence": item["confidence"],
                    "Source": item["source"],
                }
                for item in labels or ()
            ]
    return by_image


def _split(name: str) -> tuple[str, str]:
    """(key, extension) of a member as WebDataset splits it: the key is the
    name up to the first dot of its last segment, the extension lowercased."""
    directory, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{directory}/{stem}" if directory else stem), ext.lower()


def _tar_samples(url: str, skip: set[str]) -> Iterator[dict[str, Any]]:
    """The samples of one tar, read sequentially (one member in memory at a
    time); members of keys in `skip` are passed over unread."""
    current: dict[str, Any] | None = None
    with FileSystems.open(url, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        with tarfile.open(fileobj=f, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, ext = _split(member.name)
                if key in skip or not ext:
                    continue
                if current is None or current["__key__"] != key:
                    if current is not None:
                        yield current
                    current = {"__key__": key, "__url__": url}
                if ext in current:
                    raise ValueError(f"{url}: {member.name} twice in one sample")
                current[ext] = tar.extractfile(member).read()
    if current is not None:
        yield current


def samples(run: str, labels: bool = True) -> Iterator[dict[str, Any]]:
    """Every sample of the run, tar by tar in manifest order, then in tar
    order: {"__key__": ImageID, "__url__": tar URL, "jpg"/"png"/...: bytes,
    "json": bytes}, plus with `labels` its "labels" rows (see _labels for the
    memory this takes). Images tables/deleted lists for a tar are skipped."""
    loaded = _load(run)
    gone = _deleted(loaded)
    by_image = _labels(loaded) if labels else None
    for url in _urls(loaded):
        for sample in _tar_samples(url, gone.get(url, set())):
            if by_image is not None:
                sample["labels"] = by_image.get(sample["__key__"], [])
            yield sample


def _check(directory: str, urls: frozenset[str], sample: dict[str, Any]) -> None:
    """ValueError for a sample of a tar the run does not list: its URL must
    be one shard_urls gave, character for character, or deletions would be
    missed."""
    if sample.get("__url__") not in urls:
        raise ValueError(
            f"a sample from {sample.get('__url__')!r}, not a tar of "
            f"{directory}: read the URLs shard_urls() gives for that run"
        )


class SkipDeleted:
    """For `.select(...)`: False for a sample tables/deleted lists."""

    def __init__(self, loaded: Run) -> None:
        self.directory = loaded.directory
        self.urls = frozenset(_urls(loaded))
        self.deleted = _deleted(loaded)

    def __call__(self, sample: dict[str, Any]) -> bool:
        _check(self.directory, self.urls, sample)
        return sample["__key__"] not in self.deleted.get(sample["__url__"], ())


class WithLabels:
    """For `.map(...)`: the sample with its "labels" rows added."""

    def __init__(self, loaded: Run) -> None:
        self.directory = loaded.directory
        self.urls = frozenset(_urls(loaded))
        self.labels = _labels(loaded)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        _check(self.directory, self.urls, sample)
        sample["labels"] = self.labels.get(sample["__key__"], [])
        return sample


def skip_deleted(run: str) -> SkipDeleted:
    """A predicate for WebDataset's `.select`: keeps the run's own samples."""
    return SkipDeleted(_load(run))


def with_labels(run: str) -> WithLabels:
    """A function for WebDataset's `.map`: adds each sample's label rows
    (memory: see _labels)."""
    return WithLabels(_load(run))
