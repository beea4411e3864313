"""The py_file of oibeam_nightly_snapshot.py: `oibeam snapshot` with the
operator's flags.

On Dataflow the Beam operator always adds the job labels as
`--labels=KEY=VALUE`, while `oibeam snapshot --labels` names the label CSVs.
The DAG passes the CSVs as `--label_files=PATTERN`, so here every `--labels`
is a job label (oibeam's `--job-label`) and `--label_files` is `--labels`.
"""

from __future__ import annotations

import sys


def oibeam_argv(argv: list[str]) -> list[str]:
    """The operator's arguments -> `oibeam snapshot`'s."""
    out = []
    for arg in argv:
        if arg.startswith("--labels="):
            out.append("--job-label=" + arg.removeprefix("--labels="))
        elif arg.startswith("--label_files="):
            out.append("--labels=" + arg.removeprefix("--label_files="))
        else:
            out.append(arg)
    return out


if __name__ == "__main__":
    from oibeam.pipelines.cli import main

    sys.exit(main(["snapshot", *oibeam_argv(sys.argv[1:])]))
