"""The retention policy applied by the running server: at start-up, then hourly.

The rules are `store/retention.py`'s; this only schedules them.  A prune
that fails (a locked or full database) is logged and tried again at the
next tick: retention is housekeeping, never a reason to stop serving.
Observation buckets older than the drift window go at every tick whatever
the retention options (store/observations.py: that is what bounds the window).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from configspec_opt.api.settings import Settings
from configspec_opt.store.database import Database
from configspec_opt.store.observations import prune as prune_observations
from configspec_opt.store.retention import prune

log = logging.getLogger("configspec.api")
INTERVAL_S = 3600.0


class Pruner:
    """Runs the retention policy (--keep-days, --keep-results) in the server's event loop,
    and forgets observations past the drift window."""

    def __init__(self, db: Database, settings: Settings, interval_s: float = INTERVAL_S) -> None:
        self.db = db
        self.days = settings.keep_days
        self.keep = settings.keep_results
        self.window_s = settings.drift_window_s
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """False when both limits are off (0 on the command line): then only observations are
        pruned."""
        return self.days is not None or self.keep is not None

    def start(self) -> None:
        """Prune now and every `interval_s`; call from inside the running event loop."""
        self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        """Cancel the schedule and wait for the task to end, so shut-down leaves no task behind."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> None:
        """One prune; a failure is logged, never raised (see the module docstring)."""
        try:
            await self.db.run(lambda s: prune_observations(s, window_s=self.window_s,
                                                           keep_days=self.days))
            if not self.enabled:
                return
            pruned = await self.db.run(
                lambda s: prune(s, older_than_days=self.days, keep=self.keep))
        except Exception as exc:
            log.warning("retention: prune failed (%s: %s); trying again in %.0f s",
                        type(exc).__name__, exc, self.interval_s)
            return
        if pruned:
            log.info("retention: pruned %d results, %d jobs, %d specs", pruned.results,
                     pruned.jobs, pruned.specs)

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval_s)
