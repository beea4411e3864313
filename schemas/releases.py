"""The CSV column sets of every Open Images release we accept, recognised by header.

Images files:
  v1-early  ImageID,OriginalURL,...,OriginalMD5 (no Subset: it comes from the path)
  v1        ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,
            Author,Title,OriginalSize,OriginalMD5
  v2/v3     v1 + Thumbnail300KURL
  v4+       v2/v3 + Rotation
Labels files: ImageID,Source,LabelName,Confidence (some files say Label).
Columns beyond these are kept, as strings, under their own names.
Box files (V2+): see schemas/boxes.py.
"""

from __future__ import annotations

from typing import NamedTuple

IMAGE_ID = "ImageID"

IMAGE_REQUIRED: tuple[str, ...] = (
    "ImageID",
    "OriginalURL",
    "OriginalLandingURL",
    "License",
    "AuthorProfileURL",
    "Author",
    "Title",
    "OriginalSize",
    "OriginalMD5",
)
IMAGE_OPTIONAL: tuple[str, ...] = ("Subset", "Thumbnail300KURL", "Rotation")
# Output order of the known image columns.
IMAGE_COLUMNS: tuple[str, ...] = (
    "ImageID",
    "Subset",
    "OriginalURL",
    "OriginalLandingURL",
    "License",
    "AuthorProfileURL",
    "Author",
    "Title",
    "OriginalSize",
    "OriginalMD5",
    "Thumbnail300KURL",
    "Rotation",
)

LABEL_COLUMNS: tuple[str, ...] = ("ImageID", "Source", "LabelName", "Confidence")
COLUMN_ALIASES: dict[str, str] = {"Label": "LabelName"}

SUBSETS: tuple[str, ...] = ("train", "validation", "test")

MACHINE_SOURCES: frozenset[str] = frozenset({"machine"})
HUMAN_SOURCES: frozenset[str] = frozenset(
    {"human", "verification", "crowdsource-verification"}
)
KNOWN_SOURCES: tuple[str, ...] = tuple(sorted(MACHINE_SOURCES | HUMAN_SOURCES))
LABEL_NAME_PATTERN = r"^/[a-z]+/[0-9A-Za-z_]+$"  # a mid: /m/0abc, /g/11xyz
# Names oibeam adds to its tables: an input column may not use them.
_INTERNAL = ("key", "_src", "_line", "_ref_src", "_ref_line")
RESERVED_IMAGE_COLUMNS: frozenset[str] = frozenset(
    _INTERNAL
    + ("labels",)
    + ("status", "error", "retryable", "http_status", "attempts", "elapsed_ms")
    + ("bytes", "url", "md5_ok", "checked", "format", "mode", "width", "height")
    + ("exif_orientation", "display_width", "display_height", "shard")
    + ("md5", "phash")
    + ("boxes", "upright_width", "upright_height")
)
RESERVED_LABEL_COLUMNS: frozenset[str] = frozenset(
    _INTERNAL + ("DisplayName", "Subset", "InferredFrom")
)
# Source kinds used by statistics and trainable rules; "any" is either kind.
SOURCE_KINDS: tuple[str, ...] = ("machine", "human", "any")


class CsvLayout(NamedTuple):
    """How one input file's header maps onto our columns."""

    kind: str  # "images" | "labels"
    release: str  # "v1-early" | "v1" | "v2/v3" | "v4+" | "labels"
    columns: tuple[str, ...]  # the file's columns, aliases resolved, in file order
    extras: tuple[str, ...]  # columns we do not know, kept as strings


class HeaderError(ValueError):
    """A file whose header cannot be read as the expected kind of CSV."""


def normalise_header(names: list[str]) -> tuple[str, ...]:
    """Strips spaces and a BOM, resolves aliases (Label -> LabelName)."""
    out = []
    for name in names:
        name = name.strip().lstrip("\ufeff").strip()
        out.append(COLUMN_ALIASES.get(name, name))
    return tuple(out)


_FLAGS = {
    "images": "--images",
    "labels": "--labels",
    "boxes": "--boxes",
    "classes": "--classes",
}


def looks_like(columns: tuple[str, ...]) -> str | None:
    """The kind of Open Images CSV a header is, by its columns: a box file has
    box coordinates, an images file URLs and MD5s, a labels file the four
    label columns only; None when it is none of them."""
    from oibeam.schemas.boxes import BOX_COORDINATES

    have = set(columns)
    if set(BOX_COORDINATES) <= have:
        return "boxes"
    if {"ImageID", "OriginalURL", "OriginalMD5"} <= have:
        return "images"
    if set(LABEL_COLUMNS) <= have:
        return "labels"
    return None


