"""The official metadata files of each Open Images release (data, with sources).

Which fact comes from where:

- V1-V3: the READMEs of github.com/openimages/dataset (README.md at the V1, V2
  and V3 releases): one tarball per kind, its CSVs one folder per split, and
  dict.csv / class-descriptions.csv.
- V4-V7: plain CSVs (no tarballs), one per kind and split, several reused from
  an earlier release's folder (2018_04/, v5/, v6/). Their download pages
  (storage.googleapis.com/openimages/web/download_v4..v7.html) could not be
  read here with their links, so each URL below was taken from code and docs
  that name it and is kept only when at least two sources write it;
  `OfficialFile.source` names them. Best first: Google's TFDS builder and its
  registered checksums (V4), FiftyOne (Voxel51, the partner tool the download
  pages name), third-party notes that quote download_v7.html word for word,
  third-party scripts that follow a download page's rows, HTTP HEAD checks,
  and others' loaders. "ref N" names a third-party file by the id under which
  the issue-18 research found it (its repository was not known): a trace of
  the finding, not an address. Where a source names a URL but not the
  release it belongs to, "for this release: ..." says how that was decided.
  The weakest entries: V4's machine labels (TFDS's builder and checksums,
  one project), V5's train images (one loader writes the v5/ URL, one script
  reads a file of that name from an OpenImagesV5/ folder), and V5's train
  boxes and hierarchy (the 2018_04 files: no v5/ copy is written anywhere).
- The column sets (all accepted by schemas/releases.py): V4+ image metadata
  is V2/V3's plus Rotation (in *-with-rotation.csv), labels are
  ImageID,Source,LabelName,Confidence in separate human and machine files,
  boxes have 13 columns (V6's train boxes 21: XClick* points, read past);
  class descriptions have no header up to V5 and LabelName,DisplayName from
  V6 (the class reader takes both). The hierarchy is the 600 box classes'
  bbox_labels_600_hierarchy.json, given to --hierarchy.

Not fetched: the *-human-imagelabels-boxable.csv and class-descriptions-
boxable.csv subsets (their rows repeat the full files': given too they would be
duplicates), classes-trainable.txt (no flag reads it: --trainable-rule decides),
V5+ segmentation, relationship and V7 point files (no reader for them), and
2018_04/image_ids_and_rotation.csv (every split's images, with or without
labels, in one 3.3 GB file: no split choice; the train images fetched are the
ones with image-level labels, as V4's and V6's download pages link them).

No size or MD5 is published for any of these files (only the images'
OriginalMD5): TFDS's registered sizes are not Open Images', so a download is
checked by its Content-Length (and, for V1-V3, by reading the archive whole).
"""

from __future__ import annotations

from dataclasses import dataclass

# What a file is to `oibeam tables` / `snapshot` (the flag it is given to).
IMAGES, LABELS, CLASSES, BOXES = "images", "labels", "classes", "boxes"
HIERARCHY = "hierarchy"
KINDS = (IMAGES, LABELS, CLASSES, BOXES, HIERARCHY)
SPLITS = ("train", "validation", "test")
_GCS = "https://storage.googleapis.com/openimages"
_REPO = "https://github.com/openimages/dataset/blob/master/README.md"

# Sources of V4-V7 (see the module docstring).
_TFDS = "tensorflow/datasets object_detection/open_images.py _URLS @0f37b56 (Google)"
_TFDS_SUMS = "tensorflow/datasets url_checksums/open_images_v4.txt @333639b (Google)"
_FIFTYONE = (
    "voxel51/fiftyone fiftyone/utils/openimages.py _ANNOTATION_DOWNLOAD_URLS "
    "@0494cac (partner named on the download pages)"
)
_DATUMARO = (
    "Datumaro docs, Open Images format, V6 file list: https://openvinotoolkit."
    "github.io/datumaro/latest/_sources/docs/data-formats/formats/open_images.md.txt"
)
_WAKE_VISION = (
    "harvard-edge/Wake_Vision partial_open_images_v7 builder @17b4309 and "
    "checksums.tsv @f60b0b3"
)
_V7_PAGE = (
    "download_v7.html 'Annotations and metadata' table, quoted word for word "
    "by third-party notes (refs 68346912378, 71035637750)"
)
_V4_SCRIPT = "third-party script following the V4 download page (ref 12168915771)"
_V4_SCRIPTS = "third-party scripts (refs 37014324874, 22378434280)"
_V6_SCRIPT = "third-party script following the V6 download page (ref 47326513750)"
_NEURAL_MAGIC = "Neural Magic's Open Images loader 'targeted at v5' (ref 38906276352)"
_V5_SCRIPTS = "third-party V5 scripts (refs 5973875215, 53304599668)"
_V5_FOLDER = (
    "a third-party script reading it from an OpenImagesV5/ folder (ref 33269818016)"
)
_VIPY = "vipy's open_images_v7 loader (ref 3735294913)"
_HEAD = "third-party HTTP HEAD checks: 200 (ref 58138852822)"
_V7_LABEL_USERS = "third-party V7 scripts (refs 52037926330, 70145647550, 61679420784)"
_V7_IMAGE_USERS = "third-party V7 scripts (refs 6196721811, 68314548467)"


