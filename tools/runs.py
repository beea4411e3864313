"""Find a finished run (ROOT/ID, or a snapshot ROOT through its LATEST) and
read its manifest and tables, on any Beam filesystem: what verify, report and
export share.

A manifest is read only if it is one oibeam writes (a JSON object with the
keys every manifest has, each of the type the readers expect), and a file it
lists only if its path stays inside the run's directory: a manifest is data
from wherever the run came from, not an instruction to read anything anywhere.

Tables are read file by file through FileSystems (local or gs://), only the
columns asked for; the images table in record batches, never whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from oibeam.schemas.snapshot import MANIFEST
from oibeam.transforms.common import files
from oibeam.transforms.publish.publish_snapshot import read_latest
from oibeam.transforms.shard.locations import from_run_relative, listed_path

BATCH_ROWS = 65_536

# Keys every manifest has had since the first one.
REQUIRED = ("tables", "rows", "inputs")
# The JSON type of each key a reader uses (other keys are not looked at).
_TYPES: dict[str, type] = {
    "tables": dict,
    "rows": dict,
    "inputs": list,
    "counts": dict,
    "statuses": dict,
    "changes": dict,
    "actions": dict,
    "rejected_by_code": dict,
    "options": dict,
    "snapshot": dict,
    "versions": dict,
    "trainable_rule": dict,
    "status_vocabulary": dict,
    "change_vocabulary": dict,
    "action_vocabulary": dict,
    "reason_vocabulary": dict,
    "images_tables": list,
    "dropped": dict,
    "drop_vocabulary": dict,
}
# Keys whose values are counts: name -> whole number.
_COUNTS = (
    "rows",
    "counts",
    "statuses",
    "changes",
    "actions",
    "rejected_by_code",
    "dropped",
)
_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


class NotARun(ValueError):
    """The directory holds no complete run (no manifest.json, no LATEST)."""


class BadManifest(NotARun):
    """manifest.json is not one oibeam writes: not JSON, not an object, a key
    missing or of the wrong type, or a file outside the run's directory."""


def _json_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return _JSON_NAMES.get(type(value), type(value).__name__)


