"""COCO-style detection JSON of the boxes: coco/<subset>.json per Subset.

Each file is one JSON object, written as a stream (never built in memory):

    info         what this is (snapshot id, subset)
    licenses     id, name, url of every License of the exported images
    categories   id (1..), name (display name), mid: the labels with at least
                 one box, sorted by mid; the same ids in every subset's file
    images       every ok image of the subset in ImageID order: id (1.., the
                 image's position in the whole export, so unique across the
                 files), file_name (shards/<shard>/<member>), width and height
                 of the upright image, open_images_id, rotation, license
    annotations  one per box, in image order then the box order of the run:
                 id (1.., unique across the files), image_id, category_id,
                 bbox [x, y, w, h] and area in pixels of the upright image,
                 iscrowd (IsGroupOf), the Open Images flags (null where not
                 annotated), source, confidence

The upright image is the stored image rotated counterclockwise by `rotation`
(the release's Rotation, 0 when absent); EXIF orientation is not applied.
Needs the `boxes` column: a run made with --boxes.
"""

from __future__ import annotations

import json
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from oibeam.schemas.boxes import FLAG_FIELDS
from oibeam.tools.export.attribution import license_name
from oibeam.tools.export.base import (
    PATH,
    Exporter,
    ExportError,
    WrittenExport,
    by_subset,
    merge_names,
    subset_name,
)
from oibeam.transforms.common.arrow_util import combine

_PIXELS = ("x_min_px", "x_max_px", "y_min_px", "y_max_px")
_COPY_CHUNK = 1 << 20


NO_BOXES = (
    "this run has no boxes; make the snapshot (or fetch) with --boxes FILE... "
    "(the release's box CSVs), then export it"
)


class NoBoxes(ExportError):
    """The run has no boxes: it was made without --boxes."""


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def boxes_in_pixels(boxes) -> tuple[np.ndarray, pa.StructArray]:
    """(image row, box) of every box of a `boxes` column with pixel coordinates."""
    nested = combine(boxes)
    rows = np.asarray(pc.list_parent_indices(nested).to_numpy(), dtype=np.int64)
    items = pc.list_flatten(nested)
    valid = np.ones(len(items), dtype=bool)
    for name in _PIXELS:
        valid &= np.asarray(items.field(name).is_valid().to_numpy(zero_copy_only=False))
    where = pa.array(np.flatnonzero(valid))
    return rows[valid], items.take(where)


def upright_sizes(table: pa.Table) -> tuple[list, list]:
    """Width and height of each image once rotated by its Rotation."""
    if "upright_width" in table.column_names:
        return table["upright_width"].to_pylist(), table["upright_height"].to_pylist()
    width, height = table["width"].to_pylist(), table["height"].to_pylist()
    rotation = (
        table["Rotation"].to_pylist()
        if "Rotation" in table.column_names
        else [None] * table.num_rows
    )
    turned = [r in (90, 270) for r in rotation]
    return (
        [h if t else w for w, h, t in zip(width, height, turned, strict=True)],
        [w if t else h for w, h, t in zip(width, height, turned, strict=True)],
    )


class _SubsetFile:
    """One subset's JSON file, with its annotations parked in a local
    temporary file until the images array is complete."""

    def __init__(self, output, head: str) -> None:
        self.output = output
        self.output.write(head)
        self.annotations = tempfile.TemporaryFile()
        self.images = 0
        self.boxes = 0

    def add(self, images: list[str], annotations: list[str]) -> None:
        if images:
            text = ",\n".join(images)
            self.output.write(text if not self.images else ",\n" + text, len(images))
            self.images += len(images)
        if annotations:
            text = ",\n".join(annotations)
            self.annotations.write(
                (text if not self.boxes else ",\n" + text).encode("utf-8")
            )
            self.boxes += len(annotations)

    def close(self) -> None:
        self.output.write('\n],"annotations":[\n')
        self.annotations.seek(0)
        while chunk := self.annotations.read(_COPY_CHUNK):
            self.output.write(chunk)
        self.annotations.close()
        self.output.write("\n]}\n")
        self.output.detail = f"{self.boxes:,} boxes"