def wrong_kind(path: str, columns: tuple[str, ...], expected: str) -> str:
    """What to say of a header that is not of the `expected` kind (images,
    labels, boxes or classes) but of another Open Images kind: the flag it
    goes with; "" otherwise."""
    kind = looks_like(columns)
    if kind is not None and kind != expected:
        return (
            f"{path}: given as {_FLAGS[expected]}, but it looks like an Open "
            f"Images {kind} file (it has {', '.join(columns)}): give it as "
            f"{_FLAGS[kind]}"
        )
    return ""


def images_layout(path: str, names: list[str]) -> CsvLayout:
    """The layout of an images file, or HeaderError naming what is missing."""
    columns = normalise_header(names)
    _check_unique(path, columns)
    missing = [c for c in IMAGE_REQUIRED if c not in columns]
    if missing:
        raise HeaderError(
            wrong_kind(path, columns, "images")
            or f"{path}: not an Open Images images file: missing column(s) "
            f"{', '.join(missing)}; it has {', '.join(columns) or 'no columns'}"
        )
    known = set(IMAGE_COLUMNS)
    if "Rotation" in columns:
        release = "v4+"
    elif "Thumbnail300KURL" in columns:
        release = "v2/v3"
    elif "Subset" in columns:
        release = "v1"
    else:
        release = "v1-early"
    extras = tuple(c for c in columns if c not in known)
    _check_reserved(path, extras, RESERVED_IMAGE_COLUMNS)
    return CsvLayout("images", release, columns, extras)


def labels_layout(path: str, names: list[str]) -> CsvLayout:
    """The layout of an image-level labels file, or HeaderError."""
    columns = normalise_header(names)
    _check_unique(path, columns)
    wrong = wrong_kind(path, columns, "labels")
    if wrong:  # a box or images file has the label columns too
        raise HeaderError(wrong)
    missing = [c for c in LABEL_COLUMNS if c not in columns]
    if missing:
        raise HeaderError(
            f"{path}: not an Open Images labels file: missing column(s) "
            f"{', '.join(missing)}; it has {', '.join(columns) or 'no columns'}"
        )
    extras = tuple(c for c in columns if c not in LABEL_COLUMNS)
    _check_reserved(path, extras, RESERVED_LABEL_COLUMNS)
    return CsvLayout("labels", "labels", columns, extras)


def boxes_layout(path: str, names: list[str]) -> CsvLayout:
    """The layout of a bounding-box file (8- or 13-column form), or HeaderError.

    Columns beyond the 13 (V6's XClick* points) are read past, not kept."""
    from oibeam.schemas.boxes import BOX_FLAGS, BOX_REQUIRED

    columns = normalise_header(names)
    _check_unique(path, columns)
    missing = [c for c in BOX_REQUIRED if c not in columns]
    if missing:
        raise HeaderError(
            wrong_kind(path, columns, "boxes")
            or f"{path}: not an Open Images box file: missing column(s) "
            f"{', '.join(missing)}; it has {', '.join(columns) or 'no columns'}"
        )
    flags = [c for c in BOX_FLAGS if c in columns]
    release = "boxes-13" if len(flags) == len(BOX_FLAGS) else "boxes-8"
    if flags and release == "boxes-8":
        release = f"boxes-8+{len(flags)}"
    extras = tuple(c for c in columns if c not in BOX_REQUIRED + BOX_FLAGS)
    return CsvLayout("boxes", release, columns, extras)


def subset_from_path(path: str) -> str | None:
    """The subset the file name names, else its folder (e.g. train/images.csv).

    Only these two parts count: a subset word further up (a /tmp/test-runs/
    folder) says nothing about the file. Two subsets in one part: None.
    """
    parts = path.replace("\\", "/").lower().split("/")[-2:]
    for part in reversed(parts):
        stem = part.split(".")[0]
        found = {w for w in stem.replace("_", "-").split("-") if w in SUBSETS}
        if found:
            return found.pop() if len(found) == 1 else None
    return None


def _check_reserved(path: str, extras: tuple[str, ...], reserved) -> None:
    clash = [c for c in extras if c in reserved]
    if clash:
        raise HeaderError(
            f"{path}: column(s) {', '.join(clash)} clash with columns oibeam adds; "
            "rename them in the file"
        )


def _check_unique(path: str, columns: tuple[str, ...]) -> None:
    seen = set()
    for c in columns:
        if c in seen:
            raise HeaderError(f"{path}: column {c!r} appears twice in the header")
        seen.add(c)
