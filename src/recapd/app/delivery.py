"""Delivery use cases: telling a user their recap finished (a direct message from the recap
bot, then their webhook, if any), and the user's webhook setting.

The delivery job is queued in the transaction that finishes the recap (`enqueue_delivery`),
so every completed or failed recap is announced once, and announcing never holds up or fails
the recap itself. The job carries the recap's finish time: a job whose outcome is no longer
the recap's current one (the recap was regenerated meanwhile) sends nothing.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.engine import Connection

from recapd.chat.source import ChatSource
from recapd.clock import Clock
from recapd.config import Settings
from recapd.delivery.markdown import render_message, truncate_message
from recapd.delivery.messenger import DirectMessageRefused, DirectMessenger
from recapd.delivery.webhook import (
    MAX_TEXT_CHARS,
    InternalAllowList,
    WebhookError,
    WebhookSender,
    flavor_for,
    payload,
    validate_webhook_url,
)
from recapd.jobs.server import JobServer
from recapd.model.app_error import AppError
from recapd.model.job import JobType
from recapd.model.recap import Recap, RecapStatus, cited_post_ids
from recapd.store.delivery_store import UserWebhook
from recapd.store.store import Store

log = logging.getLogger(__name__)

# Outcomes a user is told about. Skipped occurrences are not: they are recorded on the
# schedule's history, and a message for every paused day or empty inbox would be noise.
DELIVERED_STATUSES = (RecapStatus.COMPLETED, RecapStatus.FAILED)


def delivery_key(recap_id: str, status: str, finished_at: int) -> str:
    """The delivery job's dedupe key: one per outcome (a regenerated recap is a new one)."""
    return f"recap_delivery:{recap_id}:{status}:{finished_at}"


def enqueue_delivery(
    jobs: JobServer, recap_id: str, status: RecapStatus, finished_at: int, conn: Connection
) -> None:
    """Queue the announcement of a finished recap, inside the transaction that finished it."""
    if status not in DELIVERED_STATUSES:
        return
    jobs.create_job_once(
        JobType.RECAP_DELIVERY,
        {"recap_id": recap_id, "status": str(status), "finish_at": finished_at},
        delivery_key(recap_id, status, finished_at),
        conn=conn,
    )


def _no_webhook(user_id: str) -> AppError:
    return AppError(
        "app.delivery.webhook.not_found.app_error",
        "No recap webhook is set.",
        detailed_error=f"user_id={user_id}",
        status_code=404,
    )


