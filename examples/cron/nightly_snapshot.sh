#!/usr/bin/env bash
# Refresh the Open Images snapshot on Dataflow: run nightly by examples/cron/crontab.
#
# Each night is snapshot YYYYMMDD (UTC) under gs://$OIBEAM_BUCKET/snapshots,
# refreshed from the one LATEST names: only new, changed and retryable images
# are fetched, the rest stay in the shards the snapshots share. Rerunning the same
# day resumes that snapshot (committed shards are kept); rerunning a finished
# one is refused, so a doubled cron run cannot overwrite anything.
#
# Extra arguments are passed on to oibeam (e.g. --dry_run True to build the
# Dataflow job without running it).
set -euo pipefail

: "${OIBEAM_PROJECT:?the Google Cloud project}"
: "${OIBEAM_REGION:?the Dataflow region, e.g. us-central1}"
: "${OIBEAM_BUCKET:?the bucket holding the release CSVs and the snapshots}"
: "${OIBEAM_IMAGE:?the worker image built from examples/dataflow/Dockerfile}"
release="${OIBEAM_RELEASE:-gs://$OIBEAM_BUCKET/openimages/v1}"
day="$(date -u +%Y%m%d)"

exec "${OIBEAM:-oibeam}" snapshot \
    --images "$release/images/*.csv" \
    --labels "$release/labels/*.csv" \
    --classes "$release/dict.csv" \
    --trainable-only \
    --output "gs://$OIBEAM_BUCKET/snapshots" \
    --snapshot-id "$day" \
    --previous latest \
    --runner DataflowRunner \
    --project "$OIBEAM_PROJECT" \
    --region "$OIBEAM_REGION" \
    --temp_location "gs://$OIBEAM_BUCKET/tmp" \
    --sdk_container_image "$OIBEAM_IMAGE" \
    --job_name "oibeam-snapshot-$day" \
    --job-label schedule=nightly \
    "$@"
