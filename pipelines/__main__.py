"""`python -m pipelines ...` is `oibeam ...`."""

import sys

from pipelines.cli import main

sys.exit(main())
