"""Delayed jobs on a small thread pool: what the EventBridge emulation (deliveries and their
retries) and Lambda's asynchronous invocation queue (invocations and their retries) both run on.

Jobs are plain callables run at a due time (the injected clock's seconds); :meth:`wait_idle` lets
tests block until nothing is pending or running, retries included. Threads rather than asyncio:
targets are blocking calls (a function invocation, an HTTP endpoint), and tests drive the bus
without an event loop.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

log = logging.getLogger("local_stack.scheduler")


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``n`` (1-based): ``min(cap, base * factor**(n-1))``, full jitter.

    AWS backs off over minutes to hours; the local defaults are compressed so a failing target
    reaches its dead-letter queue in seconds, and tests pass ``Backoff(base_s=0.001)``.
    """

    base_s: float = 0.2
    factor: float = 2.0
    cap_s: float = 5.0
    jitter: bool = True

    def delay(self, retry: int, rng: random.Random) -> float:
        ceiling = min(self.cap_s, self.base_s * self.factor ** max(retry - 1, 0))
        return rng.uniform(0, ceiling) if self.jitter else ceiling


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    run: Callable[[], None] = field(compare=False)


class DelayedExecutor:
    """Runs callables at their due time on ``workers`` threads. Thread-safe."""

    def __init__(self, name: str, *, workers: int = 4, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.clock = clock
        self._workers = workers
        self._lock = threading.Condition()
        self._heap: list[_Job] = []
        self._running = 0
        self._seq = itertools.count()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._closed = False
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self.name)
            self._thread = threading.Thread(target=self._loop, name=f"{self.name}-scheduler", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            thread, pool = self._thread, self._pool
            self._thread = self._pool = None
        if thread is not None:
            thread.join(timeout)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, due: float, run: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._heap, _Job(due, next(self._seq), run))
            self._lock.notify_all()

    def tick(self) -> None:
        """Wake the scheduler now (tests with an injected clock call it after moving time on)."""
        with self._lock:
            self._lock.notify_all()

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._heap or self._running)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no job is pending or running. True if idle."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._heap or self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.5))
            return True

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._closed:
                    if self._heap:
                        wait = self._heap[0].due - self.clock()
                        if wait <= 0:
                            break
                        self._lock.wait(min(wait, 0.5))
                    else:
                        self._lock.wait(0.5)
                if self._closed:
                    return
                job = heapq.heappop(self._heap)
                self._running += 1
                pool = self._pool
            assert pool is not None
            try:
                pool.submit(self._run, job)
            except RuntimeError:  # the pool shut down while closing
                self._done()
                return

    def _run(self, job: _Job) -> None:
        try:
            job.run()
        except Exception:  # a job's failure is its own business; the executor keeps going
            log.exception("%s: job failed", self.name)
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._running -= 1
            self._lock.notify_all()