class CocoBoxes(Exporter):
    """Writes coco/<subset>.json."""

    name = "coco"
    columns = (
        "Subset",
        "License",
        "Rotation",
        "width",
        "height",
        "upright_width",
        "upright_height",
        "boxes",
    )

    def __init__(self, snapshot_id: str | None) -> None:
        super().__init__()
        self._snapshot_id = snapshot_id
        self._names: dict[str, str | None] = {}
        self._licenses: set[str] = set()
        self._annotated = 0  # ok images whose boxes are not null
        self._subsets: dict[str, _SubsetFile] = {}
        self._next_image = 1
        self._next_box = 1

    @property
    def has_boxes(self) -> bool:
        return self._annotated > 0

    def observe(self, table: pa.Table) -> None:
        boxes = combine(table["boxes"])
        self._annotated += len(boxes) - boxes.null_count
        _, items = boxes_in_pixels(boxes)
        merge_names(self._names, items.field("label"), items.field("display_name"))
        if "License" in table.column_names:
            self._licenses.update(
                v for v in pc.unique(table["License"]).to_pylist() if v is not None
            )

    def start(self, directory: str) -> None:
        self._directory = directory
        mids = sorted(self._names)
        self._categories = pa.array(mids, pa.string())
        self._category_json = ",\n".join(
            _dumps({"id": i, "name": self._names[m] or m, "mid": m})
            for i, m in enumerate(mids, start=1)
        )
        licenses = sorted(self._licenses)
        self._license_ids = {url: i for i, url in enumerate(licenses, start=1)}
        self._license_json = _dumps(
            [
                {"id": i, "name": license_name(url), "url": url}
                for url, i in self._license_ids.items()
            ]
        )

    def _file(self, subset: str | None) -> _SubsetFile:
        name = subset_name(subset)
        if name not in self._subsets:
            info = {
                "description": "Open Images boxes of fetched and verified images, "
                "exported by oibeam",
                "snapshot": self._snapshot_id,
                "subset": name,
            }
            head = (
                f'{{"info":{_dumps(info)},"licenses":{self._license_json},'
                f'"categories":[\n{self._category_json}\n],"images":[\n'
            )
            output = self.open(f"{self._directory}/{name}.json")
            self._subsets[name] = _SubsetFile(output, head)
        return self._subsets[name]

    def write(self, table: pa.Table) -> None:
        n = table.num_rows
        first_image = self._next_image
        self._next_image += n
        width, height = upright_sizes(table)
        subsets = table["Subset"].to_pylist()
        rotation = (
            table["Rotation"].to_pylist()
            if "Rotation" in table.column_names
            else [None] * n
        )
        licenses = (
            table["License"].to_pylist()
            if "License" in table.column_names
            else [None] * n
        )
        paths = table[PATH].to_pylist()
        ids = table["ImageID"].to_pylist()
        images: dict[str | None, list[str]] = {}
        for i in range(n):
            entry = {
                "id": first_image + i,
                "file_name": paths[i],
                "width": width[i],
                "height": height[i],
                "open_images_id": ids[i],
                "rotation": rotation[i] or 0,
            }
            if licenses[i] in self._license_ids:
                entry["license"] = self._license_ids[licenses[i]]
            images.setdefault(subsets[i], []).append(_dumps(entry))
        annotations = self._annotations(table, first_image, subsets)
        for subset in images:
            self._file(subset).add(images[subset], annotations.get(subset, []))

    def _annotations(
        self, table: pa.Table, first_image: int, subsets: list
    ) -> dict[str | None, list[str]]:
        rows, items = boxes_in_pixels(table["boxes"])
        category = pc.add(pc.index_in(items.field("label"), self._categories), 1)
        x0, x1, y0, y1 = (
            np.asarray(items.field(f).to_numpy(zero_copy_only=False), dtype=np.float64)
            for f in _PIXELS
        )
        w, h = x1 - x0, y1 - y0
        columns = {
            "category": category.to_pylist(),
            "x": x0.tolist(),
            "y": y0.tolist(),
            "w": w.tolist(),
            "h": h.tolist(),
            "area": (w * h).tolist(),
            "source": items.field("source").to_pylist(),
            "confidence": items.field("confidence").to_pylist(),
            **{f: items.field(f).to_pylist() for f in FLAG_FIELDS.values()},
        }
        out: dict[str | None, list[str]] = {}
        for j, row in enumerate(rows.tolist()):
            entry = {
                "id": self._next_box + j,
                "image_id": first_image + row,
                "category_id": columns["category"][j],
                "bbox": [
                    columns["x"][j],
                    columns["y"][j],
                    columns["w"][j],
                    columns["h"][j],
                ],
                "area": columns["area"][j],
                "iscrowd": 1 if columns["is_group_of"][j] else 0,
                **{f: columns[f][j] for f in FLAG_FIELDS.values()},
                "source": columns["source"][j],
                "confidence": columns["confidence"][j],
            }
            out.setdefault(subsets[row], []).append(_dumps(entry))
        self._next_box += len(rows)
        return out

    def finish(self) -> list[WrittenExport]:
        for subset in self._subsets.values():
            subset.close()
        return by_subset(self.commit_all())

    def discard(self) -> None:
        for subset in self._subsets.values():
            subset.annotations.close()
        super().discard()
