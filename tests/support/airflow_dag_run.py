"""Run by the Python of an Airflow install, for tests/e2e/test_examples.py.

Loads examples/airflow with Airflow's own DagBag, then does what the Beam
operator's execute() does on Dataflow, with the provider's own code: render the
task's templates, add the Dataflow options (job name, project, region, the
airflow-version job label), and let its BeamHook build the command line and run
the py_file. Left out: the launcher's virtualenv (PIPELINE_PYTHON already has
oibeam) and waiting on the Dataflow API for the job to finish.

usage: airflow_dag_run.py DAG_FOLDER RUN_DATE PIPELINE_PYTHON [OPTION=VALUE ...]
"""

from __future__ import annotations

import logging
import sys

from airflow.dag_processing.dagbag import DagBag
from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator


def main(folder: str, run_date: str, python: str, extra: list[str]) -> int:
    bag = DagBag(dag_folder=folder)
    if bag.import_errors:
        print(f"import errors: {bag.import_errors}", file=sys.stderr)
        return 3
    task = bag.dags["oibeam_nightly_snapshot"].get_task("snapshot")
    assert isinstance(task, BeamRunPythonPipelineOperator), type(task)
    task.render_template_fields({"ds_nodash": run_date})
    task._cast_dataflow_config()
    is_dataflow, _, options, on_line, _ = task._init_pipeline_options(
        format_pipeline_options=True, job_name_variable_key="job_name"
    )
    assert is_dataflow, task.runner
    options |= dict(item.split("=", 1) for item in extra)
    task.beam_hook.start_python_pipeline(
        variables=options,
        py_file=task.py_file,
        py_options=task.py_options,
        py_interpreter=python,
        process_line_callback=on_line,
    )
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
