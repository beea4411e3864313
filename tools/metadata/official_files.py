"""The official metadata files of each Open Images release (data, with sources).

V1-V3 are taken from the READMEs of github.com/openimages/dataset (README.md at
the V1, V2 and V3 releases): one tarball per kind, its CSVs one folder per
split, and dict.csv / class-descriptions.csv. No size or MD5 is published for
these files (only the images' OriginalMD5), so a download is checked by its
Content-Length and by reading the archive whole.

V4-V7 are not listed yet: their download pages (storage.googleapis.com/
openimages/web/download_v4..v7.html) could not be read here with their links,
and the file lists other tools carry differ between them.
"""

from __future__ import annotations

from dataclasses import dataclass

# What a file is to `oibeam tables` / `snapshot` (the flag it is given to).
IMAGES, LABELS, CLASSES, BOXES = "images", "labels", "classes", "boxes"
KINDS = (IMAGES, LABELS, CLASSES, BOXES)
SPLITS = ("train", "validation", "test")
_GCS = "https://storage.googleapis.com/openimages"
_REPO = "https://github.com/openimages/dataset/blob/master/README.md"


@dataclass(frozen=True)
class OfficialFile:
    """One file to download: a CSV, or a .tar.gz of CSVs in split folders."""

    kind: str
    url: str
    source: str
    archive: bool = False
    size: int | None = None  # bytes, where published
    md5: str | None = None  # hex, where published


def _v1() -> tuple[OfficialFile, ...]:
    source = f"{_REPO} (V1, 2016_08)"
    return (
        OfficialFile(IMAGES, f"{_GCS}/2016_08/images_2016_08_v5.tar.gz", source, True),
        OfficialFile(
            LABELS, f"{_GCS}/2016_08/machine_ann_2016_08_v3.tar.gz", source, True
        ),
        OfficialFile(
            LABELS, f"{_GCS}/2016_08/human_ann_2016_08_v3.tar.gz", source, True
        ),
        OfficialFile(
            CLASSES,
            "https://raw.githubusercontent.com/openimages/dataset/master/dict.csv",
            source,
        ),
    )


def _v2_v3(folder: str, release: str) -> tuple[OfficialFile, ...]:
    source = f"{_REPO} ({release}, {folder})"
    base = f"{_GCS}/{folder}"
    return (
        OfficialFile(IMAGES, f"{base}/images_{folder}.tar.gz", source, True),
        OfficialFile(LABELS, f"{base}/annotations_human_{folder}.tar.gz", source, True),
        OfficialFile(
            LABELS, f"{base}/annotations_machine_{folder}.tar.gz", source, True
        ),
        OfficialFile(
            BOXES, f"{base}/annotations_human_bbox_{folder}.tar.gz", source, True
        ),
        OfficialFile(CLASSES, f"{base}/class-descriptions.csv", source),
    )


RELEASES: dict[str, tuple[OfficialFile, ...]] = {
    "v1": _v1(),
    "v2": _v2_v3("2017_07", "V2"),
    "v3": _v2_v3("2017_11", "V3"),
}
NOT_LISTED = ("v4", "v5", "v6", "v7")
