"""Tasks started ahead and their results taken back in the order they were
given (no Beam, no I/O here).

Up to `window` tasks are in flight (their future not done), and more start
while the first is awaited, as any others finish: a slow task at the head does
not idle the rest. Tasks started and not yet taken weigh (`weight`) at most
`budget` in all (one task always goes), which bounds the bytes a worker holds.
Items can be fed at any time, so one line can run across several shards: the
next shard's fetches fill the window while the last one's tail drains.

A task is what `start(item)` returns: an object with `.future` (a
concurrent.futures.Future, or None when nothing is in flight) and `.result()`.
Each finished future is counted once, from a queue its done-callback feeds:
the cost per task does not grow with the window.
"""

from __future__ import annotations

import collections
import queue
from collections.abc import Callable, Iterable, Iterator


class InOrder:
    """A line of tasks, taken back in feeding order (one consumer thread)."""

    def __init__(
        self,
        start: Callable,
        window: int,
        weight: Callable | None = None,
        budget: float = float("inf"),
    ) -> None:
        self._start, self._window = start, window
        self._weight, self._budget = weight, budget
        self._sources: collections.deque[Iterator] = collections.deque()
        self._next: list = []  # an item pulled from a source, not started yet
        self._pending: collections.deque = collections.deque()  # (item, task, w)
        self._finished: queue.SimpleQueue = queue.SimpleQueue()
        self._held = 0.0
        self._flying = 0  # started futures not yet taken from _finished

    def feed(self, items: Iterable) -> None:
        """Adds items after those fed before (pulled as slots free up)."""
        self._sources.append(iter(items))

    def __bool__(self) -> bool:
        """Whether anything fed is still to be taken."""
        return bool(self._pending) or self._peek() is not None

    def refill(self) -> None:
        """Starts fed items while the window and the budget allow."""
        self._flying -= self._count_finished()
        while self._flying < self._window:
            following = self._peek()
            if following is None:
                return
            item = following[0]
            w = self._weight(item) if self._weight else 0.0
            if self._pending and self._held + w > self._budget:
                return
            self._next.clear()
            task = self._start(item)
            self._pending.append((item, task, w))
            self._held += w
            if task.future is not None:
                self._flying += 1
                task.future.add_done_callback(self._finished.put)

    def take(self, unless_starving: bool = False):
        """(item, its task's result) of the first item not yet taken; waits
        for it, starting others as slots free up. IndexError if none.
        `unless_starving`: None instead of waiting once every item fed has
        started (time to feed more, before the window drains)."""
        while True:
            self.refill()
            item, task, w = self._pending[0]
            head = task.future
            if head is not None and not head.done():
                more = self._peek() is not None
                if more and self._flying >= self._window:  # a slot frees when
                    self._finished.get()  # any finishes
                    self._flying -= 1
                    continue
                if not more and unless_starving:
                    return None
            self._pending.popleft()
            self._held -= w
            return item, task.result()

    def _peek(self) -> list | None:
        """[the next item to start], or None when every source is spent."""
        while not self._next and self._sources:
            try:
                self._next.append(next(self._sources[0]))
            except StopIteration:
                self._sources.popleft()
        return self._next or None

    def _count_finished(self) -> int:
        n = 0
        while True:
            try:
                self._finished.get_nowait()
            except queue.Empty:
                return n
            n += 1


def in_order(start, items, window: int, weight=None, budget: float = float("inf")):
    """Yields (item, start(item).result()) in input order (see InOrder)."""
    line = InOrder(start, window, weight, budget)
    line.feed(items)
    while line:
        yield line.take()
