"""The live progress line of a local fetch."""

import io
import time

from transforms.progress import TALLY, FetchTally, ProgressPrinter


def test_tally_line():
    tally = FetchTally()
    for ok, size in ((True, 1_000_000), (False, 0), (True, 500_000)):
        tally.add(ok, size)
    line = tally.line(total=10)
    assert line.startswith("fetched 3/10 images: ok 2, failed 1, 1.5 MB,")
    assert "images/s" in line and "MB/s" in line


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_printer_rewrites_one_line_on_a_terminal():
    stream = _Tty()
    with ProgressPrinter(interval=0.05, stream=stream):
        TALLY.add(True, 100)
        time.sleep(0.2)
    text = stream.getvalue()
    assert text.count("\r") >= 2 and text.endswith("\n")
    assert "fetched 1 images: ok 1, failed 0" in text
