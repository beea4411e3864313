"""`oibeam tables` end to end on real Open Images rows, checked against DuckDB."""

import csv
import gzip
import hashlib
import shutil

import duckdb
import pyarrow.parquet as pq
import pytest

from support.headers import LABELS_HEADER, V4_IMAGES_HEADER
from support.paths import V1_DICT, V3_CLASSES, V3_HUMAN, V3_IMAGES, V3_MACHINE
from support.runs import TablesRun, run_cli

HUMAN_SOURCES = "('human', 'verification', 'crowdsource-verification')"


@pytest.fixture(scope="module")
def v3_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("v3") / "out"
    code = run_cli(
        "tables",
        "--images",
        V3_IMAGES,
        "--labels",
        V3_HUMAN,
        V3_MACHINE,
        "--classes",
        V3_CLASSES,
        "--trainable-rule",
        "v2",
        "--min-train-images",
        "3",
        "--min-validation-images",
        "0",
        "--output",
        out,
    )
    return TablesRun(out, code)


@pytest.fixture(scope="module")
def db():
    con = duckdb.connect()
    con.execute(
        f"""
        create table images as select * from read_csv('{V3_IMAGES}', header=true,
            all_varchar=true, quote='"', escape='"');
        create table labels as select * from read_csv(['{V3_HUMAN}', '{V3_MACHINE}'],
            header=true, columns={{'ImageID': 'VARCHAR', 'Source': 'VARCHAR',
            'LabelName': 'VARCHAR', 'Confidence': 'DOUBLE'}});
        create table lj as
            select l.*, i.Subset from labels l join images i using (ImageID);
        """
    )
    return con


def test_run_succeeds_and_counts_reconcile(v3_run):
    assert v3_run.exit_code == 0
    manifest = v3_run.manifest
    for entry in manifest["inputs"]:
        assert entry["rows_read"] == entry["rows_kept"] + entry["rows_rejected"]
    by_path = {e["path"]: e for e in manifest["inputs"]}
    assert by_path[str(V3_IMAGES)]["rows_read"] == 1000
    assert by_path[str(V3_IMAGES)]["release"] == "v2/v3"
    assert by_path[str(V3_CLASSES)]["rows_read"] == 19995
    assert manifest["rows"]["images"] == v3_run.table("images").num_rows
    assert not (v3_run.root / "_exchange").exists()  # temporary files removed


def test_images_table_equals_the_csv(v3_run, db):
    ours = v3_run.table("images").sort_by("ImageID")
    theirs = db.execute(
        "select ImageID, Title, Author, cast(OriginalSize as bigint) as size, "
        "OriginalMD5, nullif(Thumbnail300KURL, '') as thumb "
        "from images order by ImageID"
    ).fetchall()
    assert ours.num_rows == len(theirs) == 1000
    got = list(
        zip(
            ours["ImageID"].to_pylist(),
            ours["Title"].to_pylist(),
            ours["Author"].to_pylist(),
            ours["OriginalSize"].to_pylist(),
            ours["OriginalMD5"].to_pylist(),
            ours["Thumbnail300KURL"].to_pylist(),
            strict=True,
        )
    )
    assert got == theirs
    assert any(
        "&#x27;" in (a or "") for a in ours["Author"].to_pylist()
    )  # kept as given


def test_nested_labels_match_the_label_files(v3_run, db):
    theirs = {
        image: sorted(labels)
        for image, labels in db.execute(
            "select ImageID, list((LabelName, Source, Confidence)) from labels "
            "group by ImageID"
        ).fetchall()
    }
    # DuckDB cannot sniff the file's mixed CRLF/LF endings; Python's csv module can.
    with open(V3_CLASSES, newline="", encoding="utf-8") as f:
        names = dict(row for row in csv.reader(f) if row)
    for row in v3_run.rows("images"):
        got = sorted((x["label"], x["source"], x["confidence"]) for x in row["labels"])
        assert got == theirs.get(row["ImageID"], [])
        for item in row["labels"]:
            assert item["display_name"] == names.get(item["label"])