@dataclass(frozen=True)
class OfficialFile:
    """One file to download: a CSV (the split it holds, None: all), a JSON
    hierarchy, or a .tar.gz of CSVs in split folders."""

    kind: str
    url: str
    source: str
    archive: bool = False
    size: int | None = None  # bytes, where published
    md5: str | None = None  # hex, where published
    split: str | None = None


def _sources(*names: str) -> str:
    return "; ".join(names)


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


def _csv(kind: str, path: str, split: str | None, *sources: str) -> OfficialFile:
    return OfficialFile(kind, f"{_GCS}/{path}", _sources(*sources), split=split)


def _validation_test_images(*sources: str) -> tuple[OfficialFile, ...]:
    """The 2018_04 validation and test image metadata every V4+ release links."""
    return tuple(
        _csv(IMAGES, f"2018_04/{s}/{s}-images-with-rotation.csv", s, *sources)
        for s in ("validation", "test")
    )


_HIERARCHY_2018_04 = "2018_04/bbox_labels_600_hierarchy.json"
_V5_BOXES = ("v5/validation-annotations-bbox.csv", "v5/test-annotations-bbox.csv")


def _v4() -> tuple[OfficialFile, ...]:
    files = [
        _csv(
            IMAGES,
            "2018_04/train/train-images-with-labels-with-rotation.csv",
            "train",
            _V4_SCRIPT,
            _V4_SCRIPTS,
        ),
        *_validation_test_images(_V4_SCRIPT, _FIFTYONE, _HEAD),
    ]
    for s in SPLITS:
        files += [
            _csv(
                LABELS,
                f"2018_04/{s}/{s}-annotations-human-imagelabels.csv",
                s,
                _TFDS,
                _TFDS_SUMS,
                _V4_SCRIPT,
            ),
            _csv(
                LABELS,
                f"2018_04/{s}/{s}-annotations-machine-imagelabels.csv",
                s,
                _TFDS,
                _TFDS_SUMS,
            ),
            _csv(
                BOXES,
                f"2018_04/{s}/{s}-annotations-bbox.csv",
                s,
                _TFDS,
                _TFDS_SUMS,
                _V4_SCRIPT,
            ),
        ]
    files += [
        _csv(CLASSES, "2018_04/class-descriptions.csv", None, _TFDS_SUMS, _V4_SCRIPT),
        _csv(HIERARCHY, _HIERARCHY_2018_04, None, _FIFTYONE, _DATUMARO),
    ]
    return tuple(files)


def _v5() -> tuple[OfficialFile, ...]:
    files = [
        _csv(
            IMAGES,
            "v5/train-images-with-labels-with-rotation.csv",
            "train",
            _NEURAL_MAGIC,
            _V5_FOLDER,
        ),
        *_validation_test_images(_NEURAL_MAGIC, _FIFTYONE, _HEAD),
    ]
    for s in SPLITS:
        files += [
            _csv(
                LABELS,
                f"v5/{s}-annotations-human-imagelabels.csv",
                s,
                _NEURAL_MAGIC,
                _V5_SCRIPTS,
            ),
            _csv(
                LABELS,
                f"v5/{s}-annotations-machine-imagelabels.csv",
                s,
                _NEURAL_MAGIC,
                _V6_SCRIPT,
                _HEAD,
            ),
        ]
    files += [
        _csv(
            BOXES,
            "2018_04/train/train-annotations-bbox.csv",
            "train",
            _TFDS,
            _TFDS_SUMS,
            "for this release: inferred (no v5/ train box file is written by "
            "any source; V6 was the first to replace the train boxes)",
        ),
        *(
            _csv(BOXES, path, s, _FIFTYONE, _WAKE_VISION, _V7_PAGE)
            for path, s in zip(_V5_BOXES, ("validation", "test"), strict=True)
        ),
        _csv(CLASSES, "v5/class-descriptions.csv", None, _NEURAL_MAGIC, _V5_SCRIPTS),
        _csv(
            HIERARCHY,
            _HIERARCHY_2018_04,
            None,
            _FIFTYONE,
            _DATUMARO,
            "for this release: inferred (no v5/ hierarchy is written by any source)",
        ),
    ]
    return tuple(files)


