"""`oibeam plan`: what it writes under its --output DIR.

DIR/tables/selected/*.parquet: one row per image a fetch with the same flags
would select (SELECTED_ROWS), which the counts and the probe are taken from.

DIR/plan.json (PLAN_VERSION 1):
    version, created, options (the parsed flags)
    selection: images, bytes (sum of OriginalSize: the originals' sizes, also
        when thumbnails are fetched), unknown_size (rows without one),
        per_subset and per_host: {name: {images, bytes, unknown_size}}
    probe (null with --probe 0): sample, seed, timeout_s, elapsed_s, method,
        overall and per_host: {probed, unfinished, not_probed, outcomes:
        {ok|gone|changed|failed: {count, share, ci95: [low, high]}},
        failures: {status: count}, latency_ms: {median, p90}}
    projection: workers, throughput {images_per_second,
        megabytes_per_second}, images_per_second_per_worker, mean_image_bytes,
        hours, ok_share_assumed, bytes_written, prices {worker_hour,
        storage_gb_month, months, as_of}, cost_usd {workers, storage, total}
"""

from __future__ import annotations

import pyarrow as pa

PLAN_JSON = "plan.json"
PLAN_VERSION = 1
SELECTED = "selected"  # the table of the selection, DIR/tables/selected

SELECTED_ROWS = pa.schema(
    [
        pa.field("ImageID", pa.string(), nullable=False),
        pa.field("Subset", pa.string()),
        pa.field("OriginalSize", pa.int64()),
        pa.field("OriginalMD5", pa.string()),
        # the URL the fetch would use (--image-source, --url-template); null: none
        pa.field("url", pa.string()),
        # whether the fetch would check the bytes against OriginalSize and
        # OriginalMD5 (not for thumbnails, nor with --verify decode)
        pa.field("verify", pa.bool_()),
    ]
)
