"""A small V1-shaped release whose images live on the FaultServer, for snapshot
tests that change it between runs (images added, removed, replaced, relabelled)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from oibeam.schemas.fetch import RUN_COLUMNS

from support.headers import LABELS_HEADER, V1_IMAGES_HEADER
from support.runs import run_cli

CLASSES = {"/m/cat": "Cat", "/m/dog": "Dog", "/m/car": "Car"}

# The fetch flags of snapshot tests against the FaultServer. --retries 1: an
# outage (503) fails fast, as a retryable http_error.
FLAGS = [
    "--allow-private-hosts",
    "--retries",
    "1",
    "--timeout",
    "5",
    "--direct_running_mode",
    "in_memory",
]


def jpeg(seed: int, size=(40, 30)) -> bytes:
    """A small JPEG whose bytes differ for every seed."""
    image = Image.new("RGB", size, (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256))
    image.putpixel((seed % size[0], seed // size[0] % size[1]), (255, 255, 255))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


@dataclass
class Photo:
    image_id: str
    seed: int
    labels: list[tuple[str, float]] = field(default_factory=lambda: [("/m/cat", 0.9)])
    route: str = "/img/{name}"  # how its URL reaches the server
    subset: str = "train"


class Release:
    """Writes the CSVs of `photos` under `directory` and serves their bytes.

    Content names are `<prefix>-<ImageID>.jpg`: a test owns its names on the
    shared server. `replace(image_id, seed)` serves new bytes (and the CSV gets
    the new MD5 at the next `write()`).
    """

    def __init__(self, server, directory: Path, prefix: str) -> None:
        self.server = server
        self.directory = Path(directory)
        self.prefix = prefix
        self.photos: dict[str, Photo] = {}

    def name(self, image_id: str) -> str:
        return f"{self.prefix}-{image_id}.jpg"

    def add(self, photo: Photo) -> None:
        self.photos[photo.image_id] = photo
        self.server.add(self.name(photo.image_id), jpeg(photo.seed))

    def remove(self, image_id: str) -> None:
        del self.photos[image_id]

    def replace(self, image_id: str, seed: int) -> None:
        self.photos[image_id].seed = seed
        self.server.add(self.name(image_id), jpeg(seed))

    def bytes_of(self, image_id: str) -> bytes:
        return jpeg(self.photos[image_id].seed)

    def url(self, photo: Photo) -> str:
        return self.server.url(photo.route.format(name=self.name(photo.image_id)))

    def requests_for(self, image_id: str) -> int:
        """Requests the server saw for this image's content, any route."""
        return sum(
            1 for r in self.server.requests() if r.path.endswith(self.name(image_id))
        )

    def write(self) -> list[str]:
        """Writes images.csv, labels.csv and dict.csv; returns the CLI input flags."""
        self.directory.mkdir(parents=True, exist_ok=True)
        images, labels = self.directory / "images.csv", self.directory / "labels.csv"
        with images.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(V1_IMAGES_HEADER.split(","))
            for photo in sorted(self.photos.values(), key=lambda p: p.image_id):
                data = jpeg(photo.seed)
                writer.writerow(
                    [
                        photo.image_id,
                        photo.subset,
                        self.url(photo),
                        "https://www.flickr.com/photos/x/1",
                        "https://creativecommons.org/licenses/by/2.0/",
                        "https://www.flickr.com/people/x/",
                        "Some, Author",
                        f"photo {photo.image_id}",
                        len(data),
                        md5_b64(data),
                    ]
                )
        with labels.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(LABELS_HEADER.split(","))
            for photo in sorted(self.photos.values(), key=lambda p: p.image_id):
                for label, confidence in photo.labels:
                    writer.writerow([photo.image_id, "machine", label, confidence])
        classes = self.directory / "dict.csv"
        classes.write_text("".join(f'"{m}","{n}"\n' for m, n in CLASSES.items()))
        return [
            "--images",
            str(images),
            "--labels",
            str(labels),
            "--classes",
            str(classes),
        ]


def read_table(path: Path) -> pa.Table:
    return pq.read_table(path)


def comparable(snapshot: Path, table: str, where_bytes_are: bool = True) -> pa.Table:
    """A snapshot table without the columns that describe the run, sorted;
    `where_bytes_are=False` also drops `shard` (a refresh shares the shards
    of earlier snapshots, a full snapshot has only its own)."""
    data = pq.read_table(snapshot / "tables" / table)
    drop = [c for c in RUN_COLUMNS if c in data.column_names]
    if not where_bytes_are and "shard" in data.column_names:
        drop.append("shard")
    data = data.drop_columns(drop)
    keys = [f.name for f in data.schema if not pa.types.is_nested(f.type)]
    return data.sort_by([(k, "ascending") for k in keys]) if data.num_rows else data


