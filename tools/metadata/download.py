"""Download a release's official metadata files, check them, and lay them out
so `oibeam tables` / `snapshot` take them directly (no Beam here).

Each file lands at OUTPUT/<its URL's path> (so files two releases share are
fetched once): streamed to a temporary name, its bytes counted against
Content-Length (and the catalogue's size and MD5 where published). A plain
CSV of one split (V4+) is fetched only when that split is chosen; a
split-less file (class descriptions, hierarchy, a V1-V3 tarball of every
split) always. A .tar.gz is read once, whole, as its regular files are
extracted into a temporary folder (a truncated or corrupt archive fails
here, not in a pipeline; a member that would land outside the folder is
refused); the file, and the folder under the archive's name, are renamed
only when both are whole. A rerun skips what is already there whole
(OUTPUT/downloads.json records each file's bytes and MD5).
`--base-url` fetches the same paths from a mirror.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import requests

from oibeam.tools.metadata.official_files import (
    CLASSES,
    HIERARCHY,
    KINDS,
    RELEASES,
    SPLITS,
    OfficialFile,
)

RECORD = "downloads.json"
_CHUNK = 1 << 20
_TIMEOUT = 60
_ALL_SPLITS = (CLASSES, HIERARCHY)  # kinds every split's run reads


class DownloadError(ValueError):
    """A file could not be downloaded whole and as published."""


@dataclass
class Layout:
    """What was downloaded: the inputs for each flag, and every file."""

    inputs: dict[str, list[str]] = field(default_factory=dict)
    downloaded: list[str] = field(default_factory=list)  # fetched by this run
    kept: list[str] = field(default_factory=list)  # already there, whole

    def flags(self) -> list[str]:
        """`--images ... --labels ... --classes ... --boxes ... --hierarchy F`."""
        out: list[str] = []
        for kind in KINDS:
            if self.inputs.get(kind):
                out += [f"--{kind}", *self.inputs[kind]]
        return out


def files_of(release: str) -> tuple[OfficialFile, ...]:
    if release not in RELEASES:
        raise DownloadError(
            f"--release {release}: not an Open Images release oibeam lists "
            f"(one of {', '.join(RELEASES)}); for another, download its CSVs by "
            "hand and give them to --images/--labels/--classes/--boxes"
        )
    return RELEASES[release]


def download_metadata(
    release: str,
    splits: tuple[str, ...],
    output: str,
    base_url: str | None = None,
    files: tuple[OfficialFile, ...] | None = None,
) -> Layout:
    """Downloads `release`'s files (or `files`) of `splits` (and those of no
    split) into `output`; the inputs of `splits` (class descriptions and the
    hierarchy always) go to the layout's flags."""
    root = Path(output).resolve()
    root.mkdir(parents=True, exist_ok=True)
    record_path = root / RECORD
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    layout = Layout()
    for official in files if files is not None else files_of(release):
        if official.split is not None and official.split not in splits:
            continue
        url = _mirrored(official.url, base_url)
        target = root / _relative(official.url)
        done = record.get(official.url)
        if done and target.exists() and target.stat().st_size == done["bytes"]:
            layout.kept.append(str(target))
        else:
            record[official.url] = _download(url, target, official)
            _write_record(record_path, record)
            layout.downloaded.append(str(target))
        found = _extracted(target) if official.archive else [target]
        if official.split is not None or official.kind in _ALL_SPLITS:
            chosen = found  # a chosen split's file, or every split's
        else:
            chosen = [p for p in found if _in(p.relative_to(root), splits)]
        layout.inputs.setdefault(official.kind, []).extend(str(p) for p in chosen)
    return layout


def _relative(url: str) -> PurePosixPath:
    path = PurePosixPath(urlsplit(url).path.lstrip("/"))
    if not path.parts or ".." in path.parts:
        raise DownloadError(f"not a file URL: {url}")
    return path


def _mirrored(url: str, base_url: str | None) -> str:
    if not base_url:
        return url
    return f"{base_url.rstrip('/')}/{_relative(url)}"