def _v6_v7_boxes(*sources: str) -> tuple[OfficialFile, ...]:
    return (
        _csv(BOXES, "v6/oidv6-train-annotations-bbox.csv", "train", *sources),
        *(
            _csv(BOXES, path, s, *sources)
            for path, s in zip(_V5_BOXES, ("validation", "test"), strict=True)
        ),
    )


_V6_TRAIN_IMAGES = "v6/oidv6-train-images-with-labels-with-rotation.csv"


def _v6() -> tuple[OfficialFile, ...]:
    page = (_V6_SCRIPT, _DATUMARO)
    machine = (
        _V6_SCRIPT,
        _NEURAL_MAGIC,
        "for this release: v6/oidv6-train-annotations-machine-imagelabels.csv "
        "answers 403 (ref 58138852822)",
    )
    return (
        _csv(IMAGES, _V6_TRAIN_IMAGES, "train", *page),
        *_validation_test_images(_V6_SCRIPT, _FIFTYONE, _DATUMARO),
        _csv(
            LABELS, "v6/oidv6-train-annotations-human-imagelabels.csv", "train", *page
        ),
        _csv(
            LABELS,
            "v5/validation-annotations-human-imagelabels.csv",
            "validation",
            *page,
        ),
        _csv(LABELS, "v5/test-annotations-human-imagelabels.csv", "test", *page),
        *(
            _csv(LABELS, f"v5/{s}-annotations-machine-imagelabels.csv", s, *machine)
            for s in SPLITS
        ),
        *_v6_v7_boxes(_FIFTYONE, _DATUMARO, _WAKE_VISION),
        _csv(CLASSES, "v6/oidv6-class-descriptions.csv", None, *page),
        _csv(HIERARCHY, _HIERARCHY_2018_04, None, _FIFTYONE, _DATUMARO),
    )


def _v7() -> tuple[OfficialFile, ...]:
    labels = []
    # V7's label files name the validation split "val".
    for s, prefix in zip(SPLITS, ("train", "val", "test"), strict=True):
        for who in ("human", "machine"):
            labels.append(
                _csv(
                    LABELS,
                    f"v7/oidv7-{prefix}-annotations-{who}-imagelabels.csv",
                    s,
                    _WAKE_VISION,
                    _V7_LABEL_USERS,
                )
            )
    return (
        _csv(
            IMAGES,
            _V6_TRAIN_IMAGES,
            "train",
            "third-party notes on download_v7.html: linked in its image-labels "
            "row (ref 68346912378)",
            _VIPY,
            _V7_IMAGE_USERS,
        ),
        *_validation_test_images(_V7_PAGE, _FIFTYONE),
        *labels,
        *_v6_v7_boxes(_V7_PAGE, _FIFTYONE, _WAKE_VISION),
        _csv(CLASSES, "v7/oidv7-class-descriptions.csv", None, _VIPY, _FIFTYONE, _HEAD),
        _csv(
            HIERARCHY,
            _HIERARCHY_2018_04,
            None,
            _FIFTYONE,
            _DATUMARO,
            "for this release: FiftyOne's V7 dataset reads it; no v7/ hierarchy "
            "is written by any source",
        ),
    )


RELEASES: dict[str, tuple[OfficialFile, ...]] = {
    "v1": _v1(),
    "v2": _v2_v3("2017_07", "V2"),
    "v3": _v2_v3("2017_11", "V3"),
    "v4": _v4(),
    "v5": _v5(),
    "v6": _v6(),
    "v7": _v7(),
}
