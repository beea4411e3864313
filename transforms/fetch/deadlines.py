"""Hard deadlines for blocking socket work: a watchdog that shuts sockets down.

Socket timeouts bound one read; a server that trickles a byte just inside the
timeout keeps a read going for ever. `Deadlines.arm(when, sock)` makes a daemon
thread shut the socket down at `when`, which ends any blocked send or recv on it
at once (an EOF or an error in the thread that waits). `Alarm.disarm()` says
whether it fired; a socket whose alarm fired must not be used again.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time


class Alarm:
    """One armed deadline (see Deadlines.arm)."""

    __slots__ = ("_owner", "sock", "armed", "fired")

    def __init__(self, owner: Deadlines, sock) -> None:
        self._owner = owner
        self.sock = sock
        self.armed = True
        self.fired = False

    def disarm(self) -> bool:
        """Stops the alarm; True if it had already fired."""
        with self._owner._lock:
            if self.armed:
                self.armed = False
                self._owner._armed -= 1
            self.sock = None
            return self.fired


class Deadlines:
    """A heap of alarms served by one lazily started daemon thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Alarm]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._armed = 0  # alarms not yet disarmed or fired

    def pending(self) -> int:
        return self._armed

    def arm(self, when: float, sock) -> Alarm:
        """Shut `sock` down at monotonic time `when` unless disarmed before."""
        alarm = Alarm(self, sock)
        with self._lock:
            if len(self._heap) > 2 * self._armed + 1024:  # mostly disarmed ones
                self._heap = [entry for entry in self._heap if entry[2].armed]
                heapq.heapify(self._heap)
            self._armed += 1
            first = not self._heap or when < self._heap[0][0]
            heapq.heappush(self._heap, (when, next(self._order), alarm))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="oibeam-deadlines", daemon=True
                )
                self._thread.start()
            elif first:
                self._wake.notify()
        return alarm

    def _run(self) -> None:
        with self._lock:
            while True:
                while self._heap and not self._heap[0][2].armed:
                    heapq.heappop(self._heap)  # disarmed: forget
                if not self._heap:
                    self._wake.wait()
                    continue
                when, _, alarm = self._heap[0]
                wait = when - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)
                alarm.fired, alarm.armed = True, False
                self._armed -= 1
                try:  # the plain socket's shutdown: SSLSocket's drops its state
                    socket.socket.shutdown(alarm.sock, socket.SHUT_RDWR)
                except OSError:  # already closed or never connected
                    pass
                alarm.sock = None


DEADLINES = Deadlines()
