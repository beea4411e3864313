"""`python -m oibeam.pipelines ...` is `oibeam ...`."""

import sys

from oibeam.pipelines.cli import main

sys.exit(main())
