"""Placeholder images told by their content, not only by their URL (no Beam).

A deleted Flickr photo may answer 200 with a "photo unavailable" image at its
own URL, or redirect to one whose URL says nothing: the bytes arrive, their
MD5 differs from OriginalMD5, and the image would be called `changed`. It is
`gone` when
- its MD5 is one the user listed (--placeholder-md5, e.g. from a report of an
  earlier run), or
- the same bytes came for at least REPEATS images of one shard whose
  OriginalMD5s they all fail: a replaced photo has bytes of its own, a
  placeholder is the same image for every photo it stands for. A shard holds
  its images in ImageID order whatever runs it, so the verdict does not depend
  on timing, and at Open Images scale a shard has hundreds of images.
"""

from __future__ import annotations

from collections import defaultdict

from oibeam.schemas import fetch as contract

REPEATS = 2


def known(md5: bytes | None, listed: tuple[str, ...]) -> bool:
    return md5 is not None and md5.hex() in listed


def mark_repeated(statuses: list[dict], received: dict[int, str]) -> int:
    """Turns `changed` statuses whose bytes (`received`: status index -> MD5
    hex of the bytes that came) came for REPEATS or more images into `gone`;
    returns how many it turned."""
    by_digest: dict[str, list[int]] = defaultdict(list)
    for index, digest in received.items():
        if statuses[index]["status"] == contract.CHANGED:
            by_digest[digest].append(index)
    turned = 0
    for digest, indexes in by_digest.items():
        if len(indexes) < REPEATS:
            continue
        for index in indexes:
            status = statuses[index]
            status["status"] = contract.GONE
            status["retryable"] = False
            status["error"] = (
                f"a placeholder: the same {status['bytes']:,} bytes (md5 {digest}) "
                f"came for {len(indexes)} images of this shard, matching none"
            )
            turned += 1
    return turned
