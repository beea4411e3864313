"""Peak memory measured in a fresh Python process: of one image check here, of a
whole CLI run in support/bombs.py.

Pillow allocates pixels in C and a run's Arrow buffers live there too, out of
tracemalloc's sight, so the measure is the process's peak resident set (Linux:
VmHWM in /proc/self/status). A fresh process, so that nothing the test run did
earlier hides a peak: exec starts a new address space whose peak starts at
zero. `ru_maxrss` will not do, as Linux carries the parent's peak over into the
child. Within the process the peak can start again (clear_refs), so that one
step's growth is measured alone. Pillow's plugins are imported before the first
reading.

Arrow's allocator (mimalloc) hands freed pages back to the system only after a
delay, and a thread that goes idle never does: a run's peak then counts
100-150 MiB of freed pages, more or less from run to run. The fresh process
runs with that delay at 0, so that its peak is memory in use.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from oibeam.transforms.fetch.image_check import Verdict

# A fresh process imports `support` from here, as the tests do.
_TESTS = Path(__file__).resolve().parents[1]


def _status(field: str) -> int:
    """A field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as lines:
        line = next(line for line in lines if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def peak_rss() -> int:
    """This process's peak resident set in bytes: since it started, or since
    the last `restart_peak`."""
    return _status("VmHWM")


def restart_peak() -> int:
    """Starts the peak again from now; returns the resident set it starts from
    (the peak so far where the kernel does not allow a restart)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # VmHWM starts again from VmRSS
    except OSError:
        return peak_rss()
    return _status("VmRSS")


def run_fresh(code: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh Python process (`sys.argv[1:]` = `args`) that can
    import `support`; its output is captured as text."""
    path = [str(_TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(path),
            "MIMALLOC_PURGE_DELAY": "0",  # see the module docstring
        },
    )


_PRELUDE = """
import dataclasses, hashlib, json, sys
from PIL import Image
from oibeam.transforms.fetch import image_check
from support.peak_memory import peak_rss, restart_peak
Image.init()
args = json.loads(sys.argv[1])
data = open(args.pop("path"), "rb").read()
"""

_CHECK = """
digest = hashlib.md5(data).digest()
md5 = image_check.md5_base64(digest) if args.pop("with_md5") else None
before = restart_peak()
verdict = image_check.check_image(
    data, digest, len(data) if md5 else None, md5, **args
)
result = {"verdict": dataclasses.asdict(verdict), "growth": peak_rss() - before}
"""

_DECODE = """
import io
image = Image.open(io.BytesIO(data))
before = restart_peak()
estimate = image_check.plan_decode(image, data)
image.load()
result = {"estimate": estimate, "growth": peak_rss() - before}
"""
_PRINT = "print(json.dumps(result))\n"


@dataclasses.dataclass(frozen=True)
class Checked:
    verdict: Verdict
    growth: int  # bytes the peak RSS grew by during check_image


def _run(code: str, **args) -> dict:
    done = run_fresh(_PRELUDE + code + _PRINT, json.dumps(args), timeout=300)
    if done.returncode != 0:
        raise AssertionError(f"the measuring process failed:\n{done.stderr}")
    return json.loads(done.stdout)


def check_in_fresh_process(path: Path, *, with_md5: bool = True, **options) -> Checked:
    """check_image on the file's bytes (with its true size and MD5 unless
    `with_md5` is False), in a fresh process: the verdict and the peak growth."""
    result = _run(_CHECK, path=str(path), with_md5=with_md5, **options)
    return Checked(Verdict(**result["verdict"]), result["growth"])


def decode_in_fresh_process(path: Path) -> tuple[int, int]:
    """(plan_decode's estimate, the peak growth of planning and decoding)."""
    result = _run(_DECODE, path=str(path))
    return result["estimate"], result["growth"]
