"""ReadOpenImagesCsv on a TestPipeline: main outputs, errors, line and row counts."""

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from oibeam.transforms.common.progress import READ, StageCounts, read_published
from oibeam.transforms.read.csv_inputs import plan_inputs
from oibeam.transforms.read.read_csv import ReadOpenImagesCsv

from support.headers import LABELS_HEADER, V1_IMAGES_HEADER
from support.runs import local_pipeline

IMAGES = (
    f"{V1_IMAGES_HEADER}\n"
    '000000000000000a,train,https://a/1.jpg,l,c,p,"Ann","two\nlines",10,'
    "XKWUMkcNib71Ge6Yq1/0/g==\n"
    "000000000000000b,train,https://a/2.jpg,l,c,p,Bo,t,x,XKWUMkcNib71Ge6Yq1/0/g==\n"
)
LABELS = (
    f"{LABELS_HEADER}\n"
    + "".join(f"{i:016x},machine,/m/0{i % 7},0.{5 + i % 5}\n" for i in range(1, 800))
    + "000000000000000q,machine,/m/01,0.5\n"
)


def test_read_composite_outputs(pipeline, tmp_path):
    (tmp_path / "images.csv").write_text(IMAGES)
    (tmp_path / "labels.csv").write_text(LABELS)
    plan = plan_inputs(
        [str(tmp_path / "images.csv")], [str(tmp_path / "labels.csv")], split_bytes=4096
    )
    labels_ranges = [r for r in plan.ranges if r.file_id == 1]
    assert len(labels_ranges) > 5  # the labels file is read in several ranges
    with pipeline as p:
        out = p | ReadOpenImagesCsv(plan)
        image_rows = out["images"] | "ImageRows" >> beam.FlatMap(
            lambda t: list(
                zip(t["key"].to_pylist(), t["_line"].to_pylist(), strict=True)
            )
        )
        label_count = (
            out["labels"]
            | "LabelRows" >> beam.Map(lambda t: t.num_rows)
            | "SumLabels" >> beam.CombineGlobally(sum)
        )
        errors = out["errors"] | "ErrorRows" >> beam.FlatMap(
            lambda t: list(
                zip(
                    t["_src"].to_pylist(),
                    t["_line"].to_pylist(),
                    t["code"].to_pylist(),
                    strict=True,
                )
            )
        )
        total_lines = (
            out["lines"]
            | "LinesOfLabels"
            >> beam.Filter(
                lambda r, ids: r.range_id in ids,
                ids={r.range_id for r in labels_ranges},
            )
            | "Lines" >> beam.Map(lambda r: r.lines)
            | "SumLines" >> beam.CombineGlobally(sum)
        )
        read = (
            out["counts"]
            | "ReadOnly" >> beam.Filter(lambda c: c.counter == "read")
            | "Read" >> beam.Map(lambda c: ((c.file_id, c.counter), c.n))
            | "SumRead" >> beam.CombinePerKey(sum)
        )
        assert_that(image_rows, equal_to([(10, 2)]), label="images")
        assert_that(label_count, equal_to([799]), label="labels")
        last_range = labels_ranges[-1].range_id
        # Lines are relative to the range; ResolveErrorLines makes them global.
        assert_that(
            errors | "Bad" >> beam.Map(lambda e: (e[0], e[2])),
            equal_to([(0, "bad_size"), (last_range, "bad_image_id")]),
            label="errors",
        )
        assert_that(total_lines, equal_to([LABELS.count("\n")]), label="lines")
        assert_that(
            read, equal_to([((0, "read"), 2), ((1, "read"), 800)]), label="counts"
        )


def test_each_run_publishes_exactly_the_bytes_it_read(tmp_path):
    """Two runs in this process (in-process runner, one progress counter): each
    progress directory holds the bytes of its own run, whole, not the sum."""
    (tmp_path / "images.csv").write_text(IMAGES)
    (tmp_path / "labels.csv").write_text(LABELS)
    plan = plan_inputs(
        [str(tmp_path / "images.csv")], [str(tmp_path / "labels.csv")], split_bytes=4096
    )
    size = len(IMAGES.encode()) + len(LABELS.encode())
    for run in ("first", "second"):
        progress = str(tmp_path / run)
        with local_pipeline() as p:
            _ = p | ReadOpenImagesCsv(plan, progress_dir=progress)
        assert read_published(progress)[0][READ] == StageCounts(done=size)