def is_count(value: Any) -> bool:
    """A whole number, not negative (JSON `true` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def path_problem(path: Any) -> str | None:
    """Why a path a manifest lists must not be read (None: it may). Only a
    relative path of plain names stays inside the run's directory: nothing
    absolute, no scheme, no empty, `.` or `..` segment, no backslash or
    control character; or a shard of the snapshot root's pool
    (`../pool/ID/NAME.tar`, see transforms/shard/locations)."""
    if isinstance(path, str) and from_run_relative(path) is not None:
        return None
    if (
        not isinstance(path, str)
        or not path
        or path.startswith("/")
        or "://" in path
        or "\\" in path
        or not path.isprintable()
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        return f"{path!r} is not a path inside the run's directory"
    return None


def inside(directory: str, path: Any) -> str:
    """`directory/path` for a path a manifest lists; BadManifest if it would
    leave `directory`."""
    problem = path_problem(path)
    if problem:
        raise BadManifest(f"{directory}/{MANIFEST}: {problem}")
    return listed_path(directory, path)


def parse_manifest(data: bytes) -> dict[str, Any]:
    """The manifest in `data`; BadManifest unless it is a JSON object."""
    try:
        manifest = json.loads(data)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise BadManifest(f"not JSON ({e})") from e
    if not isinstance(manifest, dict):
        raise BadManifest(
            f"{_json_name(manifest)}, not an object: not an oibeam manifest"
        )
    return manifest


def shape_problems(manifest: dict[str, Any]) -> list[str]:
    """What makes `manifest` not one oibeam writes: a required key missing,
    a key of the wrong type, a count that is not a whole number, a table
    whose files are not a list of objects with a `path`. Paths are checked
    by path_problem."""
    problems = [f"no `{key}`" for key in REQUIRED if key not in manifest]
    for key, kind in _TYPES.items():
        if key in manifest and not isinstance(manifest[key], kind):
            problems.append(
                f"`{key}` is {_json_name(manifest[key])}, not {_JSON_NAMES[kind]}"
            )
    for key in _COUNTS:
        values = manifest.get(key)
        if isinstance(values, dict):
            problems += [
                f"`{key}.{name}` is {n!r}, not a count"
                for name, n in values.items()
                if not is_count(n)
            ]
    inputs = manifest.get("inputs")
    if isinstance(inputs, list):
        problems += [
            f"`inputs[{n}]` is {_json_name(i)}, not an object"
            for n, i in enumerate(inputs)
            if not isinstance(i, dict)
        ]
    tables = manifest.get("tables")
    if isinstance(tables, dict):
        for name, table in tables.items():
            where = f"`tables.{name}`"
            if not isinstance(table, dict):
                problems.append(f"{where} is {_json_name(table)}, not an object")
            elif not isinstance(table.get("files"), list):
                problems.append(f"{where} has no list of `files`")
            else:
                for n, entry in enumerate(table["files"]):
                    if not isinstance(entry, dict) or "path" not in entry:
                        problems.append(f"{where}.files[{n}] has no `path`")
    return problems


def listed_paths(manifest: dict[str, Any]) -> Iterator[tuple[str, int, Any]]:
    """(table, position, path) of every file the tables of a well-shaped
    manifest list."""
    for name, table in manifest["tables"].items():
        for n, entry in enumerate(table["files"]):
            yield name, n, entry["path"]


def read_manifest(directory: str) -> dict[str, Any]:
    """The manifest of the run in `directory`; BadManifest unless it is one
    oibeam writes and every file it lists is inside `directory`."""
    where = f"{directory}/{MANIFEST}"
    with files.open(where) as f:
        data = f.read()
    try:
        manifest = parse_manifest(data)
    except BadManifest as e:
        raise BadManifest(f"{where}: {e}") from e
    problems = shape_problems(manifest)
    if not problems:
        problems = [
            f"tables.{name}.files[{n}]: {path_problem(path)}"
            for name, n, path in listed_paths(manifest)
            if path_problem(path)
        ]
    if problems:
        more = len(problems) - 1
        raise BadManifest(
            f"{where} is not an oibeam manifest: {problems[0]}"
            + (
                f" (and {more} more problem(s); oibeam verify lists them)"
                if more
                else ""
            )
        )
    return manifest


def _snapshot_id(path: str, latest: str) -> str:
    """The id LATEST names, if it is a plain name under `path`."""
    if "/" in latest or path_problem(latest):
        raise NotARun(f"{path}/LATEST names {latest!r}, not a snapshot under {path}")
    return latest


def resolve_run(path: str, complete: bool = True) -> str:
    """RUN_DIR as given, or ROOT/<LATEST> when `path` is a snapshot root.
    NotARun if neither holds a manifest, or LATEST names anything but a
    directory right under ROOT; with complete=False, the snapshot LATEST names
    is returned even without one (for verify to report on)."""
    path = path.rstrip("/")
    if files.exists(f"{path}/{MANIFEST}"):
        return path
    try:
        latest = read_latest(path).snapshot_id
    except OSError:  # a file, or an unreadable directory: not a root either
        latest = None
    if latest:
        latest = _snapshot_id(path, latest)
    if latest and (not complete or files.exists(f"{path}/{latest}/{MANIFEST}")):
        return f"{path}/{latest}"
    raise NotARun(
        f"{path}: no {MANIFEST} (a run that did not finish, or not a run "
        "directory) and no LATEST naming a snapshot under it"
    )


def statuses_of(manifest: dict) -> dict[str, int]:
    """Images per fetch status, as the manifest records them (older
    manifests only as `status:<status>` keys of `counts`)."""
    if "statuses" in manifest:
        return dict(manifest["statuses"])
    prefix = "status:"
    return {
        key[len(prefix) :]: n
        for key, n in manifest.get("counts", {}).items()
        if key.startswith(prefix)
    }


@dataclass(frozen=True)
class Run:
    """One run directory and its manifest."""

    directory: str
    manifest: dict[str, Any]

    @classmethod
    def load(cls, directory: str) -> Run:
        """BadManifest unless its manifest is one oibeam writes (read_manifest)."""
        return cls(directory, read_manifest(directory))

    def table_files(self, name: str, folder: str | None = None) -> list[str]:
        """The Parquet files of a table, sorted, as the manifest lists them
        (else those in `folder`, by default tables/NAME). BadManifest for a
        listed path outside the run's directory."""
        listed = self.manifest.get("tables", {}).get(name, {}).get("files")
        if listed is not None:
            paths = [inside(self.directory, f.get("path")) for f in listed]
            return sorted(p for p in paths if p.endswith(".parquet"))
        pattern = f"{self.directory}/{folder or f'tables/{name}'}/*.parquet"
        found = files.match([pattern])[0].metadata_list
        return sorted(
            m.path for m in found if not m.path.rsplit("/", 1)[-1].startswith(".")
        )

    def schema(self, name: str) -> pa.Schema | None:
        """The table's schema (from its first file), None if it has no files."""
        paths = self.table_files(name)
        if not paths:
            return None
        with files.open(paths[0]) as f:
            return pq.ParquetFile(f).schema_arrow

    def read(self, name: str, columns: list[str]) -> pa.Table | None:
        """A small table, only `columns` that it has; None if it is absent."""
        schema = self.schema(name)
        if schema is None:
            return None
        present = [c for c in columns if c in schema.names]
        pieces = []
        for path in self.table_files(name):
            with files.open(path) as f:
                pieces.append(pq.ParquetFile(f).read(columns=present))
        return pa.concat_tables(pieces)

    def batches(self, name: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """A table's record batches, only `columns` that it has."""
        schema = self.schema(name)
        if schema is None:
            return
        present = [c for c in columns if c in schema.names]
        for path in self.table_files(name):
            with files.open(path) as f:
                yield from pq.ParquetFile(f).iter_batches(
                    batch_size=BATCH_ROWS, columns=present
                )

    def table_option(self, name: str) -> Any:
        """An option of the tables part of the run: the rule, or an input
        option such as expand_ancestors. Runs record options by flag group
        (`options.rule`, `options.inputs`); older ones at the top of `options`
        (`oibeam tables`) or under `options.tables` (fetch, snapshot)."""
        options = self.manifest.get("options", {})
        for where in (options, options.get("inputs", {}), options.get("tables", {})):
            if name in where:
                return where[name]
        return None
