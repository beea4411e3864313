"""in_order: results in input order; a slow head does not idle the window;
the weight budget bounds what is held."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

from oibeam.transforms.fetch.in_order import in_order


class _Task:
    def __init__(self, future: Future) -> None:
        self.future = future

    def result(self):
        return self.future.result()


def test_a_slow_head_does_not_idle_the_window():
    started, peak, when_head_done = [], [0], []
    live = set()
    lock = threading.Lock()

    def start(i: int) -> _Task:
        future: Future = Future()
        with lock:
            started.append(i)
            live.add(i)
            peak[0] = max(peak[0], len(live))

        def finish() -> None:
            time.sleep(0.5 if i == 0 else 0.01)  # item 0 is slow
            with lock:
                live.discard(i)
                if i == 0:
                    when_head_done.append(len(started))
            future.set_result(i * 10)

        threading.Thread(target=finish, daemon=True).start()
        return _Task(future)

    out = list(in_order(start, range(40), window=4))
    assert out == [(i, i * 10) for i in range(40)]
    assert peak[0] <= 4
    # While item 0 took 0.5 s, the others kept flowing through the 3 free
    # slots: all 40 had started before it finished (with the head holding
    # the window, only 4 would have).
    assert when_head_done == [40]


def test_the_budget_bounds_what_is_held():
    held, peak = [0], [0]

    def start(i: int) -> _Task:
        future: Future = Future()
        future.set_result(i)
        held[0] += 1
        peak[0] = max(peak[0], held[0])
        return _Task(future)

    for _ in in_order(start, range(50), window=100, weight=lambda i: 10, budget=30):
        held[0] -= 1
    assert peak[0] == 3
