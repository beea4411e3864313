"""The live progress line of a local fetch."""

import io
import time

from oibeam.transforms.fetch.progress import (
    ProgressCounter,
    ProgressPrinter,
    read_published,
)


def test_tallies_published_by_several_workers_add_up(tmp_path):
    first, second = ProgressCounter(), ProgressCounter()
    for ok, size in ((True, 1_000_000), (False, 0), (True, 500_000)):
        first.add(ok, size)
    second.add(True, 250_000)
    first.publish(str(tmp_path))
    second.publish(str(tmp_path))
    total = read_published(str(tmp_path))
    assert (total.images, total.ok, total.bytes) == (4, 3, 1_750_000)
    line = first.line()
    assert line.startswith("fetched 3 images: ok 2, failed 1, 1.5 MB,")
    assert "images/s" in line and "MB/s" in line


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_printer_rewrites_one_line_on_a_terminal(tmp_path):
    stream = _Tty()
    tally = ProgressCounter()
    with ProgressPrinter(str(tmp_path), interval=0.05, stream=stream):
        tally.add(True, 100, publish_to=str(tmp_path))
        time.sleep(0.2)
    text = stream.getvalue()
    assert text.count("\r") >= 2 and text.endswith("\n")
    assert "fetched 1 images: ok 1, failed 0" in text
