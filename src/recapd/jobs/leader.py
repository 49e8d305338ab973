"""Leader election over a database lease: at most one node acts as leader, under a term that
its writes can be fenced with (`LeaseStore.check_term`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from recapd.store.lease_store import Lease, LeaseStore

log = logging.getLogger(__name__)

ChangeCallback = Callable[[bool, int], None]


class Leadership(Protocol):
    """Whether this node leads now, and the term (fencing token) of that leadership."""

    lease_name: str

    @property
    def is_leader(self) -> bool: ...

    @property
    def term(self) -> int: ...


class StaticLeadership:
    """Always the leader under a fixed term: the single SQLite node, and tests."""

    def __init__(self, term: int = 1, lease_name: str = "leader") -> None:
        if term <= 0:
            raise ValueError("term must be positive")
        self.lease_name = lease_name
        self._term = term

    @property
    def is_leader(self) -> bool:
        return True

    @property
    def term(self) -> int:
        return self._term


class Follower:
    """Never the leader: a node that runs no schedulers does not stand for election, so it can
    never hold the lease while scheduling nothing."""

    def __init__(self, lease_name: str = "leader") -> None:
        self.lease_name = lease_name

    @property
    def is_leader(self) -> bool:
        return False

    @property
    def term(self) -> int:
        return 0


class LeaderElector:
    """Leadership through the database lease `name`, renewed every `renew_interval_s`.

    Trusted until `ttl_s - safety_s` after the last successful renewal began (local monotonic
    clock): it ends here before the lease can expire in the database.
    """

    def __init__(
        self,
        leases: LeaseStore,
        node_id: str,
        *,
        ttl_s: float,
        renew_interval_s: float,
        name: str = "leader",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or renew_interval_s <= 0:
            raise ValueError("ttl_s and renew_interval_s must be positive")
        safety_s = max(renew_interval_s / 2, ttl_s / 10)
        if renew_interval_s >= ttl_s - safety_s:
            # Leadership would lapse between two successful renewals.
            raise ValueError("renew_interval_s is too long for ttl_s")
        self.lease_name = name
        self.node_id = node_id
        self.ttl_s = ttl_s
        self.renew_interval_s = renew_interval_s
        self.safety_s = safety_s
        self._leases = leases
        self._ttl_ms = max(1, round(ttl_s * 1000))
        self._monotonic = monotonic
        # renew_once may run in a worker thread while other threads read is_leader.
        self._lock = threading.RLock()
        self._term = 0
        self._valid_until = -math.inf
        self._reported: tuple[bool, int] = (False, 0)
        self._pending: deque[tuple[bool, int]] = deque()
        self._firing = False
        self._callbacks: list[ChangeCallback] = []

    @property
    def is_leader(self) -> bool:
        return self._sync()[0]

    @property
    def term(self) -> int:
        """The term of the current leadership; 0 when not leader."""
        return self._sync()[1]

    def on_change(self, callback: ChangeCallback) -> None:
        """Call `callback(is_leader, term)` on every gain and loss; it must be quick.

        It runs on the thread that noticed the change (run()'s event loop, a renew_once or
        resign caller, or whoever read is_leader or term after the deadline).
        """
        with self._lock:
            self._callbacks.append(callback)

    def renew_once(self) -> bool:
        """One acquire-or-renew attempt; True if this node leads afterwards. Never raises."""
        start = self._monotonic()
        return self._record(start, self._acquire())

    def resign(self) -> None:
        """Stop leading now and release the lease so another node can take over at once."""
        self._drop()
        self._release()

    async def run(self, stop: asyncio.Event) -> None:
        """Renew every renew_interval_s until `stop` is set, then resign."""
        loop = asyncio.get_running_loop()
        acquiring: asyncio.Future[Lease | Exception | None] | None = None
        try:
            while not stop.is_set():
                next_at = loop.time() + self.renew_interval_s
                start = self._monotonic()
                acquiring = asyncio.ensure_future(asyncio.to_thread(self._acquire))
                result = await asyncio.shield(acquiring)
                self._record(start, result)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, next_at - loop.time()))
        finally:
            self._drop()
            if acquiring is not None and not acquiring.done():
                # Cancelled mid-renewal: let it land first, or it could re-extend the lease
                # after the release below and make the next leader wait a whole ttl.
                with contextlib.suppress(BaseException):
                    await acquiring
            await asyncio.to_thread(self._release)

    def _acquire(self) -> Lease | Exception | None:
        try:
            return self._leases.try_acquire(self.lease_name, self.node_id, self._ttl_ms)
        except Exception as exc:
            log.warning("lease %r: renewal by %s failed: %s", self.lease_name, self.node_id, exc)
            return exc

    def _release(self) -> None:
        try:
            self._leases.release(self.lease_name, self.node_id)
        except Exception as exc:
            # The lease then simply expires after its ttl.
            log.warning("lease %r: release by %s failed: %s", self.lease_name, self.node_id, exc)

    def _record(self, start: float, result: Lease | Exception | None) -> bool:
        with self._lock:
            if isinstance(result, Lease):
                self._term = result.term
                self._valid_until = start + self.ttl_s - self.safety_s
            elif result is None:
                # Another node's lease is live: whatever this node believed, it does not lead.
                self._term = 0
                self._valid_until = -math.inf
            # An error leaves the deadline as it was: the lease may still be ours in the
            # database, and the deadline ends our leadership before it can expire there.
            return self._sync()[0]

    def _drop(self) -> None:
        with self._lock:
            self._term = 0
            self._valid_until = -math.inf
            self._sync()

    def _sync(self) -> tuple[bool, int]:
        """The state now, after telling the callbacks if it changed since they last heard."""
        with self._lock:
            leading = self._term > 0 and self._monotonic() < self._valid_until
            state = (leading, self._term if leading else 0)
            if state != self._reported:
                was_leading, old_term = self._reported
                self._reported = state
                if was_leading:
                    self._pending.append((False, old_term))
                if leading:
                    self._pending.append((True, state[1]))
            if not self._firing:
                self._deliver()
            # else: a callback on this thread re-entered; the outer _deliver keeps the order.
            return state

    def _deliver(self) -> None:
        self._firing = True
        try:
            while self._pending:
                leading, term = self._pending.popleft()
                for callback in list(self._callbacks):
                    try:
                        callback(leading, term)
                    except Exception:
                        log.exception("leadership callback failed")
        finally:
            self._firing = False
