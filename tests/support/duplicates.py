"""A run's duplicates table replaced by rows a test chooses, as duplicate
detection writes them (schemas/duplicates.py): the input of the leakage
report and of --duplicates-from, fixed whatever the detection finds."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from oibeam.schemas.duplicates import DUPLICATES


def _resign(run: Path, manifest: dict) -> None:
    """Writes `manifest` for `run`, and its _SUCCESS again if it has one."""
    text = json.dumps(manifest, indent=2).encode()
    (run / "manifest.json").write_bytes(text)
    if (run / "_SUCCESS").exists():
        digest = hashlib.sha256(text).hexdigest()
        (run / "_SUCCESS").write_text(
            f"# published 2026-11-30T00:00:00+00:00\n{digest}  manifest.json\n"
        )


def replace_duplicates(run: Path, rows: list[tuple]) -> None:
    """`run`'s duplicates table replaced by `rows` (group, ImageID, subset,
    kind, evidence, distance, nearest); [] leaves it without one, as a run
    from before duplicates were detected."""
    folder = run / "tables" / "duplicates"
    shutil.rmtree(folder, ignore_errors=True)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["tables"].pop("duplicates", None)
    manifest["rows"].pop("duplicates", None)
    if rows:
        table = pa.Table.from_pylist(
            [dict(zip(DUPLICATES.names, r, strict=True)) for r in rows], DUPLICATES
        )
        folder.mkdir(parents=True)
        path = folder / "part-00000.parquet"
        pq.write_table(table, path)
        data = path.read_bytes()
        entry = {
            "path": "tables/duplicates/part-00000.parquet",
            "rows": len(rows),
            "bytes": len(data),
            "md5": hashlib.md5(data).hexdigest(),
        }
        manifest["tables"]["duplicates"] = {"rows": len(rows), "files": [entry]}
        manifest["rows"]["duplicates"] = len(rows)
    _resign(run, manifest)
