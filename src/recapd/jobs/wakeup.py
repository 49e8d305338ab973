"""Wake-ups: a worker pool sleeps until a job of its type may be ready.

In one process, creating a job sets the pool's event directly. Across processes, PostgreSQL's
LISTEN/NOTIFY carries the job type (JobStore emits the NOTIFY in the inserting transaction);
polling remains the fallback for SQLite and for missed notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from recapd.store.database import to_sqlalchemy_url
from recapd.store.job_store import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


class Wakeups:
    """One asyncio.Event per job type, settable from any thread."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the loop the pools run on."""
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the pools run on, once bound."""
        return self._loop

    def event(self, job_type: str) -> asyncio.Event:
        """The event a pool of `job_type` waits on."""
        with self._lock:
            if job_type not in self._events:
                self._events[job_type] = asyncio.Event()
            return self._events[job_type]

    def notify(self, job_type: str) -> None:
        """Wake the pool of `job_type`; safe from any thread, a no-op before bind()."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        ev = self.event(job_type)
        try:
            if _in_loop(loop):
                ev.set()
            else:
                loop.call_soon_threadsafe(ev.set)
        except RuntimeError:  # loop closed meanwhile
            pass

    async def listen_postgres(self, url: str, stop: asyncio.Event) -> None:
        """Turn NOTIFYs on the jobs channel into wake-ups until `stop`; reconnects on errors."""
        import psycopg

        conninfo = to_sqlalchemy_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
        delay = 0.5
        while not stop.is_set():
            try:
                aconn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                async with aconn:
                    await aconn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    delay = 0.5
                    # Wake everyone once: notifications sent while we were away are lost.
                    for job_type in list(self._events):
                        self.notify(job_type)
                    while not stop.is_set():
                        # The timeout bounds how long a stop request waits for us.
                        async for note in aconn.notifies(timeout=0.5):
                            self.notify(note.payload)
            except (OSError, psycopg.Error) as exc:
                log.warning("LISTEN connection lost (%s); polling until it is back", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 10.0)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