def _download(url: str, target: Path, official: OfficialFile) -> dict:
    """Streams `url` to `target` (renamed only when whole); {bytes, md5}."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".tmp-{uuid.uuid4().hex}-{target.name}")
    md5, size = hashlib.md5(), 0
    try:
        with requests.get(url, stream=True, timeout=_TIMEOUT) as answer:
            if answer.status_code != 200:
                raise DownloadError(f"{url}: HTTP {answer.status_code}")
            declared = answer.headers.get("Content-Length")
            with temp.open("wb") as out:
                for chunk in answer.iter_content(_CHUNK):
                    out.write(chunk)
                    md5.update(chunk)
                    size += len(chunk)
        if declared is not None and declared.isdigit() and int(declared) != size:
            raise DownloadError(f"{url}: {size:,} of {int(declared):,} bytes came")
        if official.size is not None and size != official.size:
            raise DownloadError(
                f"{url}: {size:,} bytes, the release says {official.size:,}"
            )
        if official.md5 is not None and md5.hexdigest() != official.md5:
            raise DownloadError(
                f"{url}: MD5 {md5.hexdigest()}, the release says {official.md5}"
            )
        # An archive is read whole, as it is extracted, before either is
        # under its final name.
        unpacked = _unpack(temp, url) if official.archive else None
        try:
            os.replace(temp, target)
            if unpacked is not None:
                _install(unpacked, _extract_dir(target))
        finally:
            if unpacked is not None:
                _remove_tree(unpacked)
    except requests.RequestException as e:
        raise DownloadError(f"{url}: {e}") from e
    finally:
        temp.unlink(missing_ok=True)
    return {"bytes": size, "md5": md5.hexdigest()}


def _unpack(archive: Path, url: str) -> Path:
    """The archive's regular files, extracted into a temporary folder beside
    it as it is read whole: DownloadError if it is truncated or corrupt, or
    if a member would land outside its folder (nothing is left then)."""
    temp = archive.with_name(f".tmp-{uuid.uuid4().hex}-unpacked")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                path = _member_path(member, url)
                if path is None or not member.isfile():
                    continue
                out = temp.joinpath(*path.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as data, out.open("wb") as f:
                    shutil.copyfileobj(data, f, _CHUNK)
        temp.mkdir(exist_ok=True)
        return temp
    except (tarfile.TarError, OSError, EOFError) as e:
        _remove_tree(temp)
        raise DownloadError(f"{url}: not a whole .tar.gz ({e})") from e
    except BaseException:
        _remove_tree(temp)
        raise


def _install(unpacked: Path, folder: Path) -> None:
    """`unpacked` becomes `folder` (what an older download held goes)."""
    _remove_tree(folder)
    os.replace(unpacked, folder)


def _member_path(member: tarfile.TarInfo, url: str) -> PurePosixPath | None:
    """The member's path inside its folder (None: not a regular file or dir)."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise DownloadError(f"{url}: member {member.name!r} is outside the archive")
    if not (member.isfile() or member.isdir()):
        return None  # links, devices: not metadata
    return path


def _extract_dir(archive: Path) -> Path:
    return archive.with_name(archive.name.removesuffix(".tar.gz").removesuffix(".tgz"))


def _extracted(archive: Path) -> list[Path]:
    """The archive's CSV files, extracted beside it once (sorted)."""
    folder = _extract_dir(archive)
    if not folder.exists():
        _install(_unpack(archive, str(archive)), folder)
    return sorted(p for p in folder.rglob("*.csv") if p.is_file())


def _in(path: Path, splits: tuple[str, ...]) -> bool:
    """Whether a CSV belongs to one of `splits` (by its folder: train/,
    validation/, test/); a CSV in no split folder belongs to every split."""
    named = [part for part in path.parts if part in SPLITS]
    return not named or named[-1] in splits


def _remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def _write_record(path: Path, record: dict) -> None:
    temp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    temp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(temp, path)