def test_label_counts_match_duckdb(v3_run, db):
    theirs = db.execute(
        "select LabelName, Subset, Source, count(*), "
        "count(*) filter (where Confidence > 0), "
        "count(*) filter (where Confidence = 0) "
        "from lj group by all order by all"
    ).fetchall()
    ours = sorted(
        (
            r["label"],
            r["subset"],
            r["source"],
            r["rows"],
            r["positive_images"],
            r["negative_images"],
        )
        for r in v3_run.rows("label_counts")
    )
    assert ours == theirs


def test_label_stats_and_trainable_set_match_duckdb(v3_run, db):
    theirs = dict(
        (label, (positive, negative))
        for label, positive, negative in db.execute(
            f"""
            with verdict as (
              select LabelName, ImageID, max(Confidence) as best from lj
              where Source in {HUMAN_SOURCES} and Subset = 'train' group by all)
            select LabelName, count(*) filter (where best > 0),
                   count(*) filter (where best = 0) from verdict group by all
            """
        ).fetchall()
    )
    stats = {r["label"]: r for r in v3_run.rows("label_stats")}
    for label, (positive, negative) in theirs.items():
        assert stats[label]["train_human_positive_images"] == positive
        assert stats[label]["train_human_negative_images"] == negative
    trainable = {label for label, (positive, _) in theirs.items() if positive >= 3}
    assert trainable  # the rule above makes some labels trainable
    assert {label for label, r in stats.items() if r["trainable"]} == trainable
    csv_rows = (
        (v3_run.root / "tables" / "trainable_labels.csv").read_text().splitlines()
    )
    assert csv_rows[0] == "LabelName,DisplayName"
    assert {line.split(",")[0] for line in csv_rows[1:]} == trainable
    assert v3_run.manifest["rows"]["trainable_labels"] == len(trainable)


def _write_bad_release(root):
    images = V3_IMAGES.read_text().splitlines(keepends=True)
    header, rows = images[0], images[1:6]
    bad_images = [
        header,
        *rows,  # lines 2-6 good
        rows[1],  # line 7: duplicate ImageID of line 3
        rows[2].replace(",train,", ",training,"),  # 8: bad subset
        "0000zz,train,https://x/y.jpg,a,b,c,d,e,1,XKWUMkcNib71Ge6Yq1/0/g==,\n",  # 9
        rows[3].replace('",', '",,', 1),  # 10: a field too many
        '00000000000000ff,train,https://x/y.jpg,a,b,c,d,"multi\nline, title",12,'
        "XKWUMkcNib71Ge6Yq1/0/g==,\n",  # 11-12: good, a quoted newline
        "00000000000000fe,train,https://x/y.jpg,a,b,c,d,e,12,nothex,\n",  # 13: bad md5
    ]
    (root / "images.csv").write_text("".join(bad_images))
    ids = [r.split(",")[0] for r in rows]
    labels = [
        f"{LABELS_HEADER}\n",
        f"{ids[0]},machine,/m/01,0.9\n",  # 2
        f"{ids[0]},machine,/m/01,0.8\n",  # 3: duplicate of 2
        f"{ids[1]},human,/m/01,0.5\n",  # 4: human not 0/1
        "00000000deadbeef,machine,/m/01,0.5\n",  # 5: unknown image
        "\n",  # 6: empty line
        f"{ids[2]},verification,/m/02,1\n",  # 7
        f"{ids[3]},machine,/m/02\n",  # 8: too few fields
        "00000000000000ff,machine,/m/03,0.6\n",  # 9
    ]
    (root / "labels.csv").write_text("".join(labels))


