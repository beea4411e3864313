"""The snapshot contract: how a refresh classifies each image, the diff table,
and the names that publish a snapshot.

Every image selected now or present in the previous snapshot gets one diff row:
its `change` (what happened to it between the snapshots), the `action` this run
took, and the `reason` for both.
"""

from __future__ import annotations

import re

import pyarrow as pa

MANIFEST = "manifest.json"  # what a run wrote, listed with checksums
SUCCESS = "_SUCCESS"  # written after the manifest: the snapshot is complete
LATEST = "LATEST"  # under the snapshot root: the id of the newest snapshot
POOL = "pool"  # under the snapshot root: shards shared by its snapshots
# In ROOT/pool/W: snapshot W was expired by `oibeam gc` while later snapshots
# still share its shards, so the id W may not be used again.
EXPIRED = "_EXPIRED"
SNAPSHOT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Names under the root that are not snapshots (`gc`: ROOT/.gc.claim is gc's).
RESERVED_IDS = (LATEST, POOL, "gc")

# change -> meaning
CHANGES: dict[str, str] = {
    "added": "selected now, not in the previous snapshot",
    "removed": "in the previous snapshot, not selected now (see reason)",
    "changed": "its OriginalMD5/OriginalSize, labels or metadata changed",
    "carried": "unchanged; the previous outcome carries over",
    "refetched": "unchanged, but fetched again (an earlier failure, or new options)",
}

# action -> meaning
ACTIONS: dict[str, str] = {
    "fetch": "downloaded (and verified) in this run",
    "share": "bytes left where they are, in a shard of the pool the previous "
    "snapshot also uses",
    "copy": "bytes copied from the previous snapshot's own shard (one written "
    "before shards were pooled) into this snapshot's, and verified again",
    "keep": "a final failure of the previous snapshot, kept as it was",
    "drop": "left out of this snapshot",
}

# reason -> meaning
REASONS: dict[str, str] = {
    "new": "no previous snapshot had this image",
    "not_in_release": "the input no longer has this image",
    "not_selected": "the input has it, the selection no longer picks it",
    "eval_duplicate": "the input has it, but it is a train image that duplicates "
    "a validation or test image, dropped by --drop-eval-duplicates (the "
    "manifest's `dropped` counts say by what)",
    "bytes_changed": "OriginalMD5 or OriginalSize differs: the image was replaced",
    "metadata_changed": "labels or other columns differ (listed in changed_columns)",
    "unchanged": "nothing that matters changed",
    "retryable_failure": "the previous attempt failed with a retryable status",
    "retry_all": "a final failure, retried because of --retry-all",
    "options_changed": "--source, --url-template or --verify differ from the "
    "previous snapshot's, so its bytes are not this run's",
    "final_failure": "the previous attempt failed for good (not retryable)",
    "bytes_missing": "the previous snapshot says ok but its shard lacks the bytes",
}

DIFF = pa.schema(
    [
        pa.field("ImageID", pa.string(), nullable=False),
        pa.field("change", pa.string(), nullable=False),
        pa.field("action", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("changed_columns", pa.list_(pa.string())),
        pa.field("previous_status", pa.string()),
        pa.field("previous_shard", pa.string()),
    ]
)

# tables/deleted: images whose bytes sit in a shard this snapshot uses but
# which are not part of it (removed, or fetched again into a newer shard).
# Every reader of the snapshot skips them; `oibeam gc` erases their bytes once
# no kept snapshot has them.
DELETED = pa.schema(
    [
        pa.field("ImageID", pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),
    ]
)
