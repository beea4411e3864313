"""`--format webdataset`: a self-contained copy of one run, every image byte in it.

OUT/webdataset/ is a run of its own that needs nothing outside its directory
(no `../pool` tar), that `oibeam verify` checks and any WebDataset reader reads:

    shards/images-SSSSS-of-NNNNN.tar  the run's live samples only, both members
                                      copied byte for byte, in the source's
                                      manifest and tar order, about the source's
                                      --shard-bytes a tar (webdataset_shards)
    shards/index/part-J-of-M.parquet  their new offsets, paired with images part J
    tables/...                        the run's tables, copied; images with its
                                      `shard` column naming the new tars;
                                      deleted empty (every sample is live)
    manifest.json, _SUCCESS           as a snapshot publishes them

The JSON members are kept as they are: a pooled tar's JSON holds only what
cannot change for those bytes; labels and the rest are in tables/ (read them
with tools/dataset). The diff table is left out, with the manifest's change
and action counts: it compares the run with a parent the copy does not hold,
and its `removed` rows name images that are not in it. `export` in the
manifest says what was copied (the source's id, parent and manifest SHA-256).

Every file is written under a temporary name and renamed; a rerun first
removes manifest.json and _SUCCESS, which come last, so an interrupted copy is
no run until a rerun completes it. Files an earlier copy left are swept. The
same run gives the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from oibeam.schemas.fetch import OK
from oibeam.schemas.snapshot import DELETED, MANIFEST, SUCCESS
from oibeam.tools.export.base import ExportError, WrittenExport, list_directory
from oibeam.tools.export.webdataset_shards import source_shards, write_shards
from oibeam.tools.runs import Run
from oibeam.transforms.common.write_files import (
    DEFAULT_COMPRESSION,
    write_atomically,
    write_parquet,
    write_text,
)
from oibeam.transforms.publish.publish_snapshot import manifest_digest, success_text
from oibeam.transforms.shard.locations import from_run_relative, listed_path

NAME = "webdataset"
# Tables the copy writes itself (images, shard_index, shards, deleted) or
# leaves out (diff); the others are copied file by file.
_OWN = ("images", "shard_index", "shards", "deleted", "diff")
# Manifest keys about the diff, left out with it.
_HISTORY = (
    "changes",
    "actions",
    "change_vocabulary",
    "action_vocabulary",
    "reason_vocabulary",
)
_VERIFY = "run `oibeam verify` on the run"


def _entry(out: str, path: str, rows: int, written: tuple[int, str]) -> dict:
    size, md5 = written
    relative = path.removeprefix(f"{out}/")
    return {"path": relative, "rows": rows, "bytes": size, "md5": md5}


def _write_images(run: Run, out: str, index: pa.Table, compression: str) -> dict:
    """tables/images part J with `shard` naming the new tars, and shards/index
    part J with the rows of its ok images: paired by name, as a snapshot's."""
    parts = run.table_files("images")
    tables: dict[str, list] = {"images": [], "shard_index": []}
    placed = 0
    for j, path in enumerate(parts):
        with FileSystems.open(path) as f:
            images = pq.ParquetFile(f).read()
        ok = pc.equal(images["status"], OK)
        where = pc.index_in(images["ImageID"], value_set=index["ImageID"])
        if pc.any(pc.and_(ok, pc.is_null(where))).as_py():
            raise ExportError(f"{path}: an ok image has no shard index row; {_VERIFY}")
        where = pc.if_else(ok, where, pa.scalar(None, where.type))
        at = images.schema.get_field_index("shard")
        field = images.schema.field(at)
        images = images.set_column(
            at, field, index["shard"].take(where).cast(field.type)
        )
        rows = index.take(where.filter(ok))
        placed += rows.num_rows
        name = f"part-{j:05d}-of-{len(parts):05d}.parquet"
        for table, data in (("images", images), ("shard_index", rows)):
            folder = "tables/images" if table == "images" else "shards/index"
            target = f"{out}/{folder}/{name}"
            written = write_parquet(target, data, compression)
            tables[table].append(_entry(out, target, data.num_rows, written))
    if placed != index.num_rows:
        raise ExportError(
            f"{run.directory}: {index.num_rows - placed} shard index row(s) of "
            f"no ok image; {_VERIFY}"
        )
    return tables


def _copy_file(source: str, target: str) -> tuple[int, str]:
    with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return write_atomically(target, lambda out: shutil.copyfileobj(f, out, 1 << 20))


def _copy_tables(run: Run, out: str, compression: str) -> dict[str, list]:
    """Every other table, file by file; deleted as one empty part."""
    tables: dict[str, list] = {}
    for name, table in run.manifest["tables"].items():
        if name == "deleted":
            target = f"{out}/tables/deleted/part-00000.parquet"
            written = write_parquet(target, DELETED.empty_table(), compression)
            tables[name] = [_entry(out, target, 0, written)]
        if name in _OWN:
            continue
        tables[name] = []
        for entry in table["files"]:
            if from_run_relative(entry["path"]) is not None:
                raise ExportError(
                    f"{run.directory}: tables.{name} lists {entry['path']}, "
                    "outside the run"
                )
            target = f"{out}/{entry['path']}"
            written = _copy_file(listed_path(run.directory, entry["path"]), target)
            tables[name].append(_entry(out, target, entry["rows"], written))
    return tables


