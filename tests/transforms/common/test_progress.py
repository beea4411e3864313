"""The live progress line of a local run: counts of several worker processes
add up, stage by stage, with a bar and the time left where the total is
known."""

import io
import time

from oibeam.transforms.common.progress import (
    FETCH,
    JOIN,
    READ,
    ProgressCounter,
    ProgressPrinter,
    StageCounts,
    describe,
    publish_total,
    read_published,
)


def test_counts_published_by_several_workers_add_up(tmp_path):
    first, second = ProgressCounter(), ProgressCounter()
    for ok, size in ((True, 1_000_000), (False, 0), (True, 500_000)):
        first.add(FETCH, 1, ok, size)
    second.add(FETCH, 1, True, 250_000)
    second.add(READ, 4_000_000)
    first.publish(str(tmp_path))
    second.publish(str(tmp_path))
    publish_total(str(tmp_path), FETCH, 10)
    counts, totals = read_published(str(tmp_path))
    assert counts[FETCH] == StageCounts(done=4, ok=3, bytes=1_750_000)
    assert counts[READ] == StageCounts(done=4_000_000)
    assert counts[JOIN] == StageCounts()
    assert totals == {FETCH: 10}
    line = first.line()
    assert line.startswith("3 images fetched  ok 2, failed 1, 1.5 MB,")


def test_a_stage_with_a_total_has_a_bar_and_the_time_left():
    line = describe(JOIN, StageCounts(done=5), 20, seconds=10.0)
    assert line.startswith("[#####---------------]  25%  5/20 buckets joined")
    assert line.endswith("0:00:30 left")  # 15 more at 2 s each
    line = describe(READ, StageCounts(done=150_000_000), 600_000_000, 30.0)
    assert "150.0/600.0 MB of CSV read" in line and "0:01:30 left" in line
    done = describe(FETCH, StageCounts(done=8, ok=8, bytes=8_000_000), 8, 4.0)
    assert "100%" in done and "left" not in done
    unknown = describe(FETCH, StageCounts(done=3, ok=3), None, 1.0)
    assert "[" not in unknown and "left" not in unknown


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_printer_shows_the_latest_stage_on_one_rewritten_line(tmp_path):
    stream = _Tty()
    counter = ProgressCounter()
    totals = {READ: 1_000_000, JOIN: 4}
    with ProgressPrinter(str(tmp_path), totals, interval=0.05, stream=stream):
        counter.add(READ, 1_000_000, publish_to=str(tmp_path))
        time.sleep(0.2)
        counter.add(JOIN, 2)
        counter.publish(str(tmp_path))
        time.sleep(0.2)
        publish_total(str(tmp_path), FETCH, 2)
        counter.add(FETCH, 1, True, 100)
        counter.publish(str(tmp_path))
        time.sleep(0.2)
    text = stream.getvalue()
    assert text.count("\r") >= 3 and text.endswith("\n")
    assert "1.0/1.0 MB of CSV read" in text
    assert "2/4 buckets joined" in text
    last = text.rstrip("\n").rsplit("\r", 1)[1]
    assert last.startswith("[##########----------]  50%  1/2 images fetched")


def test_printer_logs_when_the_output_is_not_a_terminal(tmp_path, caplog):
    counter = ProgressCounter()
    counter.add(JOIN, 1, publish_to=str(tmp_path))
    with caplog.at_level("INFO"):
        with ProgressPrinter(
            str(tmp_path), {JOIN: 2}, interval=0.05, stream=io.StringIO()
        ):
            time.sleep(0.2)
    assert "1/2 buckets joined" in caplog.text


def test_two_runs_in_one_process_do_not_see_each_others_counts(tmp_path):
    counter = ProgressCounter()  # one per process, as PROGRESS is
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    counter.add(READ, 5_000_000, publish_to=first)
    counter.add(JOIN)
    counter.add(FETCH, 1, True, 300, publish_to=first, at_once=True)
    # The second run reads CSVs: no fetch, no join, and only its own bytes.
    counter.add(READ, 1_000_000, publish_to=second)
    counts, _ = read_published(second)
    assert counts == {
        READ: StageCounts(done=1_000_000),
        JOIN: StageCounts(),
        FETCH: StageCounts(),
    }
    assert read_published(first)[0][FETCH] == StageCounts(done=1, ok=1, bytes=300)
    assert counter.line().startswith("0 images fetched")


def test_counts_before_a_directory_is_named_belong_to_the_first_run(tmp_path):
    counter = ProgressCounter()
    counter.add(JOIN, 2)
    counter.publish(str(tmp_path))
    assert read_published(str(tmp_path))[0][JOIN] == StageCounts(done=2)


def test_publishing_is_throttled_unless_at_once(tmp_path):
    counter = ProgressCounter()
    for _ in range(3):
        counter.add(READ, 10, publish_to=str(tmp_path))
    assert read_published(str(tmp_path))[0][READ] == StageCounts(done=10)
    counter.add(READ, 10, publish_to=str(tmp_path), at_once=True)
    assert read_published(str(tmp_path))[0][READ] == StageCounts(done=40)


def test_a_fetch_first_seen_as_it_ended_shows_no_rate(tmp_path):
    # A run over before the printer's first look used to divide 5,000
    # images by the nanoseconds since it was seen: "5,000,000,000,000 images/s".
    counter = ProgressCounter()
    publish_total(str(tmp_path), FETCH, 5_000)
    counter.add(FETCH, 5_000, True, 2_300_000_000)
    counter.publish(str(tmp_path))
    stream = _Tty()
    with ProgressPrinter(str(tmp_path), interval=60, stream=stream):
        pass
    last = stream.getvalue().rstrip("\n").rsplit("\r", 1)[1]
    assert "5,000/5,000 images fetched" in last and "2,300.0 MB" in last
    assert "images/s" not in last and "MB/s" not in last
    # Measured over time, the rate is the images since the stage was seen.
    with_rate = describe(FETCH, StageCounts(5_000, 5_000, 2_300_000_000), 5_000, 2.0)
    assert "2,500 images/s, 1,150.0 MB/s" in with_rate
