"""The small release both the manifest and the reconciliation tests read."""

import pytest

from support.run_counts import write_plan


@pytest.fixture
def plan(tmp_path):
    return write_plan(tmp_path)