def shard_paths(run: Path) -> list[Path]:
    """The tar shards a run's manifest lists (a snapshot's are in its root's
    pool: ../pool/ID/NAME.tar), resolved."""
    files = manifest(run)["tables"].get("shards", {}).get("files", [])
    return sorted(Path(os.path.normpath(run / f["path"])) for f in files)


def deleted_members(run: Path) -> set[tuple[str, str]]:
    """(ImageID, shard) a snapshot lists as deleted from the shards it uses."""
    path = run / "tables" / "deleted"
    if not path.exists():
        return set()
    return {(r["ImageID"], r["shard"]) for r in pq.read_table(path).to_pylist()}


def shard_name(path: Path) -> str:
    """How an index names the shard at `path` (pool/ID/NAME.tar or NAME.tar)."""
    if path.parent.parent.name == "pool":
        return f"pool/{path.parent.name}/{path.name}"
    return path.name


def shard_members(snapshot: Path) -> dict[str, bytes]:
    """Every member of the snapshot's tar shards, read with tarfile, but
    those of the images it lists as deleted."""
    members = {}
    deleted = deleted_members(snapshot)
    for path in shard_paths(snapshot):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if (member.name.split(".", 1)[0], shard_name(path)) in deleted:
                    continue
                assert member.name not in members, f"{member.name} twice"
                members[member.name] = tar.extractfile(member).read()
    return members


def diff_rows(snapshot: Path) -> dict[str, dict]:
    return {
        r["ImageID"]: r for r in pq.read_table(snapshot / "tables" / "diff").to_pylist()
    }


def manifest(snapshot: Path) -> dict:
    return json.loads((snapshot / "manifest.json").read_text())


def unpool(root: Path, snapshot_id: str) -> None:
    """Rewrites complete snapshot ROOT/ID as snapshots were written before
    shards were pooled: its tars in ROOT/ID/shards/, named bare in its index
    and images table, listed as shards/NAME.tar, _SUCCESS re-signed. (Only
    for a snapshot that uses no other snapshot's shards.)"""
    snapshot, pool = root / snapshot_id, root / "pool" / snapshot_id
    prefix = f"pool/{snapshot_id}/"
    for tar in sorted(pool.glob("*.tar")):
        tar.rename(snapshot / "shards" / tar.name)
    pool.rmdir()
    for table in ("shards/index", "tables/images"):
        for part in sorted((snapshot / table).glob("*.parquet")):
            data = pq.read_table(part)
            if "shard" not in data.column_names:
                continue
            shards = [
                s.removeprefix(prefix) if s else s for s in data["shard"].to_pylist()
            ]
            where = data.schema.get_field_index("shard")
            data = data.set_column(
                where, data.schema.field(where), pa.array(shards, pa.string())
            )
            pq.write_table(data, part)
    path = snapshot / "manifest.json"
    document = json.loads(path.read_text())
    for table in document["tables"].values():
        for entry in table["files"]:
            if entry["path"].startswith(f"../{prefix}"):
                entry["path"] = "shards/" + entry["path"].removeprefix(f"../{prefix}")
            else:
                local = snapshot / entry["path"]
                data = local.read_bytes()
                entry["bytes"], entry["md5"] = len(data), hashlib.md5(data).hexdigest()
    text = json.dumps(document, indent=2).encode()
    path.write_bytes(text)
    digest = hashlib.sha256(text).hexdigest()
    (snapshot / "_SUCCESS").write_text(
        f"# published 2026-11-30T00:00:00+00:00\n{digest}  manifest.json\n"
    )


def upload_release(bucket, flags: list[str]) -> list[str]:
    """The release CSVs of `flags` copied to a GCS bucket; the flags naming
    them there."""
    out = []
    for flag in flags:
        if flag.startswith("--"):
            out.append(flag)
            continue
        name = f"release/{flag.rsplit('/', 1)[-1]}"
        bucket.blob(name).upload_from_filename(flag)
        out.append(f"gs://{bucket.name}/{name}")
    return out


def snapshot_cli(flags, root, snapshot_id, *extra) -> int:
    """`oibeam snapshot` of a release's `flags` into ROOT/ID, with FLAGS."""
    return run_cli(
        "snapshot",
        *flags,
        "--output",
        root,
        "--snapshot-id",
        snapshot_id,
        *FLAGS,
        *extra,
    )
