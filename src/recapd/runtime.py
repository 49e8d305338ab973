"""Wiring: builds one node's parts from the settings (store, job server, chat source, agents,
app services) and registers every job type's worker and scheduler."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from recapd.app.agents import AgentPool
from recapd.app.recaps import RecapService
from recapd.app.recovery import StuckRecapRecovery
from recapd.app.scheduled_recaps import ScheduledRecapService
from recapd.chat.local import LocalChatSource
from recapd.clock import Clock, SystemClock
from recapd.config import Settings
from recapd.jobs.recap.worker import make_worker as make_recap_worker
from recapd.jobs.scheduled_recap.scheduler import ScheduledRecapScheduler
from recapd.jobs.scheduled_recap.worker import make_worker as make_scheduled_recap_worker
from recapd.jobs.server import JobServer
from recapd.store.store import Store


@dataclass
class Runtime:
    """Everything one recapd process runs on."""

    settings: Settings
    store: Store
    jobs: JobServer
    chat: LocalChatSource
    agents: AgentPool
    recaps: RecapService
    schedules: ScheduledRecapService

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        store: Store | None = None,
        clock: Clock | None = None,
        node_id: str | None = None,
    ) -> Runtime:
        """Wire a node on `settings` (the store is opened from database_url unless given)."""
        clock = clock or SystemClock()
        store = store or Store.open(settings.database_url)
        jobs = JobServer(store, settings, clock=clock, node_id=node_id)
        chat = LocalChatSource(store, settings.site_url)
        agents = AgentPool(settings)
        # One limit on agent calls for the whole node, shared by every recap and channel.
        agent_calls = asyncio.Semaphore(settings.llm_concurrency)
        recaps = RecapService(store, jobs, chat, agents, settings, clock, agent_calls)
        schedules = ScheduledRecapService(store, jobs, chat, agents, recaps, settings, clock)
        jobs.register_worker(make_recap_worker(recaps))
        jobs.register_worker(make_scheduled_recap_worker(schedules))
        jobs.register_scheduler(ScheduledRecapScheduler(store, jobs))
        jobs.register_scheduler(StuckRecapRecovery(store))
        return cls(settings, store, jobs, chat, agents, recaps, schedules)

    def apply_settings(self, settings: Settings) -> None:
        """Take new settings everywhere they are read at run time."""
        self.settings = settings
        self.agents.apply_settings(settings)
        self.recaps.settings = settings
        self.schedules.settings = settings
        self.jobs.apply_settings(settings)

    def close(self) -> None:
        """Release the database connections."""
        self.store.close()
