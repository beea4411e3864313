"""Claims held by another thread, as a concurrent `oibeam gc` holds its own."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from oibeam.transforms.publish.claim import claimed_name


@contextlib.contextmanager
def claim_held(root: str, name: str, seconds: float) -> Iterator[list[float]]:
    """Holds the claim `name` on `root` in another thread for `seconds`, from
    before the block starts; yields a list that gets the release time."""
    held, released = threading.Event(), []

    def hold() -> None:
        with claimed_name(root, name):
            held.set()
            time.sleep(seconds)
            released.append(time.monotonic())

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    try:
        yield released
    finally:
        thread.join()
