"""WriteManifest: what the manifest records, stray files of an earlier attempt
swept, and a run that does not reconcile fails without a manifest."""

from __future__ import annotations

import datetime
import hashlib
import json
import os

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.util import assert_that, equal_to

from oibeam.schemas.elements import Count, RangeLines, WrittenFile
from oibeam.schemas.tables import ERRORS
from oibeam.transforms.common.exchange import write_piece
from oibeam.transforms.common.write_files import write_parquet
from oibeam.transforms.publish.manifest import (
    EXTRA_INPUTS,
    MANIFEST,
    WriteManifest,
    build_manifest,
    relative,
    remove_strays,
)
from oibeam.transforms.publish.reconcile import CountsDoNotReconcile

from support.run_counts import IMAGE_COLUMNS, LABEL_ROWS
from support.run_counts import file_counts as _counts

IMAGES = pa.schema([pa.field("ImageID", pa.string(), nullable=False)])


def _range_lines(plan) -> list[RangeLines]:
    """The MD5 of each planned byte range, computed from the file."""
    out = []
    for r in plan.ranges:
        path = plan.files[r.file_id].path
        with open(path, "rb") as f:
            f.seek(r.start)
            data = f.read(r.end - r.start)
        out.append(
            RangeLines(r.range_id, data.count(b"\n"), hashlib.md5(data).hexdigest())
        )
    return out


def test_relative_paths_are_under_the_root_only():
    assert relative("/out/run/tables/a.parquet", "/out/run") == "tables/a.parquet"
    assert relative("/out/run/tables/a.parquet", "/out/run/") == "tables/a.parquet"
    assert relative("gs://b/run/shards/x.tar", "gs://b/run") == "shards/x.tar"
    # A sibling whose name starts with the root's is not under it.
    assert relative("/out/run2/tables/a.parquet", "/out/run") == (
        "/out/run2/tables/a.parquet"
    )


def test_the_manifest_records_inputs_tables_and_info(plan, tmp_path):
    root = str(tmp_path / "run")
    written = [
        WrittenFile("labels", f"{root}/tables/labels/part-00001.parquet", 5, 50, "b"),
        WrittenFile("images", f"{root}/tables/images/part-00000.parquet", 2, 20, "i"),
        WrittenFile("labels", f"{root}/tables/labels/part-00000.parquet", 7, 70, "a"),
    ]
    extra = {"path": "/h.json", "kind": "hierarchy", "bytes": 9, "md5": "m"}
    info = {"command": "tables", "options": {"x": 1}, EXTRA_INPUTS: [extra]}
    ranges = _range_lines(plan)
    before = datetime.datetime.now(datetime.timezone.utc)
    manifest = build_manifest(plan, written, _counts(), root, info, ranges)
    after = datetime.datetime.now(datetime.timezone.utc)

    assert manifest["command"] == "tables" and manifest["options"] == {"x": 1}
    assert EXTRA_INPUTS not in manifest
    assert before <= datetime.datetime.fromisoformat(manifest["finished"]) <= after
    assert manifest["rows"] == {"images": 2, "labels": 12}
    assert manifest["tables"]["labels"] == {
        "rows": 12,
        "files": [
            {
                "path": "tables/labels/part-00000.parquet",
                "rows": 7,
                "bytes": 70,
                "md5": "a",
            },
            {
                "path": "tables/labels/part-00001.parquet",
                "rows": 5,
                "bytes": 50,
                "md5": "b",
            },
        ],
    }
    assert manifest["rejected_by_code"] == {
        "bad_confidence": 1,
        "duplicate_image": 1,
        "unknown_image": 4,
    }

    images, labels, classes, hierarchy = manifest["inputs"]
    assert hierarchy == extra
    image_file = plan.files[0]
    with open(image_file.path, "rb") as f:
        assert images["md5"] == hashlib.md5(f.read()).hexdigest()
    assert images["path"] == image_file.path and images["kind"] == "images"
    assert images["bytes"] == os.path.getsize(image_file.path)
    assert images["release"] == image_file.layout.release
    assert images["columns"] == IMAGE_COLUMNS
    assert (images["rows_read"], images["rows_kept"], images["rows_rejected"]) == (
        3,
        2,
        1,
    )
    assert images["rejected_by_code"] == {"duplicate_image": 1}
    # A split file: one MD5 per byte range, in file order, covering the file.
    assert "md5" not in labels
    pieces = labels["md5_ranges"]
    assert [p["start"] for p in pieces] == sorted(p["start"] for p in pieces)
    assert pieces[0]["start"] == 0 and pieces[-1]["end"] == labels["bytes"]
    for before, after in zip(pieces, pieces[1:], strict=False):
        assert before["end"] == after["start"]
    with open(plan.files[1].path, "rb") as f:
        data = f.read()
    for p in pieces:
        assert p["md5"] == hashlib.md5(data[p["start"] : p["end"]]).hexdigest()
    assert list(labels["rejected_by_code"]) == ["bad_confidence", "unknown_image"]
    assert classes["release"] is None and classes["columns"] is None


