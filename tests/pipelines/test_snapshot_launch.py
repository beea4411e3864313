"""What the snapshot launcher decides before building the pipeline."""

from __future__ import annotations

from types import SimpleNamespace

from oibeam.pipelines.snapshot import Launch, images_to_fetch
from oibeam.transforms.refresh.plan_refresh import RefreshRules
from oibeam.transforms.refresh.previous_snapshot import PreviousSnapshot


def _launch(expected, previous_ok=None, same_bytes=True) -> Launch:
    selection = SimpleNamespace(expected=lambda rows: expected)
    previous = (
        None
        if previous_ok is None
        else PreviousSnapshot("/r/s1", "s1", (), {}, ok_images=previous_ok)
    )
    return Launch(
        config=SimpleNamespace(selection=selection),
        plan=SimpleNamespace(image_rows=None),
        latest=None,
        previous=previous,
        rules=RefreshRules(same_bytes=same_bytes),
        resumed=False,
    )


def test_a_refresh_expects_to_fetch_what_the_parent_lacks():
    """Local workers run as processes from 20,000 images to fetch: a refresh
    of 100,000 whose parent has 99,000 fetches about 1,000, so threads."""
    assert images_to_fetch(_launch(100_000)) == 100_000
    assert images_to_fetch(_launch(100_000, previous_ok=99_000)) == 1_000
    assert images_to_fetch(_launch(100, previous_ok=500)) == 0
    assert images_to_fetch(_launch(None, previous_ok=500)) is None
    # Other fetch options: nothing is shared, everything is fetched again.
    assert images_to_fetch(_launch(100_000, 99_000, same_bytes=False)) == 100_000
