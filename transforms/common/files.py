"""Beam's `FileSystems` calls, without importing Beam for local paths.

Importing Beam costs a process ~1.5 s. Code that may run where no pipeline
does (the launcher's checks, an unchanged refresh, `verify`, `report`) reads
and writes through this module: local paths are served here with what Beam's
local filesystem does (parents created on create, a directory deleted whole,
patterns with `*` inside a path segment and `**` across them), and URIs
(gs://, ...) and files whose extension asks Beam to (de)compress them go to
Beam's FileSystems, imported on first use. Callers see Beam's behaviour either
way; tests/transforms/common/test_files.py compares the two on one tree.
"""

from __future__ import annotations

import builtins
import os
import re
import shutil
from typing import BinaryIO, NamedTuple

# Extensions Beam (de)compresses when asked with its default, AUTO.
_COMPRESSED = (".gz", ".bz2", ".deflate", ".zst", ".zstd", ".xz", ".lzma", ".snappy")


class FileMetadata(NamedTuple):
    path: str
    size_in_bytes: int
    last_updated_in_seconds: float = 0.0


class MatchResult(NamedTuple):
    pattern: str
    metadata_list: list[FileMetadata]


def is_uri(path: str) -> bool:
    return "://" in path


def absolute(path: str) -> str:
    """`path` as a worker in any working directory sees it: URIs as they
    are, local paths (and patterns) made absolute, `~` expanded."""
    if is_uri(path):
        return path
    return os.path.abspath(os.path.expanduser(path))


def _beam():
    from apache_beam.io.filesystems import FileSystems as Beam

    return Beam


def _local(path: str) -> bool:
    return not is_uri(path) and not path.lower().endswith(_COMPRESSED)


def open(path: str) -> BinaryIO:  # noqa: A001 (FileSystems.open's name)
    if _local(path):
        return builtins.open(path, "rb")
    return _beam().open(path)


def create(path: str) -> BinaryIO:
    if not _local(path):
        return _beam().create(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    return builtins.open(path, "wb")


def exists(path: str) -> bool:
    return os.path.exists(path) if not is_uri(path) else _beam().exists(path)


def size(path: str) -> int:
    if is_uri(path):
        return _beam().match([path])[0].metadata_list[0].size_in_bytes
    return os.path.getsize(path)


def delete(paths: list[str]) -> None:
    """Deletes files (and local directories whole); FileNotFoundError (OSError)
    for a local path that does not exist, as Beam raises for it."""
    remote = [p for p in paths if is_uri(p)]
    if remote:
        _beam().delete(remote)
    for path in paths:
        if is_uri(path):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def rename(sources: list[str], destinations: list[str]) -> None:
    pairs = list(zip(sources, destinations, strict=True))
    remote = [(s, d) for s, d in pairs if is_uri(s) or is_uri(d)]
    if remote:
        _beam().rename([s for s, _ in remote], [d for _, d in remote])
    for source, destination in pairs:
        if not (is_uri(source) or is_uri(destination)):
            os.rename(source, destination)


def match(patterns: list[str], limits: list[int | None] | None = None):
    """A MatchResult per pattern, its files sorted by path (Beam's order of
    files on a local disk is the walk's)."""
    limits = limits or [None] * len(patterns)
    if any(is_uri(p) for p in patterns):
        return _beam().match(patterns, limits)
    return [_match_local(p, limit) for p, limit in zip(patterns, limits, strict=True)]


def _match_local(pattern: str, limit: int | None) -> MatchResult:
    if pattern.endswith("/"):
        pattern += "*"
    prefix = re.match(r"^[^[*?]*", pattern).group(0)
    if prefix == pattern:  # no wildcard: the file itself, if there
        found = [pattern] if os.path.isfile(pattern) else []
    else:
        top = prefix if prefix.endswith("/") else os.path.dirname(prefix)
        wanted = re.compile(translate(pattern))
        found = sorted(
            path
            for directory, _, names in os.walk(top or ".")
            for path in (_joined(top, directory, name) for name in names)
            if wanted.match(path)
        )
    found = found[:limit] if limit is not None else found
    metadata = [FileMetadata(p, os.path.getsize(p), os.path.getmtime(p)) for p in found]
    return MatchResult(pattern, metadata)


def _joined(top: str, directory: str, name: str) -> str:
    if not top:  # a relative pattern without a directory: names as given
        directory = directory.removeprefix("./").removeprefix(".")
    return os.path.join(directory, name) if directory else name


def translate(pattern: str) -> str:
    """A regular expression for a pattern: `**` any characters, `*` any but
    '/', `?` one character, [...] a class ([!...] negated), the rest literal."""
    out, i, n = "", 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if i < n and pattern[i] == "*":
                out += ".*"
                i += 1
            else:
                out += r"[^/\\]*"
        elif c == "?":
            out += "."
        elif c == "[":
            end = pattern.find("]", i + 1 if i < n and pattern[i] == "!" else i)
            if end < 0:
                out += r"\["
            else:
                body = pattern[i:end].replace("\\", r"\\")
                out += "[^" + body[1:] + "]" if body.startswith("!") else f"[{body}]"
                i = end + 1
        else:
            out += re.escape(c)
    return out + r"\Z"


def link_or_copy(source: str, destination: str) -> None:
    """`destination` with the bytes of `source`: a hard link on a local disk
    (no bytes written; both names stay valid whichever is deleted first), a
    copy where links are not possible (another filesystem, gs://)."""
    if is_uri(source) or is_uri(destination):
        _beam().copy([source], [destination])
        return
    os.makedirs(os.path.dirname(destination) or ".", exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copyfile(source, destination)
