"""Peak memory of one image check, measured in a fresh Python process.

Pillow allocates pixels in C, out of tracemalloc's sight, so the measure is
the process's peak resident set after the call minus its resident set before
(Linux: /proc/self/status, with the peak reset first through clear_refs). A
fresh process, so that nothing the test run decoded earlier hides a peak;
`ru_maxrss` will not do, as Linux carries the parent's peak over into the
child. Pillow's plugins are imported before the first reading.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from oibeam.transforms.fetch.image_check import Verdict

_PRELUDE = """
import dataclasses, hashlib, json, sys
from PIL import Image
from oibeam.transforms.fetch import image_check
Image.init()
args = json.loads(sys.argv[1])
data = open(args.pop("path"), "rb").read()
def status(field):  # bytes
    with open("/proc/self/status") as lines:
        line = next(line for line in lines if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024
def start():
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # the peak (VmHWM) starts again from now
    except OSError:  # not allowed here: count from the peak so far
        return status("VmHWM")
    return status("VmRSS")
def peak():
    return status("VmHWM")
"""

_CHECK = """
digest = hashlib.md5(data).digest()
md5 = image_check.md5_base64(digest) if args.pop("with_md5") else None
before = start()
verdict = image_check.check_image(
    data, digest, len(data) if md5 else None, md5, **args
)
result = {"verdict": dataclasses.asdict(verdict), "growth": peak() - before}
"""

_DECODE = """
import io
image = Image.open(io.BytesIO(data))
before = start()
estimate = image_check.plan_decode(image, data)
image.load()
result = {"estimate": estimate, "growth": peak() - before}
"""
_PRINT = "print(json.dumps(result))\n"


@dataclasses.dataclass(frozen=True)
class Checked:
    verdict: Verdict
    growth: int  # bytes the peak RSS grew by during check_image


def _run(code: str, **args) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PRELUDE + code + _PRINT, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
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
