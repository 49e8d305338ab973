"""Wiring: builds one node's parts from the settings (store, job server, chat source, agents,
app services) and registers every job type's worker and scheduler."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

from recapd.app.agents import AgentPool
from recapd.app.delivery import DeliveryService
from recapd.app.part_cache import DatabasePartCache
from recapd.app.recaps import RecapService
from recapd.app.recovery import StuckRecapRecovery
from recapd.app.scheduled_recaps import ScheduledRecapService
from recapd.app.sign_in import Authenticator
from recapd.app.slash_command import SlashCommands
from recapd.chat.local import LocalChatSource
from recapd.chat.mattermost.source import MattermostChatSource, mattermost_source
from recapd.chat.source import ChatSource
from recapd.clock import Clock, SystemClock
from recapd.config import Settings
from recapd.delivery.local_dm import LocalDirectMessenger
from recapd.delivery.mattermost_dm import MattermostDirectMessenger
from recapd.delivery.messenger import DirectMessenger
from recapd.jobs.recap.worker import make_worker as make_recap_worker
from recapd.jobs.recap_delivery.worker import make_worker as make_delivery_worker
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
    chat: ChatSource
    agents: AgentPool
    recaps: RecapService
    schedules: ScheduledRecapService
    delivery: DeliveryService
    sign_in: Authenticator
    slash: SlashCommands
    # The address `recapd serve` bound in this process ("" elsewhere): the local workspace's
    # links use it while site_url is unset.
    served_url: str = ""

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
        chat: ChatSource = (
            mattermost_source(settings, clock)
            if settings.chat == "mattermost"
            else LocalChatSource(store, settings.site_url_or())
        )
        agents = AgentPool(settings)
        # One limit on agent calls for the whole node, shared by every recap and channel.
        agent_calls = asyncio.Semaphore(settings.llm_concurrency)
        part_cache = DatabasePartCache(store, settings, clock)
        recaps = RecapService(store, jobs, chat, agents, settings, clock, agent_calls, part_cache)
        schedules = ScheduledRecapService(store, jobs, chat, agents, recaps, settings, clock)
        jobs.register_worker(make_recap_worker(recaps))
        jobs.register_worker(make_scheduled_recap_worker(schedules))
        jobs.register_scheduler(ScheduledRecapScheduler(store, jobs))
        jobs.register_scheduler(StuckRecapRecovery(store, jobs))
        # On a Mattermost server the bot is the configured token's account; one HTTP client
        # (one connection pool) serves reading, direct messages and sign-in checks.
        mm_client = chat.client if isinstance(chat, MattermostChatSource) else None
        messenger: DirectMessenger = (
            MattermostDirectMessenger(mm_client)
            if mm_client is not None
            else LocalDirectMessenger(store, clock, settings.delivery.bot_username)
        )
        delivery = DeliveryService(
            store, chat, messenger, settings, clock, pages_url=settings.pages_url()
        )
        jobs.register_worker(make_delivery_worker(delivery, settings))
        sign_in = Authenticator(store, clock, mm_client, settings)
        slash = SlashCommands(store, recaps, schedules, chat, settings, clock)
        return cls(settings, store, jobs, chat, agents, recaps, schedules, delivery, sign_in, slash)

    def apply_settings(self, settings: Settings) -> None:
        """Take new settings everywhere they are read at run time."""
        self.settings = settings
        self.agents.apply_settings(settings)
        self.recaps.settings = settings
        if isinstance(self.recaps.part_cache, DatabasePartCache):
            self.recaps.part_cache.settings = settings
        self.schedules.settings = settings
        self.delivery.apply_settings(settings)
        self.sign_in.apply_settings(settings)
        self.slash.settings = settings
        self.jobs.apply_settings(settings)
        self._apply_site_url()

    def serve_at(self, url: str, *, any_host: bool = False) -> str:
        """Note the address `recapd serve` bound, for links while site_url is unset. Returns a
        warning when site_url is set to another address ("" when all is well); `any_host`: a
        wildcard was bound, so any host name with the bound port and scheme is this server."""
        self.served_url = url.rstrip("/")
        self._apply_site_url()
        site = self.settings.site_url
        if self.settings.chat != "local" or not site:
            return ""
        if same_address(site, self.served_url, any_host=any_host):
            return ""
        return (
            f"RECAPD_SITE_URL is {site} but recapd serves at {self.served_url}: links in recaps "
            "and messages point at RECAPD_SITE_URL (right behind a proxy that forwards it here; "
            "else unset it)"
        )

    def _apply_site_url(self) -> None:
        """Links of the local workspace and of messages: site_url, else the served address."""
        if isinstance(self.chat, LocalChatSource):
            self.chat.site_url = self.settings.site_url_or(self.served_url)
        self.delivery.pages_url = self.settings.pages_url(self.served_url)

    async def aclose(self) -> None:
        """Stop the slash command's note watchers and close the Mattermost HTTP client (of
        the running event loop); call before the loop ends, then close()."""
        await self.slash.aclose()
        if isinstance(self.chat, MattermostChatSource):
            await self.chat.aclose()

    def close(self) -> None:
        """Release the database connections."""
        self.store.close()


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def same_address(url: str, served: str, *, any_host: bool = False) -> bool:
    """True when `url` names the address served at `served` (scheme, host, port; the
    loopback names count as one, and any host with `any_host`; a path is allowed)."""
    a, b = urlsplit(url.strip()), urlsplit(served)
    try:
        ports = (a.port or _default_port(a.scheme), b.port or _default_port(b.scheme))
    except ValueError:
        return False
    hosts = (a.hostname or "", b.hostname or "")
    same_host = any_host or hosts[0] == hosts[1]
    same_host = same_host or (hosts[0] in _LOOPBACK and hosts[1] in _LOOPBACK)
    return a.scheme == b.scheme and ports[0] == ports[1] and same_host


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80
