"""Airflow DAG: refresh the Open Images snapshot nightly on Dataflow.

Copy this file and oibeam_snapshot_job.py (its py_file) into the DAGs folder.
Needs apache-airflow-providers-apache-beam, and apache-airflow-providers-google
where it runs on Dataflow (Cloud Composer has both). The snapshot id is the run's
date, so an Airflow retry resumes the same snapshot (its committed shards are
kept) and a finished day is never rebuilt; `--previous latest` makes each
night a refresh of the one before (only new, changed and retryable images are
fetched). The values below come from the environment; edit them or use
Airflow Variables.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from airflow import DAG
from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator

PROJECT = os.environ.get("OIBEAM_PROJECT", "my-project")
REGION = os.environ.get("OIBEAM_REGION", "us-central1")
BUCKET = os.environ.get("OIBEAM_BUCKET", "my-openimages-bucket")
RELEASE = os.environ.get("OIBEAM_RELEASE", f"gs://{BUCKET}/openimages/v1")
# The worker image built from examples/dataflow/Dockerfile.
IMAGE = os.environ.get(
    "OIBEAM_IMAGE", f"{REGION}-docker.pkg.dev/{PROJECT}/oibeam/worker:0.1.0"
)
# What pip installs in the launcher's virtualenv: the same oibeam (and so the
# same Beam) as the worker image, e.g. a wheel URL or a private index name.
OIBEAM_REQUIREMENT = os.environ.get("OIBEAM_REQUIREMENT", "oibeam==0.1.0")

# oibeam snapshot's flags, as the operator passes them: --key=value, a list
# repeats the flag. Label CSVs go as `label_files`: on Dataflow the operator
# adds job labels as --labels=KEY=VALUE, and oibeam_snapshot_job.py tells the
# two apart.
SNAPSHOT_OPTIONS = {
    "images": [f"{RELEASE}/images/*.csv"],
    "label_files": [f"{RELEASE}/labels/*.csv"],
    "classes": [f"{RELEASE}/dict.csv"],
    "trainable-only": True,
    "output": f"gs://{BUCKET}/snapshots",
    "snapshot-id": "{{ ds_nodash }}",
    "previous": "latest",
    "temp_location": f"gs://{BUCKET}/tmp",
    "sdk_container_image": IMAGE,
}

with DAG(
    dag_id="oibeam_nightly_snapshot",
    description="Refresh the Open Images snapshot on Dataflow",
    schedule="17 2 * * *",  # 02:17 UTC
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    max_active_runs=1,  # the first, full snapshot can outlast a day
    default_args={"retries": 2, "retry_delay": datetime.timedelta(minutes=30)},
    tags=["openimages", "dataflow"],
) as dag:
    BeamRunPythonPipelineOperator(
        task_id="snapshot",
        runner="DataflowRunner",
        py_file=str(Path(__file__).with_name("oibeam_snapshot_job.py")),
        py_requirements=[OIBEAM_REQUIREMENT],
        py_interpreter="python3",
        pipeline_options=SNAPSHOT_OPTIONS,
        # A dict (not DataflowConfiguration) so the DAG parses without the
        # Google provider; the operator converts it when it runs.
        dataflow_config={
            "job_name": "oibeam-snapshot",
            "project_id": PROJECT,
            "location": REGION,
            "wait_until_finished": True,
        },
    )
