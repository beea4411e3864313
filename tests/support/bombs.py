"""Hostile but valid inputs, generated: a gzip "bomb" of valid images rows (a
small file that inflates a hundredfold) and the peak memory of a CLI run,
measured in a fresh process (support/peak_memory.py)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

from support.headers import LABELS_HEADER, V1_IMAGES_HEADER
from support.peak_memory import run_fresh

_ROWS_PER_WRITE = 4096


def images_row(number: int, row_bytes: int) -> str:
    """A valid V1 images row of about `row_bytes` bytes (ImageID and OriginalMD5
    from `number`); every row alike but those, so it compresses a hundredfold.
    Distinct OriginalMD5s: one digest under every row would make the whole
    file one duplicate group, whose table grows with it by design."""
    head = (
        f"{number:016x},train,https://c1.staticflickr.com/5/4129/{number}_o.jpg,"
        f"https://www.flickr.com/photos/someone/{number},"
        "https://creativecommons.org/licenses/by/2.0/,"
        "https://www.flickr.com/people/someone/,Some One,"
    )
    md5 = base64.b64encode(number.to_bytes(16, "big")).decode()
    tail = f",914231,{md5}\n"
    title = "a long title " * max(1, (row_bytes - len(head) - len(tail)) // 13)
    return f"{head}{title}{tail}"


def write_images_bomb(path: Path, inflated_bytes: int, row_bytes: int = 2000) -> int:
    """Writes a gzip images CSV (header, then valid rows with distinct IDs) of
    at least `inflated_bytes` bytes once inflated; returns the rows written."""
    rows = 0
    written = 0
    with gzip.open(path, "wb", compresslevel=6) as out:
        out.write(f"{V1_IMAGES_HEADER}\n".encode())
        while written < inflated_bytes:
            block = "".join(
                images_row(rows + i + 1, row_bytes) for i in range(_ROWS_PER_WRITE)
            ).encode()
            out.write(block)
            written += len(block)
            rows += _ROWS_PER_WRITE
    return rows


def write_labels(path: Path, rows: int) -> None:
    """A small labels CSV whose rows name images 1..rows of `images_row`."""
    lines = [LABELS_HEADER] + [
        f"{n:016x},machine,/m/0{n % 7},0.{5 + n % 5}" for n in range(1, rows + 1)
    ]
    path.write_text("\n".join(lines) + "\n")


_MEASURE = """
import json, sys
from oibeam.pipelines.cli import main
from support.peak_memory import peak_rss
code = main(sys.argv[1:])
print(json.dumps({"exit_code": code, "peak_rss": peak_rss()}))
"""


def measured_cli(*args: str, timeout: float = 900) -> dict:
    """Runs `oibeam ARGS` in a fresh Python process; {"exit_code", "peak_rss"
    (bytes, that process's peak resident set since it started: workers in
    processes of their own are not counted), "stderr"}."""
    done = run_fresh(_MEASURE, *map(str, args), timeout=timeout)
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "{}"
    try:
        result = json.loads(last)
    except json.JSONDecodeError:
        result = {"exit_code": done.returncode, "peak_rss": None}
    result["stderr"] = done.stderr
    return result