def test_bad_rows_go_to_errors_with_file_line_and_reason(run_tables, tmp_path):
    _write_bad_release(tmp_path)
    run = run_tables(
        "--images",
        tmp_path / "images.csv",
        "--labels",
        tmp_path / "labels.csv",
        "--max-rejected",
        "1",  # most of this file is bad on purpose
    )
    assert run.exit_code == 0
    errors = {(e["file"].rsplit("/", 1)[1], e["line"]): e for e in run.rows("errors")}
    assert {k: e["code"] for k, e in errors.items()} == {
        ("images.csv", 7): "duplicate_image",
        ("images.csv", 8): "bad_subset",
        ("images.csv", 9): "bad_image_id",
        ("images.csv", 10): "wrong_field_count",
        ("images.csv", 13): "bad_md5",
        ("labels.csv", 3): "duplicate_label",
        ("labels.csv", 4): "bad_confidence",
        ("labels.csv", 5): "unknown_image",
        ("labels.csv", 6): "empty_line",
        ("labels.csv", 8): "wrong_field_count",
    }
    assert errors[("images.csv", 7)]["reason"].endswith(
        f"(kept {tmp_path}/images.csv:3)"
    )
    assert errors[("labels.csv", 5)]["raw"] == "00000000deadbeef,machine,/m/01,0.5"
    assert errors[("images.csv", 8)]["raw"].split(",")[1] == "training"
    assert (
        errors[("labels.csv", 4)]["reason"]
        == "a human Confidence must be 0 or 1: '0.5'"
    )
    images = {r["ImageID"]: r for r in run.rows("images")}
    assert len(images) == 6
    assert images["00000000000000ff"]["Title"] == "multi\nline, title"
    assert [x["label"] for x in images["00000000000000ff"]["labels"]] == ["/m/03"]
    manifest = run.manifest
    counts = {e["path"].rsplit("/", 1)[1]: e for e in manifest["inputs"]}
    assert counts["images.csv"]["rows_read"] == 11
    assert counts["images.csv"]["rows_kept"] == 6
    assert counts["labels.csv"]["rows_read"] == 8
    assert counts["labels.csv"]["rows_rejected"] == 5
    assert manifest["rejected_by_code"]["wrong_field_count"] == 2


def test_split_and_gzipped_inputs_give_the_same_tables(run_tables, tmp_path):
    # A labels file large enough to be read in several ranges.
    images = V3_IMAGES.read_text().splitlines(keepends=True)
    ids = [r.split(",")[0] for r in images[1:]]
    big = tmp_path / "labels.csv"
    with big.open("w") as f:
        f.write(f"{LABELS_HEADER}\n")
        for i, image in enumerate(ids):
            for j in range(12):
                f.write(f"{image},machine,/m/0{(i * 7 + j) % 500:03d},0.{5 + j % 5}\n")
    assert big.stat().st_size > 10 * 4096
    whole = run_tables("--images", V3_IMAGES, "--labels", big, "--classes", V1_DICT)
    split = run_tables(
        "--images",
        V3_IMAGES,
        "--labels",
        big,
        "--classes",
        V1_DICT,
        "--split-bytes",
        "4096",
        "--join-buckets",
        "3",
    )
    for name in ("images.csv", "labels.csv"):
        source = V3_IMAGES if name == "images.csv" else big
        with source.open("rb") as src, gzip.open(tmp_path / f"{name}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    zipped = run_tables(
        "--images",
        tmp_path / "images.csv.gz",
        "--labels",
        tmp_path / "labels.csv.gz",
        "--classes",
        V1_DICT,
    )
    assert whole.exit_code == split.exit_code == zipped.exit_code == 0
    assert len(split.manifest["tables"]["labels"]["files"]) == 3
    for table in ("images", "labels", "label_counts", "label_stats"):
        rows = [
            run.table(table).sort_by(_sort_keys(table)).to_pylist()
            for run in (whole, split, zipped)
        ]
        assert rows[0] == rows[1] == rows[2], table
    assert whole.table("labels").num_rows == 12_000

    # The manifest names every input with the MD5 of its bytes as stored.
    def inputs(run):
        return {e["path"].rsplit("/", 1)[1]: e for e in run.manifest["inputs"]}

    data = big.read_bytes()
    assert inputs(whole)["labels.csv"]["md5"] == hashlib.md5(data).hexdigest()
    ranges = inputs(split)["labels.csv"]["md5_ranges"]
    assert len(ranges) > 3 and ranges[-1]["end"] == len(data)
    for r in ranges:
        assert r["md5"] == hashlib.md5(data[r["start"] : r["end"]]).hexdigest()
    gz = (tmp_path / "labels.csv.gz").read_bytes()
    assert inputs(zipped)["labels.csv.gz"]["md5"] == hashlib.md5(gz).hexdigest()