def test_without_range_checksums_inputs_have_no_md5(plan, tmp_path):
    manifest = build_manifest(plan, [], _counts(), str(tmp_path), {})
    images, labels, _ = manifest["inputs"]
    assert images["md5"] is None
    assert {p["md5"] for p in labels["md5_ranges"]} == {None}
    assert manifest["tables"] == {} and manifest["rows"] == {}


def _touch(path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return str(path)


def test_remove_strays_keeps_what_the_run_wrote(tmp_path):
    images = tmp_path / "tables" / "images"
    shards = tmp_path / "shards"
    keep = {
        _touch(images / "part-00000-of-00002.parquet"),
        _touch(images / "part-00001-of-00002.parquet"),
        _touch(shards / "images-00000-of-00002.tar"),
    }
    stray = [
        _touch(images / "part-00002-of-00003.parquet"),  # an attempt with 3 shards
        _touch(images / ".tmp-0a1b-part-00000-of-00002.parquet"),  # killed mid-write
        _touch(shards / ".tmp-ffff-images-00001-of-00002.tar"),
        _touch(shards / "images-00001-of-00003.tar"),
    ]
    below = _touch(shards / "index" / "part-00009-of-00010.parquet")
    outside = _touch(tmp_path / "tables" / "labels" / "part-00007.parquet")

    remove_strays([f"{images}/", str(shards), str(tmp_path / "tables" / "gone")], keep)

    for path in keep | {below, outside}:
        assert os.path.exists(path), path
    for path in stray:
        assert not os.path.exists(path), path
    assert (shards / "index").is_dir()


def test_remove_strays_on_gcs(gcs_emulator):
    bucket = gcs_emulator.create_bucket("manifest-sweep")
    names = [
        "run/shards/images-00000-of-00001.tar",
        "run/shards/.tmp-0a1b-images-00000-of-00001.tar",
        "run/shards/images-00003-of-00004.tar",
        "run/shards/index/part-00000-of-00001.parquet",
        "run/manifest.json",
    ]
    for name in names:
        bucket.blob(name).upload_from_string(b"x")
    remove_strays(
        [f"gs://{bucket.name}/run/shards"],
        {f"gs://{bucket.name}/run/shards/images-00000-of-00001.tar"},
    )
    assert sorted(b.name for b in gcs_emulator.list_blobs(bucket.name)) == [
        "run/manifest.json",
        "run/shards/images-00000-of-00001.tar",
        "run/shards/index/part-00000-of-00001.parquet",
    ]


class _Run:
    """The outputs of a run about to write its manifest, on disk."""

    def __init__(self, tmp_path, plan) -> None:
        self.plan = plan
        self.root = str(tmp_path / "run")
        self.images_dir = f"{self.root}/tables/images"
        self.errors_dir = f"{self.root}/tables/errors"
        self.written = []
        for part, ids in (("part-00000", ["a", "b"]), ("part-00001", ["c"])):
            path = f"{self.images_dir}/{part}.parquet"
            table = pa.table({"ImageID": ids}, schema=IMAGES)
            size, md5 = write_parquet(path, table)
            self.written.append(WrittenFile("images", path, len(ids), size, md5))
        diff = f"{self.root}/tables/diff/part-00000.parquet"
        size, md5 = write_parquet(diff, pa.table({"ImageID": ["a", "b", "c"]}))
        self.written.append(WrittenFile("diff", diff, 3, size, md5))
        self.empty_errors = f"{self.errors_dir}/part-00000.parquet"
        self.empty_tables = {
            "errors": (self.empty_errors, ERRORS),
            "images": (f"{self.images_dir}/part-empty.parquet", IMAGES),
        }
        self.exchange = f"{self.root}/_exchange"
        write_piece(self.exchange, "images", 0, pa.table({"x": [1]}), name="blk")
        self.strays = [
            _touch(tmp_path / "run" / "tables" / "images" / "part-00009.parquet"),
            _touch(
                tmp_path / "run" / "tables" / "images" / ".tmp-1-part-00000.parquet"
            ),
            _touch(tmp_path / "run" / "tables" / "errors" / "part-00003.parquet"),
        ]
        self.info = {"command": "snapshot", "snapshot": {"id": "s1"}}

    @property
    def manifest_path(self) -> str:
        return f"{self.root}/{MANIFEST}"

    def run(self, pipeline, counts, tallies=None, ranges=None) -> None:
        with pipeline as p:
            inputs = {
                "written": p | "Written" >> beam.Create(self.written),
                "counts": p | "Counts" >> beam.Create(counts),
            }
            if tallies is not None:
                inputs["tallies"] = p | "Tallies" >> beam.Create(tallies)
            if ranges is not None:
                inputs["ranges"] = p | "Ranges" >> beam.Create(ranges)
            path = inputs | WriteManifest(
                self.plan,
                self.root,
                self.empty_tables,
                self.info,
                cleanup=[self.exchange],
                sweep=[self.images_dir, self.errors_dir],
            )
            assert_that(path, equal_to([self.manifest_path]))


def test_write_manifest_on_a_test_pipeline(pipeline, tmp_path, plan):
    run = _Run(tmp_path, plan)
    tallies = [
        Count("selected", "", 2),
        Count("selected", "", 1),
        Count("status", "ok", 2),
        Count("status", "gone", 1),
        Count("change", "added", 3),
        Count("action", "fetch", 3),
    ]
    run.run(pipeline, _counts(), tallies, _range_lines(plan))

    with open(run.manifest_path) as f:
        manifest = json.load(f)
    assert manifest["command"] == "snapshot" and manifest["snapshot"] == {"id": "s1"}
    assert manifest["counts"] == {"selected": 3, "status:gone": 1, "status:ok": 2}
    assert manifest["statuses"] == {"gone": 1, "ok": 2}
    assert manifest["changes"] == {"added": 3}
    assert manifest["actions"] == {"fetch": 3}
    assert manifest["rows"] == {"diff": 3, "errors": 0, "images": 3}
    assert [i["rows_read"] for i in manifest["inputs"]] == [3, LABEL_ROWS, 2]

    # The table that got no rows has an empty file with its schema, listed.
    errors = pq.read_table(run.empty_errors)
    assert errors.num_rows == 0 and errors.schema.equals(ERRORS)
    with open(run.empty_errors, "rb") as f:
        data = f.read()
    assert manifest["tables"]["errors"]["files"] == [
        {
            "path": "tables/errors/part-00000.parquet",
            "rows": 0,
            "bytes": len(data),
            "md5": hashlib.md5(data).hexdigest(),
        }
    ]
    assert not os.path.exists(run.empty_tables["images"][0])  # it had files
    images = [w for w in run.written if w.table == "images"]
    for w, entry in zip(images, manifest["tables"]["images"]["files"], strict=True):
        with open(w.path, "rb") as f:
            assert entry["md5"] == hashlib.md5(f.read()).hexdigest()
    assert pq.read_table(run.images_dir)["ImageID"].to_pylist() == ["a", "b", "c"]

    # Temporary and stray files are gone; only what the run wrote is left.
    assert not os.path.exists(run.exchange)
    assert not any(os.path.exists(p) for p in run.strays)
    assert sorted(os.listdir(run.images_dir)) == [
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    assert os.listdir(run.errors_dir) == ["part-00000.parquet"]
    assert [n for n in os.listdir(run.root) if n.startswith(".")] == []


def test_without_tallies_or_ranges(pipeline, tmp_path, plan):
    run = _Run(tmp_path, plan)
    run.run(pipeline, _counts())
    with open(run.manifest_path) as f:
        manifest = json.load(f)
    assert "counts" not in manifest and "changes" not in manifest
    assert manifest["inputs"][0]["md5"] is None
    assert manifest["rows"]["images"] == 3


@pytest.mark.parametrize(
    "change, tallies, message",
    [
        ({"labels_rows": -1}, None, "read 300 rows, kept 294, rejected 5"),
        ({"labels_lines": -1}, None, "300 lines but 300 rows read"),
        (
            {},
            [Count("selected", "", 4), Count("status", "ok", 3)],
            "selected 4 images, 3 statuses, 3 rows in the images table",
        ),
        (
            {},
            [
                Count("selected", "", 3),
                Count("status", "ok", 3),
                Count("change", "added", 2),
            ],
            "the diff has 2 of them",
        ),
    ],
)
def test_a_run_that_does_not_reconcile_fails_without_a_manifest(
    pipeline, tmp_path, plan, change, tallies, message
):
    run = _Run(tmp_path, plan)
    with pytest.raises(CountsDoNotReconcile, match=message):
        run.run(pipeline, _counts(**change), tallies)
    assert not os.path.exists(run.manifest_path)
    assert [n for n in os.listdir(run.root) if MANIFEST in n] == []
