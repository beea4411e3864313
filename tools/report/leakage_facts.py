"""What the report shows about leakage between subsets: validation and test
images that have a duplicate in train, from the run's duplicates table
(schemas/duplicates.py), with a few example pairs and their thumbnails.

An eval image leaks when its duplicates group also holds a train image. It
leaks `exact` when one of those train images has its OriginalMD5 or, after a
fetch, the MD5 of its bytes (the images table says; exactness is transitive,
a group is not: it may join two sets of exact copies by a near pair), else
`near`. One pass over the images table's record batches counts the images of
each subset and keeps the MD5s of the few images the groups name.

Thumbnails are read from the run's shards at the shard index's offsets,
decoded at a reduced scale where the format allows (a JPEG's DCT scaling)
and written as small JPEGs: at most MAX_EXAMPLES pairs of THUMB_SIDE pixels.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from oibeam.schemas.duplicates import DUPLICATES, EXACT, NEAR
from oibeam.tools.export.files_image import turn
from oibeam.tools.runs import Run
from oibeam.transforms.common import files
from oibeam.transforms.select.leakage import EVAL_SUBSETS, TRAIN
from oibeam.transforms.shard.locations import shard_location

_LOG = logging.getLogger(__name__)

DUPLICATES_TABLE = "duplicates"
MAX_EXAMPLES = 8  # pairs shown, exact ones first (at most half unless fewer near)
THUMB_SIDE = 160  # pixels, the longer side of a thumbnail
MAX_THUMB_SOURCE_BYTES = 64 << 20  # a member larger than this is not read
MAX_THUMB_PIXELS = 50_000_000  # nor one declaring more pixels than this
_KEYS = ("OriginalMD5", "md5")  # what makes two images exact copies
_INDEX_COLUMNS = ("ImageID", "shard", "offset", "size")


@dataclass(frozen=True)
class Thumb:
    """One image of an example: its id and subset, and a JPEG thumbnail
    (None: not in the shards, or it could not be read)."""

    image_id: str
    subset: str
    jpeg: bytes | None = None
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class LeakPair:
    """An eval image and one train image of its group."""

    eval: Thumb
    train: Thumb
    kind: str  # exact | near
    distance: int | None  # bits between their perceptual hashes, if known


@dataclass(frozen=True)
class LeakageFacts:
    """Counts of leaking images per eval subset and kind, and examples."""

    has_table: bool  # False: a run from before duplicates were detected
    duplicates: int  # rows of the duplicates table
    images: dict[str, int]  # images of each subset in the run
    leaked: dict[tuple[str, str], int]  # (eval subset, kind) -> eval images
    train: int  # train images in a group with an eval image
    train_exact: int  # of which exact copies of an eval image
    groups: int  # groups holding both train and eval images
    examples: list[LeakPair]

    def leaking(self, subset: str) -> int:
        return sum(n for (s, _), n in self.leaked.items() if s == subset)


def _mixed(duplicates: pa.Table) -> pa.Table:
    """The rows of groups that hold both a train and an eval image."""
    subset = duplicates["subset"]
    train = pc.unique(duplicates.filter(pc.equal(subset, TRAIN))["group"])
    evals = pc.unique(
        duplicates.filter(pc.is_in(subset, value_set=pa.array(EVAL_SUBSETS)))["group"]
    )
    both = train.filter(pc.is_in(train, value_set=evals))
    return duplicates.filter(pc.is_in(duplicates["group"], value_set=both))


def _keys_and_subsets(run: Run, ids: pa.Array) -> tuple[Counter, dict, dict]:
    """(images per subset, ImageID -> its exact keys, ImageID -> its Rotation)
    in one pass over the images table; keys and Rotations only for `ids`."""
    subsets: Counter = Counter()
    keys: dict[str, tuple] = {}
    rotations: dict[str, int | None] = {}
    for batch in run.batches("images", ["ImageID", "Subset", *_KEYS, "Rotation"]):
        table = pa.Table.from_batches([batch])
        counts = pc.value_counts(table["Subset"].combine_chunks())
        for item in counts.to_pylist():
            subsets[item["values"]] += item["counts"]
        wanted = table.filter(pc.is_in(table["ImageID"], value_set=ids))
        if not wanted.num_rows:
            continue
        columns = [c for c in _KEYS if c in wanted.column_names]
        for row in wanted.to_pylist():
            keys[row["ImageID"]] = tuple(
                (c, row[c]) for c in columns if row[c] not in (None, "")
            )
            rotations[row["ImageID"]] = row.get("Rotation")
    return subsets, keys, rotations


def _exact_partners(members: list[dict], keys: dict[str, tuple]) -> dict[str, list]:
    """Per eval member: the train members of the group it shares a key with."""
    out: dict[str, list] = {}
    trains = [m for m in members if m["subset"] == TRAIN]
    for m in members:
        if m["subset"] not in EVAL_SUBSETS:
            continue
        mine = set(keys.get(m["ImageID"], ()))
        out[m["ImageID"]] = sorted(
            t["ImageID"] for t in trains if mine & set(keys.get(t["ImageID"], ()))
        )
    return out


def _near_partner(member: dict, by_id: dict, trains: list[dict]):
    """(train ImageID, distance) of a near-leaking eval member: its nearest
    if that is a train image, else a train image whose nearest it is, else
    the smallest train ImageID of the group (distance unknown)."""
    nearest = by_id.get(member["nearest"])
    if nearest is not None and nearest["subset"] == TRAIN:
        return nearest["ImageID"], member["distance"]
    for t in trains:
        if t["nearest"] == member["ImageID"]:
            return t["ImageID"], t["distance"]
    return min(t["ImageID"] for t in trains), None


def leakage_facts(run: Run, max_examples: int = MAX_EXAMPLES) -> LeakageFacts:
    """The leakage of `run` (see the module doc); thumbnails of the examples
    from its shards where it has them."""
    duplicates = run.read(DUPLICATES_TABLE, DUPLICATES.names)
    if duplicates is None:
        return LeakageFacts(False, 0, {}, {}, 0, 0, 0, [])
    mixed = _mixed(duplicates)
    subsets, keys, rotations = _keys_and_subsets(run, mixed["ImageID"].combine_chunks())
    leaked: Counter = Counter()
    train_ids, train_exact = set(), set()
    exact_pairs, near_pairs = [], []
    rows = mixed.sort_by([("group", "ascending"), ("ImageID", "ascending")])
    groups: dict[str, list[dict]] = {}
    for row in rows.to_pylist():
        groups.setdefault(row["group"], []).append(row)
    for members in groups.values():
        by_id = {m["ImageID"]: m for m in members}
        trains = [m for m in members if m["subset"] == TRAIN]
        train_ids.update(t["ImageID"] for t in trains)
        for image_id, partners in _exact_partners(members, keys).items():
            subset = by_id[image_id]["subset"]
            if partners:
                leaked[(subset, EXACT)] += 1
                train_exact.update(partners)
                exact_pairs.append((image_id, subset, partners[0], EXACT, 0))
            else:
                leaked[(subset, NEAR)] += 1
                partner, distance = _near_partner(by_id[image_id], by_id, trains)
                near_pairs.append((image_id, subset, partner, NEAR, distance))
    near_pairs.sort(key=lambda p: (p[4] is None, p[4] or 0, p[0]))
    chosen = _choose(exact_pairs, near_pairs, max_examples)
    return LeakageFacts(
        has_table=True,
        duplicates=duplicates.num_rows,
        images=dict(subsets),
        leaked=dict(leaked),
        train=len(train_ids),
        train_exact=len(train_exact),
        groups=len(groups),
        examples=_with_thumbnails(run, chosen, rotations),
    )


def _choose(exact: list, near: list, n: int) -> list:
    """Up to n pairs: half exact, half near, the rest from whichever has more."""
    half = n // 2
    take_exact = min(len(exact), max(half, n - len(near)))
    return exact[:take_exact] + near[: n - take_exact]


def _index_rows(run: Run, ids: list[str]) -> dict[str, dict]:
    """ImageID -> its shard index row, for `ids` (none in a tables run)."""
    wanted = pa.array(ids, pa.string())
    found = {}
    for path in run.table_files("shard_index", "shards/index"):
        with files.open(path) as f:
            table = pq.ParquetFile(f).read(columns=list(_INDEX_COLUMNS))
        table = table.filter(pc.is_in(table["ImageID"], value_set=wanted))
        found.update({r["ImageID"]: r for r in table.to_pylist()})
    return found


def _member_bytes(run: Run, row: dict) -> bytes | None:
    if row["size"] > MAX_THUMB_SOURCE_BYTES:
        return None
    try:
        with files.open(shard_location(run.directory, row["shard"])) as f:
            f.seek(row["offset"])
            data = f.read(row["size"])
    except (OSError, ValueError) as e:
        _LOG.warning("no thumbnail of %s: %s", row["ImageID"], e)
        return None
    return data if len(data) == row["size"] else None


def thumbnail(
    data: bytes, side: int = THUMB_SIDE, rotation: int | None = None
) -> tuple[bytes, int, int] | None:
    """(JPEG bytes, width, height) of `data` upright (its EXIF orientation,
    else the release's `rotation`: image_check.upright_by) and at most `side`
    pixels a side; None if it cannot be read or declares too many pixels."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_THUMB_PIXELS:
                return None
            if image.format == "JPEG":
                image.draft("RGB", (side, side))  # decode at 1/2..1/8 scale
            op = turn(rotation, image.getexif().get(0x0112))
            upright = image.convert("RGB")
            if op is not None:
                upright = upright.transpose(op)
        upright.thumbnail((side, side))
        out = io.BytesIO()
        upright.save(out, "JPEG", quality=80)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        _LOG.warning("no thumbnail: %s", e)
        return None
    return out.getvalue(), upright.width, upright.height


def _with_thumbnails(run: Run, pairs: list, rotations: dict) -> list[LeakPair]:
    ids = sorted({p[0] for p in pairs} | {p[2] for p in pairs})
    index = _index_rows(run, ids) if ids else {}

    def thumb(image_id: str, subset: str) -> Thumb:
        row = index.get(image_id)
        data = _member_bytes(run, row) if row is not None else None
        made = None
        if data is not None:
            made = thumbnail(data, rotation=rotations.get(image_id))
        if made is None:
            return Thumb(image_id, subset)
        return Thumb(image_id, subset, *made)

    return [
        LeakPair(thumb(e, subset), thumb(t, TRAIN), kind, distance)
        for e, subset, t, kind, distance in pairs
    ]
