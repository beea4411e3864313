"""The counts that must reconcile: rows, inputs, rejected rows, labels, images."""

from __future__ import annotations

import collections

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from oibeam.schemas import fetch as fetch_schema
from oibeam.tools.runs import inside, is_count, statuses_of
from oibeam.tools.verify.findings import Report
from oibeam.tools.verify.listing import (
    UNREADABLE,
    Listing,
    Unreadable,
    read_bytes,
    read_table,
)


def check_rows(manifest: dict, listing: Listing, report: Report) -> None:
    """Each table's files add up to its rows; rows name the listed tables."""
    rows = manifest["rows"]
    for name, files in listing.files.items():
        if name in listing.partial:
            continue  # its entries are problems already
        if sum(f["rows"] for f in files) != rows.get(name):
            report.problems.append(f"{name}: file rows do not add up to rows[{name!r}]")
    unlisted = sorted(set(rows) - set(listing.files))
    if unlisted:
        report.problems.append(
            f"rows name table(s) the manifest lists no files of: {', '.join(unlisted)}"
        )


def check_inputs(directory: str, manifest: dict, listing: Listing, report: Report):
    """Rows read == kept + rejected per input; the rejected rows == the
    manifest's codes == the errors table; a tables run keeps the other images."""
    problems = report.problems
    rejected, kept_images = 0, 0
    for n, item in enumerate(manifest["inputs"]):
        counts = [item.get(k) for k in ("rows_read", "rows_kept", "rows_rejected")]
        if counts == [None, None, None]:
            continue  # read where the pipeline is built (a hierarchy): no rows
        if not all(is_count(c) for c in counts):
            problems.append(
                f"inputs[{n}]: its rows read, kept and rejected are not counts"
            )
            continue
        read, kept, dropped = counts
        if read != kept + dropped:
            problems.append(
                f"input {item.get('path')}: read {read} rows, kept {kept}, "
                f"rejected {dropped}"
            )
        rejected += dropped
        kept_images += kept if item.get("kind") == "images" else 0
    by_code = manifest.get("rejected_by_code", {})
    errors = manifest["rows"].get("errors", rejected)
    if not sum(by_code.values()) == rejected == errors:
        problems.append(
            f"rejected rows: {rejected} by the inputs, {sum(by_code.values())} "
            f"by code {by_code}, {errors} in tables/errors"
        )
    images = manifest["rows"].get("images")
    if report.kind == "tables" and images is not None and images != kept_images:
        problems.append(f"{images} images rows, the inputs kept {kept_images}")
    if "errors" in listing.partial:
        return  # its entries are problems already; the rest cannot be counted
    try:
        table = read_table(directory, listing, "errors", ["code"])
    except Unreadable as e:
        problems.append(f"tables/errors cannot be checked: {e}")
    else:
        found = dict(collections.Counter(table["code"].to_pylist())) if table else {}
        if found != {c: n for c, n in by_code.items() if n}:
            problems.append(
                f"tables/errors has {found} rows by code, the manifest {by_code}"
            )


def check_trainable(directory: str, listing: Listing, report: Report) -> None:
    """The labels label_stats marks trainable are those of trainable_labels.csv."""
    listed = listing.files.get("trainable_labels")
    if "label_stats" not in listing.files or not listed:
        return
    if {"label_stats", "trainable_labels"} & listing.partial:
        return  # their entries are problems already
    try:
        stats = read_table(directory, listing, "label_stats", ["label", "trainable"])
        data = read_bytes(inside(directory, listed[0]["path"]))
        csv = pacsv.read_csv(
            pa.py_buffer(data),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={"LabelName": pa.string(), "DisplayName": pa.string()}
            ),
        )
    except (Unreadable, *UNREADABLE) as e:
        report.problems.append(f"the trainable set cannot be checked: {e}")
        return
    marked = (
        set(stats.filter(stats["trainable"])["label"].to_pylist()) if stats else set()
    )
    if marked != set(csv["LabelName"].to_pylist()):
        report.problems.append(
            f"{len(marked)} labels trainable in label_stats, "
            f"{csv.num_rows} in trainable_labels.csv, not the same"
        )


def reconcile(directory: str, manifest: dict, listing: Listing, report: Report) -> dict:
    """Counts against the images table and the shard index (fetch and
    snapshot runs); returns the ok images per shard for member checks."""
    problems = report.problems
    counts = manifest.get("counts", {})
    rows = manifest["rows"]
    try:
        images = read_table(
            directory,
            listing,
            "images",
            ["ImageID", "status", "OriginalMD5", "checked", "shard", "bytes"],
        )
        index = read_table(directory, listing, "shard_index")
        if images is None or index is None:
            raise Unreadable("the manifest lists no images table or shard index")
    except Unreadable as e:
        problems.append(f"the images table or the shard index cannot be read: {e}")
        return {}
    statuses = collections.Counter(images["status"].to_pylist())
    expected = statuses_of(manifest)
    if dict(statuses) != expected:
        problems.append(
            f"statuses in tables/images {dict(statuses)} != manifest {expected}"
        )
    if counts.get("selected") != images.num_rows:
        problems.append(
            f"{images.num_rows} images rows, "
            f"the manifest selected {counts.get('selected')}"
        )
    ok = images.filter(pc.equal(images["status"], fetch_schema.OK))
    samples = sum(f["rows"] for f in listing.files.get("shards", []))
    if not ok.num_rows == index.num_rows == samples:
        problems.append(
            f"{ok.num_rows} ok images, {index.num_rows} shard index rows, "
            f"{samples} tar samples"
        )
    if index.num_rows != len(set(index["ImageID"].to_pylist())):
        problems.append("the shard index lists an image twice")
    changes = manifest.get("changes")
    if changes is not None and sum(changes.values()) != rows.get("diff", 0):
        problems.append(f"{rows.get('diff', 0)} diff rows, changes say {changes}")
    report.checked["images"] = images.num_rows
    by_id = {
        r["ImageID"]: r
        for r in ok.select(
            ["ImageID", "OriginalMD5", "checked", "bytes", "shard"]
        ).to_pylist()
    }
    shards: dict[str, list] = collections.defaultdict(list)
    for entry in index.to_pylist():
        image = by_id.get(entry["ImageID"])
        if image is None or image["shard"] != entry["shard"]:
            problems.append(
                f"shard index: {entry['ImageID']} is not an ok image "
                f"of {entry['shard']}"
            )
            continue
        if image["bytes"] != entry["size"]:
            problems.append(
                f"{entry['ImageID']}: {entry['size']} bytes in the shard, "
                f"{image['bytes']} fetched"
            )
        shards[entry["shard"]].append(
            (
                entry["ImageID"],
                entry["offset"],
                entry["size"],
                image["OriginalMD5"],
                image["checked"],
            )
        )
    return shards
