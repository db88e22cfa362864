"""The bounded pool of solver processes, with admission control, deadlines and cancellation.

Pyomo model building holds the GIL for seconds on a large fleet, so solves
run in separate processes (spawned: forking a threaded server is unsafe).
At most `workers` run and `backlog` wait; a request beyond that is refused
at once with 503 and a Retry-After estimated from recent run times, instead
of queueing without bound.  Jobs are not refused: they wait (`wait=True`)
for a free place in the same first-come-first-served line, so a steady
stream of synchronous requests cannot starve them; the job runner bounds
how many places jobs take.

Each process is our own (not a ProcessPoolExecutor, whose tasks cannot be
stopped and whose one dead process breaks every other task): a task whose
caller goes away (a client that disconnects, a server shutting down) kills
its process, and so does a task still running `KILL_GRACE_S` after its hard
deadline (`solvers.deadline.stop_after`); either way only that task ends and
a fresh process takes the place.  Slots are released when the process is
done or dead, not when the request ends, so a client that disconnects never
lets more work in than there are processes.  Processes die with the server,
even by SIGKILL (`tasks.die_with_parent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

from configspec_opt.api.tasks import serve_tasks
from solvers.deadline import stop_after

T = TypeVar("T")
log = logging.getLogger("configspec.pool")
EWMA = 0.2  # weight of the newest run time in the running mean
MAX_RETRY_AFTER = 120
STARTUP_S = 120.0  # a process that has not imported the solver stack by then is given up
KILL_GRACE_S = 5.0  # after the hard deadline, before the process is killed from outside
RESPAWN_BACKOFF_S = (1.0, 30.0)


class PoolFull(Exception):
    """Every process is busy and the backlog is full: answered 503 with `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("all solver processes are busy")
        self.retry_after = retry_after


class WorkerCrashed(Exception):
    """A solver process died while running this task."""


class TaskDeadline(Exception):
    """The task ran past its hard deadline: `what` was still running after `elapsed` s."""

    def __init__(self, what: str, limit: float, elapsed: float) -> None:
        super().__init__(f"{what} did not finish within {limit:g} s")
        self.what = what
        self.limit = limit
        self.elapsed = elapsed


class _Gone(Exception):
    """The process's end of the pipe closed (it exited or was killed)."""


class _Worker:
    """One solver process and the server's end of its pipe."""

    def __init__(self, ctx: Any) -> None:
        ours, theirs = ctx.Pipe(duplex=True)
        self.process: BaseProcess = ctx.Process(target=serve_tasks, args=(theirs, os.getpid()),
                                                name="configspec-solver", daemon=True)
        self.process.start()
        theirs.close()
        self.conn: Connection = ours
        self.tasks = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def wait_ready(self, timeout: float) -> str | None:
        """None once the process is ready, else why not (blocking: run in a thread)."""
        try:
            if not self.conn.poll(timeout):
                return f"not ready after {timeout:g} s"
            message = self.conn.recv()
        except (EOFError, OSError):
            return f"exited with {self.process.exitcode}"
        if message[0] == "ready":
            return None
        return str(message[1])

    def exchange(self, message: tuple[Any, ...]) -> tuple[Any, ...]:
        """Send a task, wait for its reply (blocking: run in a thread)."""
        try:
            self.conn.send(message)
            reply: tuple[Any, ...] = self.conn.recv()
        except (EOFError, OSError) as exc:
            raise _Gone() from exc
        return reply

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self.process.kill()

    def stop(self) -> None:
        """Ask an idle process to exit."""
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)

    def reap(self, timeout: float = 5.0) -> None:
        """Wait for the process to end (killing it if it does not), release the pipe."""
        with contextlib.suppress(OSError, ValueError, AssertionError):
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(timeout)
        with contextlib.suppress(OSError):
            self.conn.close()


class SolverPool:
    """At most `workers` solver processes and `backlog` waiting requests; see the module docstring.

    Built outside the event loop, but `start` must run inside it: the pool
    binds to the running loop for its waiters and background reaping.
    """

    def __init__(self, workers: int, backlog: int, max_tasks_per_child: int | None,
                 default_limit: float | None = None) -> None:
        self.workers = workers
        self.capacity = workers + backlog
        self.default_limit = default_limit  # deadline of a task that names none
        self._max_tasks = max_tasks_per_child
        self._ctx = multiprocessing.get_context("spawn")
        self._threads: ThreadPoolExecutor | None = None
        self._all: set[_Worker] = set()
        self._idle: deque[_Worker] = deque()
        self._waiters: deque[asyncio.Future[_Worker]] = deque()
        self._background: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        self._freed = asyncio.Event()
        self._mean_s = 1.0
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def in_flight(self) -> int:
        """Tasks admitted and not yet released: running, or waiting for a process."""
        return self._in_flight

    def worker_pids(self) -> list[int]:
        """Process ids of the solver processes now alive (for tests and probes)."""
        return sorted(p for w in self._all if (p := w.pid) is not None
                      and w.process.is_alive())

    def live_workers(self) -> int:
        """How many solver processes are alive now; /readyz is unready below `workers`."""
        return len(self.worker_pids())

    async def start(self) -> None:
        """Start every process now, so the first requests do not pay for imports."""
        self._loop = asyncio.get_running_loop()
        # one thread per process waits on its pipe, plus room to reap replaced ones
        self._threads = ThreadPoolExecutor(2 * self.workers + 2,
                                           thread_name_prefix="solver-pipe")
        started = [self._spawn() for _ in range(self.workers)]
        problems = await asyncio.gather(*(self._in_thread(w.wait_ready, STARTUP_S)
                                          for w in started))
        failed = [p for p in problems if p is not None]
        if failed:
            self.shutdown()
            raise RuntimeError(f"a solver process failed to start: {failed[0]}")
        for w in started:
            self._give(w)

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: queue length times mean run time."""
        waiting = max(1, self._in_flight - self.workers + 1)
        return max(1, min(MAX_RETRY_AFTER, math.ceil(self._mean_s * waiting / self.workers)))

    async def run(self, fn: Callable[..., T], *args: Any, wait: bool = False,
                  limit: float | None = None) -> T:
        """`fn(*args)` in a solver process, within `limit` seconds (default: the pool's).

        Raises PoolFull (no room, `wait=False`), WorkerCrashed (the process
        died), TaskDeadline (still running at its hard deadline), or what
        `fn` raised.  Cancelling the caller kills the process running it.
        """
        if wait:
            while self._in_flight >= self.capacity:
                self._freed.clear()
                await self._freed.wait()
        elif self._in_flight >= self.capacity:
            raise PoolFull(self.retry_after())
        if self._closed or self._threads is None:
            raise RuntimeError("solver pool not started")
        limit = limit if limit is not None else self.default_limit
        self._in_flight += 1
        started = time.perf_counter()
        ok = False
        try:
            worker = await self._acquire()
            reply = await self._exchange(worker, (fn, args, limit), limit)
            if reply[0] == "deadline":
                self._retire(worker)  # it exits by itself; a fresh one replaces it
                raise TaskDeadline(str(reply[1]), float(reply[2]), float(reply[3]))
            self._done_with(worker)
            if reply[0] == "error":
                raise reply[1]
            ok = True
            value: T = reply[1]
            return value
        finally:
            self._in_flight -= 1
            if ok:
                self._mean_s = (1 - EWMA) * self._mean_s + EWMA * (time.perf_counter() - started)
            self._freed.set()

    async def _exchange(self, worker: _Worker, message: tuple[Any, ...],
                        limit: float | None) -> tuple[Any, ...]:
        """The reply of `worker` to `message`; the process is killed if the wait ends early."""
        assert self._loop is not None and self._threads is not None
        fut = self._loop.run_in_executor(self._threads, worker.exchange, message)
        fut.add_done_callback(_consume)
        kill_after = None if limit is None else stop_after(limit) + KILL_GRACE_S
        try:
            return await asyncio.wait_for(asyncio.shield(fut), kill_after)
        except asyncio.TimeoutError:
            self._discard(worker)
            log.warning("solver process %s killed: still running %.0f s after the start of "
                        "a task limited to %g s", worker.pid, kill_after, limit)
            raise TaskDeadline("the solver process", float(limit or 0.0),
                               float(kill_after or 0.0)) from None
        except _Gone:
            self._discard(worker)
            raise WorkerCrashed() from None
        except BaseException:  # cancelled (client gone, shutdown): stop the work now
            self._discard(worker)
            raise

    async def _acquire(self) -> _Worker:
        if self._idle:
            return self._idle.popleft()
        assert self._loop is not None
        fut: asyncio.Future[_Worker] = self._loop.create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._give(fut.result())  # handed over just as we gave up: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def _give(self, worker: _Worker) -> None:
        """A ready process: to the first caller waiting, else to the idle line."""
        if self._closed:
            worker.stop()
            return
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(worker)
                return
        self._idle.append(worker)

    def _done_with(self, worker: _Worker) -> None:
        worker.tasks += 1
        if self._max_tasks is not None and worker.tasks >= self._max_tasks:
            worker.stop()  # recycle: memory stays flat
            self._retire(worker)
        else:
            self._give(worker)

    def _discard(self, worker: _Worker) -> None:
        """Kill a process whose task is over early, and start its replacement."""
        worker.kill()
        self._retire(worker)

    def _retire(self, worker: _Worker) -> None:
        self._all.discard(worker)
        if self._threads is not None:
            with contextlib.suppress(RuntimeError):  # executor shut down
                self._threads.submit(worker.reap)
        if not self._closed:
            self._background_task(self._replace())

    async def _replace(self, attempt: int = 0) -> None:
        worker = self._spawn()
        problem = await self._in_thread(worker.wait_ready, STARTUP_S)
        if problem is None:
            self._give(worker)
            return
        log.error("a replacement solver process failed to start: %s", problem)
        worker.kill()
        self._all.discard(worker)
        await self._in_thread(worker.reap)
        low, high = RESPAWN_BACKOFF_S
        await asyncio.sleep(min(high, low * 2 ** attempt))
        if not self._closed:
            await self._replace(attempt + 1)

    def _spawn(self) -> _Worker:
        worker = _Worker(self._ctx)
        self._all.add(worker)
        return worker

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._loop is not None and self._threads is not None
        return await self._loop.run_in_executor(self._threads, fn, *args)

    def _background_task(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def shutdown(self) -> None:
        """Stop now: waiting callers are cancelled, idle processes exit, busy ones are killed.

        A job interrupted here stays `running` in the database and is
        re-queued at the next start.
        """
        if self._closed:
            return
        self._closed = True
        for fut in self._waiters:
            fut.cancel()
        self._waiters.clear()
        for task in self._background:
            task.cancel()
        idle = set(self._idle)
        self._idle.clear()
        workers = list(self._all)
        self._all.clear()
        for w in workers:
            if w in idle:
                w.stop()
            else:
                w.kill()
        for w in workers:
            w.reap(timeout=5.0)
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)


def _consume(fut: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of an exchange nobody waits for any more (a killed process)."""
    if not fut.cancelled():
        fut.exception()
