"""Builders of valid domain objects for tests."""

from __future__ import annotations

from typing import Any

from recapd.model.ids import new_id
from recapd.model.job import Job, JobType
from recapd.model.recap import Recap, RecapStatus
from recapd.model.scheduled_recap import ScheduledRecap

NOW = 1_790_000_000_000  # 2026-09-21T14:13:20Z


def scheduled_recap(**overrides: Any) -> ScheduledRecap:
    """A valid, pre-saved scheduled recap; keyword arguments override fields."""
    sr = ScheduledRecap(
        user_id=new_id(),
        title="Morning recap",
        days_of_week=62,
        time_of_day="09:00",
        timezone="America/New_York",
        time_period="last_24h",
        channel_mode="specific",
        channel_ids=[new_id()],
        agent_id="extractive",
    )
    for key, value in overrides.items():
        setattr(sr, key, value)
    sr.pre_save(overrides.get("create_at", NOW))
    if "next_run_at" not in overrides:
        sr.next_run_at = sr.compute_next_run_at(sr.create_at)
    sr.is_valid()
    return sr


def recap(**overrides: Any) -> Recap:
    """A pending manual recap; keyword arguments override fields."""
    r = Recap(
        id=new_id(),
        user_id=new_id(),
        title="Recap",
        create_at=NOW,
        update_at=NOW,
        status=RecapStatus.PENDING,
        bot_id="extractive",
    )
    for key, value in overrides.items():
        setattr(r, key, value)
    return r


def job(**overrides: Any) -> Job:
    """A pending job of type recap; keyword arguments override fields."""
    j = Job(id=new_id(), type=JobType.RECAP, create_at=NOW, run_at=NOW, data={"k": "v"})
    for key, value in overrides.items():
        setattr(j, key, value)
    return j