class DeliveryService:
    """Announces finished recaps; keeps each user's webhook."""

    def __init__(
        self,
        store: Store,
        chat: ChatSource,
        messenger: DirectMessenger | None,
        settings: Settings,
        clock: Clock,
        *,
        pages_url: str = "",
    ) -> None:
        self.store = store
        self.chat = chat
        self.messenger = messenger
        self.clock = clock
        # Where recapd's own web pages are, when known: messages then link to the recap page.
        self.pages_url = pages_url.rstrip("/")
        self.webhooks = WebhookSender(settings.delivery.webhook_timeout_seconds)
        self.apply_settings(settings)

    def apply_settings(self, settings: Settings) -> None:
        """Take new settings (timeout, allowed internal hosts, bot name, direct messages)."""
        self.settings = settings
        self.webhooks.timeout_s = settings.delivery.webhook_timeout_seconds
        self.webhooks.allow = InternalAllowList.parse(
            settings.delivery.allowed_untrusted_internal_connections
        )

    # -- the user's webhook --------------------------------------------------------------------

    async def get_webhook(self, user_id: str) -> UserWebhook:
        """The user's webhook; AppError 404 when none is set."""
        found = await asyncio.to_thread(self.store.delivery.get_webhook, user_id)
        if found is None:
            raise _no_webhook(user_id)
        return found

    async def set_webhook(self, user_id: str, url: str) -> UserWebhook:
        """Set (or replace) the user's webhook URL; AppError 400 for a URL that cannot be one."""
        url = validate_webhook_url(url, self.webhooks.allow)
        now = self.clock.now_ms()
        return await asyncio.to_thread(self.store.delivery.set_webhook, user_id, url, now)

    async def clear_webhook(self, user_id: str) -> bool:
        """Remove the user's webhook; False when none was set."""
        return await asyncio.to_thread(self.store.delivery.delete_webhook, user_id)

    # -- announcing a finished recap (the recap_delivery job) ----------------------------------

    async def _permalinks(self, recap: Recap) -> dict[str, str]:
        ids = cited_post_ids(recap)
        posts = await self.chat.get_posts(sorted(ids))
        return {pid: await self.chat.permalink(p) for pid, p in posts.items()}

    async def deliver(
        self, recap_id: str, status: str, finish_at: int, key: str, *, last_attempt: bool
    ) -> None:
        """Tell the user the recap finished (`status` at `finish_at`): direct message, then
        webhook. Each part happens once per `key`, so a retried job redoes only what did not
        happen; nothing is sent when the recap has finished again since (regenerated), was
        deleted, or is gone. A part that can never succeed (a DM or webhook refused with a
        4xx, a refused address) is recorded and not retried; 429, 5xx and transport errors
        fail the attempt, after both parts were tried. `finish_at` 0 (a job queued before
        finish times were kept) skips the finish-time check."""
        try:
            recap = await asyncio.to_thread(self.store.recaps.get, recap_id, include_deleted=True)
        except AppError as exc:
            if exc.status_code == 404:
                log.info("recap %s is gone; nothing to deliver", recap_id)
                return
            raise
        stale = recap.status != status or (finish_at and recap.finish_at != finish_at)
        if recap.delete_at or stale:
            log.info("recap %s was deleted or finished again; not delivering %s", recap_id, key)
            return
        links = await self._permalinks(recap)
        page = f"{self.pages_url}/recaps/{recap.id}" if self.pages_url else ""
        dm_failure: Exception | None = None
        if self.settings.delivery.direct_message and self.messenger is not None:
            text = render_message(recap, links, recap_url=page)
            try:
                await self.messenger.send_direct(recap.user_id, text, key)
            except DirectMessageRefused as exc:
                log.warning("direct message of recap %s refused for good: %s", recap.id, exc)
            except Exception as exc:  # retried with the job, once the webhook had its turn
                log.warning("direct message of recap %s failed: %s", recap.id, exc)
                dm_failure = exc
        await self._call_webhook(recap, links, page, key, last_attempt=last_attempt)
        if dm_failure is not None:
            raise dm_failure

    async def _call_webhook(
        self, recap: Recap, links: dict[str, str], page: str, key: str, *, last_attempt: bool
    ) -> None:
        hook = await asyncio.to_thread(self.store.delivery.get_webhook, recap.user_id)
        if hook is None:
            return
        if await asyncio.to_thread(self.store.delivery.was_delivered, key):
            return  # this very delivery was accepted before a crash or retry
        text = render_message(recap, links, flavor=flavor_for(hook.url), recap_url=page)
        body = payload(truncate_message(text, MAX_TEXT_CHARS), self.settings.delivery.bot_username)
        try:
            await self.webhooks.send(hook.url, body)
        except WebhookError as exc:
            if not exc.retryable or last_attempt:
                await asyncio.to_thread(
                    self.store.delivery.record_error,
                    recap.user_id,
                    hook.url,
                    str(exc),
                    self.clock.now_ms(),
                )
            if exc.retryable:
                raise  # the job server retries with backoff; after the last attempt: error
            log.warning("webhook of user %s refused recap %s: %s", recap.user_id, recap.id, exc)
            return
        await asyncio.to_thread(
            self.store.delivery.record_delivered,
            recap.user_id,
            hook.url,
            key,
            self.clock.now_ms(),
        )
