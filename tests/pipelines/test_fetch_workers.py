"""Big local fetches run on worker processes: the size estimate and the choice."""

import gzip

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import DirectOptions

from oibeam.pipelines.beam_options import (
    PROCESSES_FROM_IMAGES,
    for_fetching,
    pipeline_options,
)
from oibeam.transforms.read.csv_inputs import plan_inputs
from oibeam.transforms.read.read_images_tables import count_rows
from oibeam.transforms.select.selection import Selection

from support.headers import V1_IMAGES_HEADER

HEADER = V1_IMAGES_HEADER + "\n"


def _images_csv(rows: int, start: int = 0) -> str:
    # Titles of varying length, as real ones are.
    return HEADER + "".join(
        f"{i:016x},train,https://h/{i}.jpg,https://h/p/{i},cc,https://h/u,a,"
        f"{'t' * (i % 40)},{1000 + i},XKWUMkcNib71Ge6Yq1/0/g==\n"
        for i in range(start, start + rows)
    )


def test_image_rows_are_counted_in_small_files_and_estimated_in_big_ones(tmp_path):
    (tmp_path / "small.csv").write_text(_images_csv(300))
    (tmp_path / "big.csv").write_text(_images_csv(60_000, start=300))
    small = plan_inputs([str(tmp_path / "small.csv")], [])
    assert small.image_rows == 300
    both = plan_inputs([str(tmp_path / "small.csv"), str(tmp_path / "big.csv")], [])
    assert (tmp_path / "big.csv").stat().st_size > 2 * (1 << 20)  # beyond the head
    assert abs(both.image_rows - 60_300) < 0.03 * 60_300


def test_compressed_files_are_estimated_by_their_text(tmp_path):
    path = tmp_path / "images.csv.gz"
    text = _images_csv(40_000).encode()
    path.write_bytes(gzip.compress(text))
    # More text than the plan's first MiB, fewer bytes stored than it.
    assert len(text) > 4 * (1 << 20) and path.stat().st_size < 1 << 20
    rows = plan_inputs([str(path)], []).image_rows
    assert abs(rows - 40_000) < 0.03 * 40_000


def test_count_rows_reads_parquet_footers(tmp_path):
    for part, n in enumerate((5, 7)):
        pq.write_table(
            pa.table({"ImageID": [f"{i:016x}" for i in range(n)]}),
            tmp_path / f"part-{part}.parquet",
        )
    assert count_rows([str(p) for p in sorted(tmp_path.glob("*.parquet"))]) == 12


@pytest.mark.parametrize(
    ("selection", "images", "expected"),
    [
        (Selection(), 1000, 1000),
        (Selection(limit=10), 1000, 10),
        (Selection(sample=0.25), 1000, 250),
        (Selection(sample=0.5, limit=100), 1000, 100),
        (Selection(labels=("/m/a", "/m/b"), max_per_label=30), 1000, 60),
        (Selection(max_per_label=30), 1000, 1000),  # no labels named: no bound
    ],
)
def test_at_most(selection, images, expected):
    assert selection.at_most(images) == expected


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (Selection(), 1000),
        (Selection(sample=0.5), 500),
        (Selection(labels=("/m/a",), max_per_label=30), 30),
        (Selection(labels=("/m/a",)), None),  # how many carry /m/a: unknown
        (Selection(trainable_only=True, max_per_label=25), None),  # the demo's
        (Selection(trainable_only=True, limit=100), 100),
    ],
)
def test_expected_size_before_the_selection_runs(selection, expected):
    assert selection.expected(1000) == expected


def _mode(args, images):
    options = for_fetching(pipeline_options(args), args, images)
    return options.view_as(DirectOptions).direct_running_mode


def test_processes_only_for_big_local_fetches_with_several_workers():
    two = ["--direct_num_workers=2"]
    assert _mode(two, PROCESSES_FROM_IMAGES) == "multi_processing"
    assert _mode(two, PROCESSES_FROM_IMAGES - 1) == "in_memory"
    assert _mode(["--direct_num_workers=1"], 10**7) == "in_memory"
    # the user's choice stands, either way
    chosen = [*two, "--direct_running_mode=in_memory"]
    assert _mode(chosen, 10**7) == "in_memory"
    chosen = [*two, "--direct_running_mode", "multi_threading"]
    assert _mode(chosen, 10**7) == "multi_threading"
    # a selection whose size is unknown until it runs stays in threads
    assert _mode(two, None) == "in_memory"


def test_other_runners_are_left_alone():
    args = ["--runner=DataflowRunner", "--project=p", "--region=r"]
    options = pipeline_options(args)
    assert for_fetching(options, args, 10**7) is options