def _manifest(run: Run, tables: dict[str, list]) -> dict:
    """The run's manifest with the copy's tables and rows, without the diff's
    counts, and where it came from under `export`."""
    manifest = {k: v for k, v in run.manifest.items() if k not in _HISTORY}
    snapshot = manifest.get("snapshot") or {}
    if "snapshot" in manifest:  # a snapshot with no root or parent of its own
        manifest["snapshot"] = {
            "id": snapshot.get("id"),
            "root": None,
            "parent": None,
            "resumed": False,
        }
    with FileSystems.open(f"{run.directory}/{MANIFEST}") as f:
        digest = manifest_digest(f.read())
    manifest["export"] = {
        "format": NAME,
        "snapshot": snapshot.get("id"),
        "parent": (snapshot.get("parent") or {}).get("id"),
        "manifest_sha256": digest,
    }
    ordered = dict(sorted(tables.items()))
    manifest["rows"] = {
        n: sum(f["rows"] for f in files) for n, files in ordered.items()
    }
    manifest["tables"] = {
        n: {"rows": manifest["rows"][n], "files": files} for n, files in ordered.items()
    }
    return manifest


def _sweep(out: str, keep: set[str]) -> list[str]:
    """Deletes the files an earlier copy left in the copy's directories that
    this one did not write; not below them (a copy's own exports stay)."""
    tables = f"{out}/tables"
    found = FileSystems.match([f"{tables}/*/*", f"{tables}/*/.*"])
    subdirs = {
        m.path[len(tables) + 1 :].split("/")[0] for r in found for m in r.metadata_list
    }
    directories = {out, f"{out}/shards", f"{out}/shards/index", tables}
    directories |= {f"{tables}/{s}" for s in subdirs}
    # On gs:// a listing holds the files below too: keep those directly in.
    stale = sorted(
        {
            p
            for d in directories
            for p in list_directory(d)
            if p.rsplit("/", 1)[0] in directories and p not in keep
        }
    )
    if stale:
        FileSystems.delete(stale)
    return stale


def _refuse_overlap(run: Run, out: str) -> None:
    """ExportError if the copy would hold the run or its tars (a rerun's
    sweep would delete them)."""

    def real(path: str) -> str:
        return path.rstrip("/") if "://" in path else os.path.realpath(path)

    inside = real(out) + "/"
    for path in [run.directory, *(path for _, path, _ in source_shards(run))]:
        if (real(path) + "/").startswith(inside):
            raise ExportError(
                f"--output: {out} would hold the run it copies ({run.directory})"
            )


def copy_run(run: Run, out: str) -> tuple[list[WrittenExport], list[str]]:
    """Writes the copy of `run` under `out`; returns what it wrote (a line
    for the tars, the tables and the manifest) and the stale files removed."""
    out = out.rstrip("/")
    _refuse_overlap(run, out)
    for name in (SUCCESS, MANIFEST):  # not a run again until complete
        if FileSystems.exists(f"{out}/{name}"):
            FileSystems.delete([f"{out}/{name}"])
    options = run.manifest.get("options") or {}
    compression = (options.get("output") or {}).get("parquet_compression")
    compression = compression or DEFAULT_COMPRESSION
    listed = run.manifest["tables"].get("shards", {}).get("files", [])
    target = (options.get("fetch") or {}).get("shard_bytes") or max(
        (f["bytes"] for f in listed), default=1
    )
    index, shards = write_shards(run, out, target)
    tables = {
        "shards": shards,
        **_write_images(run, out, index, compression),
        **_copy_tables(run, out, compression),
    }
    manifest = _manifest(run, tables)
    data = (json.dumps(manifest, indent=2) + "\n").encode()
    size, _ = write_text(f"{out}/{MANIFEST}", data.decode())
    keep = {f"{out}/{f['path']}" for files in tables.values() for f in files}
    removed = _sweep(out, keep | {f"{out}/{MANIFEST}", f"{out}/{SUCCESS}"})
    # Published when the run was: the same run gives the same bytes.
    write_text(f"{out}/{SUCCESS}", success_text(data, manifest.get("finished", "")))
    others = {
        n: files for n, files in tables.items() if n not in ("shards", "shard_index")
    }
    written = [
        WrittenExport(
            NAME,
            f"{out}/shards",
            index.num_rows,
            sum(f["bytes"] for f in shards),
            detail=f"{len(shards)} tar(s) and their index",
        ),
        WrittenExport(
            NAME,
            f"{out}/tables",
            len(others),
            sum(f["bytes"] for files in others.values() for f in files),
            unit="tables",
            detail=f"{sum(len(files) for files in others.values())} files",
        ),
        WrittenExport(NAME, f"{out}/{MANIFEST}", 1, size, unit="file"),
    ]
    return written, removed