def _sort_keys(table):
    return {
        "images": "ImageID",
        "labels": [("ImageID", "ascending"), ("LabelName", "ascending")],
        "label_counts": [
            ("label", "ascending"),
            ("subset", "ascending"),
            ("source", "ascending"),
        ],
        "label_stats": "label",
    }[table]


def test_same_inputs_give_identical_files(run_tables):
    args = (
        "--images",
        V3_IMAGES,
        "--labels",
        V3_HUMAN,
        V3_MACHINE,
        "--classes",
        V3_CLASSES,
    )
    first, second = run_tables(*args), run_tables(*args)

    def digests(run):
        return {
            (table, f["path"]): f["md5"]
            for table, entry in run.manifest["tables"].items()
            for f in entry["files"]
        }

    assert digests(first) == digests(second)
    assert (
        pq.read_metadata(
            first.root / "tables" / "labels" / "part-00000-of-00004.parquet"
        )
        .row_group(0)
        .column(0)
        .compression
        == "ZSTD"
    )


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: p.write_bytes(b""), "the file is empty"),
        (
            lambda p: p.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
            "not a CSV file",
        ),
        (
            lambda p: p.write_text("ImageID,Source,LabelName\n1,2,3\n"),
            "missing column(s) Confidence; it has ImageID, Source, LabelName",
        ),
    ],
)
def test_unusable_files_are_clear_errors(run_tables, tmp_path, capsys, write, message):
    bad = tmp_path / "bad-labels.csv"
    write(bad)
    run = run_tables("--images", V3_IMAGES, "--labels", bad)
    assert run.exit_code == 2
    err = capsys.readouterr().err
    assert str(bad) in err and message in err
    assert not (run.root / "manifest.json").exists()


def test_pattern_without_match_and_existing_output(run_tables, tmp_path, capsys):
    run = run_tables("--images", tmp_path / "nothing-*.csv", "--labels", V3_HUMAN)
    assert run.exit_code == 2
    assert "no file matches" in capsys.readouterr().err
    out = tmp_path / "out"
    assert (
        run_tables("--images", V3_IMAGES, "--labels", V3_HUMAN, output=out).exit_code
        == 0
    )
    again = run_tables("--images", V3_IMAGES, "--labels", V3_HUMAN, output=out)
    assert again.exit_code == 2
    assert "--overwrite" in capsys.readouterr().err
    replaced = run_tables(
        "--images", V3_IMAGES, "--labels", V3_MACHINE, "--overwrite", output=out
    )
    assert replaced.exit_code == 0
    assert {e["path"] for e in replaced.manifest["inputs"]} == {
        str(V3_IMAGES),
        str(V3_MACHINE),
    }


