"""A hard deadline for HTTP attempts, and cancellation on close.

urllib3's read timeout bounds each socket read, not the answer: a server that sends a byte just
inside every timeout would hold a call for as long as it likes. A watchdog thread shuts down the
socket of an attempt still waiting for its answer at its deadline (or when the client closes), so
the blocked read returns at once and the attempt fails as TIMEOUT (or CANCELLED).
"""

from __future__ import annotations

import heapq
import socket
import threading
import time
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Attempt:
    """One armed attempt: ``why`` is set when the watchdog shut its socket down."""

    __slots__ = ("deadline", "sock", "why", "done")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.sock: socket.socket | None = None
        self.why: str | None = None
        self.done = False


class Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Attempt]] = []
        self._armed: set[Attempt] = set()
        self._counter = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._local = threading.local()

    def begin(self, deadline: float) -> Attempt:
        """Starts an attempt on this thread; its socket is armed once the request is sent."""
        attempt = Attempt(deadline)
        self._local.attempt = attempt
        return attempt

    def arm(self, sock: socket.socket | None) -> None:
        """Called by the connection after sending, before reading the answer."""
        attempt: Attempt | None = getattr(self._local, "attempt", None)
        if attempt is None or sock is None:
            return
        with self._cond:
            attempt.sock = sock
            if self._closed:
                self._shut(attempt, "CANCELLED")
                return
            self._armed.add(attempt)
            self._counter += 1
            heapq.heappush(self._heap, (attempt.deadline, self._counter, attempt))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="padlock-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def end(self, attempt: Attempt) -> None:
        with self._cond:
            attempt.done = True
            self._armed.discard(attempt)
        self._local.attempt = None

    def close(self) -> None:
        """Shuts down every armed attempt's socket; their calls fail as CANCELLED."""
        with self._cond:
            self._closed = True
            for attempt in list(self._armed):
                self._shut(attempt, "CANCELLED")
            self._armed.clear()
            self._cond.notify()

    def _shut(self, attempt: Attempt, why: str) -> None:
        if attempt.done or attempt.why is not None or attempt.sock is None:
            return
        attempt.why = why
        try:
            attempt.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    _, _, attempt = heapq.heappop(self._heap)
                    if not attempt.done:
                        self._shut(attempt, "TIMEOUT")
                        self._armed.discard(attempt)
                self._cond.wait(None if not self._heap else self._heap[0][0] - now)


def pool_classes(watchdog: Watchdog) -> dict[str, Any]:
    """urllib3 pool classes whose connections arm the watchdog before reading an answer."""

    class Connection(HTTPConnection):
        def getresponse(self) -> Any:
            watchdog.arm(self.sock)
            return super().getresponse()

    class SecureConnection(HTTPSConnection):
        def getresponse(self) -> Any:
            watchdog.arm(self.sock)
            return super().getresponse()

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = SecureConnection

    return {"http": Pool, "https": SecurePool}
