"""The bounded pool of solver processes, with admission control.

Pyomo model building holds the GIL for seconds on a large fleet, so solves
run in separate processes (spawned: forking a threaded server is unsafe).
At most `workers` run and `backlog` wait; a request beyond that is refused
at once with 503 and a Retry-After estimated from recent run times, instead
of queueing without bound.  Jobs are not refused: they wait (`wait=True`)
for a free place in the same first-come-first-served line, so a steady
stream of synchronous requests cannot starve them; the job runner bounds
how many places jobs take.

Slots are released when the worker finishes, not when the request ends, so
a client that disconnects does not let more work in than there are
processes.  A worker that dies (OOM killer) breaks a ProcessPoolExecutor
for good; the pool is then rebuilt and the affected requests get 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from configspec_opt.api.tasks import init_worker, warm

T = TypeVar("T")
EWMA = 0.2  # weight of the newest run time in the running mean
MAX_RETRY_AFTER = 120


class PoolFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("all solver processes are busy")
        self.retry_after = retry_after


class WorkerCrashed(Exception):
    """A solver process died while running this task."""


class SolverPool:
    def __init__(self, workers: int, backlog: int, max_tasks_per_child: int | None) -> None:
        self.workers = workers
        self.capacity = workers + backlog
        self._max_tasks = max_tasks_per_child
        self._executor: ProcessPoolExecutor | None = None
        self._in_flight = 0
        self._freed = asyncio.Event()
        self._mean_s = 1.0
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _new_executor(self) -> ProcessPoolExecutor:
        recycle: dict[str, Any] = {}
        if sys.version_info >= (3, 11):  # Python 3.10 cannot recycle workers
            recycle["max_tasks_per_child"] = self._max_tasks
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_worker, **recycle)

    async def start(self) -> None:
        """Start every process now, so the first requests do not pay for imports."""
        self._loop = asyncio.get_running_loop()
        self._executor = self._new_executor()
        await asyncio.gather(*(asyncio.wrap_future(self._executor.submit(warm))
                               for _ in range(self.workers)))

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: queue length times mean run time."""
        waiting = max(1, self._in_flight - self.workers + 1)
        return max(1, min(MAX_RETRY_AFTER, math.ceil(self._mean_s * waiting / self.workers)))

    async def run(self, fn: Callable[..., T], *args: Any, wait: bool = False) -> T:
        if wait:
            while self._in_flight >= self.capacity:
                self._freed.clear()
                await self._freed.wait()
        elif self._in_flight >= self.capacity:
            raise PoolFull(self.retry_after())
        executor = self._executor
        if executor is None:
            raise RuntimeError("solver pool not started")
        self._in_flight += 1
        started = time.perf_counter()
        try:
            fut: Future[T] = executor.submit(fn, *args)
        except BrokenProcessPool:
            self._release(started, ok=False)
            self._rebuild(executor)
            raise WorkerCrashed() from None
        fut.add_done_callback(lambda f: self._threadsafe_release(started, f))
        try:
            return await asyncio.wrap_future(fut)
        except BrokenProcessPool:
            self._rebuild(executor)
            raise WorkerCrashed() from None

    def _threadsafe_release(self, started: float, fut: Future[Any]) -> None:
        ok = not fut.cancelled() and fut.exception() is None
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            self._loop.call_soon_threadsafe(self._release, started, ok)

    def _release(self, started: float, ok: bool) -> None:
        self._in_flight -= 1
        if ok:
            self._mean_s = (1 - EWMA) * self._mean_s + EWMA * (time.perf_counter() - started)
        self._freed.set()

    def _rebuild(self, broken: ProcessPoolExecutor) -> None:
        if self._executor is broken:
            broken.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()

    def shutdown(self) -> None:
        """Stop now: queued tasks are cancelled and running solves are terminated.

        A job interrupted here stays `running` in the database and is
        re-queued at the next start.
        """
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if self._in_flight == 0:
            executor.shutdown(wait=True)
            return
        processes = list(getattr(executor, "_processes", {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            if p.is_alive():
                p.terminate()
        for p in processes:
            p.join(timeout=5)
        executor.shutdown(wait=True)  # let the executor's thread release its queues
