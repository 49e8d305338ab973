"""Helpers for job-server tests: settings with short intervals, and running a server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from recapd.config import Settings, load_settings


def job_settings(db_url: str, **jobs: Any) -> Settings:
    """Settings on `db_url` with intervals short enough for tests; `jobs` overrides."""
    base: dict[str, Any] = {
        "poll_interval_seconds": 0.2,
        "heartbeat_interval_seconds": 0.2,
        "wedged_job_timeout_seconds": 2.0,
        "lease_ttl_seconds": 3.0,
        "lease_renew_interval_seconds": 0.5,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.2,
        "shutdown_grace_seconds": 2.0,
    }
    base.update(jobs)
    return load_settings(database_url=db_url, jobs=base)


async def wait_until(
    cond: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """Poll `cond` until true; fail after `timeout` seconds of real time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        res = cond()
        if not isinstance(res, bool):
            res = await res
        if res:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