def test_every_release_column_set_end_to_end(run_tables, tmp_path):
    rows = V3_IMAGES.read_text().splitlines()[1:4]
    fields = [next(csv.reader([r])) for r in rows]
    ids = [f[0] for f in fields]
    early = tmp_path / "validation" / "images.csv"  # V1 early: Subset from the folder
    early.parent.mkdir()
    with early.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "ImageID",
                "OriginalURL",
                "OriginalLandingURL",
                "License",
                "AuthorProfileURL",
                "Author",
                "Title",
                "OriginalSize",
                "OriginalMD5",
            ]
        )
        w.writerow([fields[0][0], *fields[0][2:10]])
    v4 = tmp_path / "v4-images.csv"  # V4+: Rotation, plus a column we do not know
    with v4.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*V4_IMAGES_HEADER.split(","), "Camera"])
        w.writerow([*fields[1], "90.0", "Nikon"])
        w.writerow([*fields[2], "", ""])
    labels = tmp_path / "labels.csv"  # `Label`, and an extra column
    labels.write_text(
        "ImageID,Source,Label,Confidence,Note\n"
        f"{ids[0]},human,/m/01,1,checked\n"
        f"{ids[1]},machine,/m/02,0.5,\n"
    )
    run = run_tables("--images", early, v4, "--labels", labels)
    assert run.exit_code == 0
    releases = {e["path"]: e["release"] for e in run.manifest["inputs"]}
    assert releases[str(early)] == "v1-early" and releases[str(v4)] == "v4+"
    images = {r["ImageID"]: r for r in run.rows("images")}
    assert images[ids[0]]["Subset"] == "validation"
    assert images[ids[0]]["Rotation"] is None and images[ids[0]]["Camera"] is None
    assert images[ids[1]]["Rotation"] == 90 and images[ids[1]]["Camera"] == "Nikon"
    assert images[ids[2]]["Rotation"] is None
    assert run.table("images").schema.field("Rotation").type == "int16"
    labels_rows = {r["ImageID"]: r for r in run.rows("labels")}
    assert labels_rows[ids[0]]["LabelName"] == "/m/01"
    assert labels_rows[ids[0]]["Note"] == "checked"
    assert labels_rows[ids[0]]["Subset"] == "validation"


def test_files_with_only_a_header(run_tables, tmp_path):
    images = tmp_path / "images.csv"
    images.write_text(V3_IMAGES.read_text().splitlines(keepends=True)[0])
    labels = tmp_path / "labels.csv"
    labels.write_text("ImageID,Source,LabelName,Confidence\n")
    run = run_tables("--images", images, "--labels", labels)
    assert run.exit_code == 0
    assert run.manifest["rows"]["images"] == 0
    assert run.table("images").num_rows == 0  # an empty table with its schema
    assert "labels" in run.table("images").column_names
    assert run.table("label_stats").num_rows == 0


def test_review_cases_end_in_clear_rows_not_crashes(run_tables, tmp_path, capsys):
    ids = [r.split(",")[0] for r in V3_IMAGES.read_text().splitlines()[1:4]]
    # One labels file has an extra column, the other does not.
    (tmp_path / "a.csv").write_text(
        f"ImageID,Source,LabelName,Confidence,Note\n{ids[0]},machine,/m/01,0.5,x\n"
    )
    # A stray quote, a CR-only row break, an empty line and text after the end.
    (tmp_path / "b.csv").write_bytes(
        f"{LABELS_HEADER}\n".encode()
        + f'{ids[1]},"machine,/m/02,0.5\n'.encode()
        + f"{ids[1]},machine,/m/03,0.5\r{ids[2]},machine,/m/04,0.5\n".encode()
        + b"\n"
        + f"{ids[2]},machine,/m/05,0.5\n".encode()
        + b"trailing garbage"
    )
    run = run_tables(
        "--images",
        V3_IMAGES,
        "--labels",
        tmp_path / "a.csv",
        tmp_path / "b.csv",
        "--split-bytes",
        "4096",
        "--max-rejected",
        "1",  # most of these files are bad on purpose
    )
    assert run.exit_code == 0, capsys.readouterr().err
    errors = {
        (e["file"].rsplit("/", 1)[1], e["line"]): e["code"] for e in run.rows("errors")
    }
    assert errors == {
        ("b.csv", 2): "bad_source",
        ("b.csv", 3): "wrong_field_count",
        ("b.csv", 4): "empty_line",
        ("b.csv", 6): "wrong_field_count",
    }
    labels = {(r["ImageID"], r["LabelName"]): r for r in run.rows("labels")}
    assert labels[(ids[0], "/m/01")]["Note"] == "x"
    assert labels[(ids[2], "/m/05")]["Note"] is None
    for entry in run.manifest["inputs"]:
        assert entry["rows_read"] == entry["rows_kept"] + entry["rows_rejected"]


def test_output_that_is_a_file_is_refused(run_tables, tmp_path, capsys):
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    run = run_tables("--images", V3_IMAGES, "--labels", V3_HUMAN, output=target)
    assert run.exit_code == 2
    assert "is a file, not a directory" in capsys.readouterr().err
