"""Delivery on both engines: a finished recap queues one recap_delivery job in the transaction
that finishes it; the job posts a direct message from the recap bot in the local workspace and
calls the user's webhook (a real HTTP receiver on loopback), retried by the job server."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterator
from typing import Any

import pytest

from recapd.app.recovery import StuckRecapRecovery
from recapd.chat.mattermost.client import ClientOptions, MattermostClient
from recapd.clock import FakeClock
from recapd.delivery.local_dm import LocalDirectMessenger, direct_channel_name
from recapd.delivery.markdown import Flavor, render_message, split_message, truncate_message
from recapd.delivery.mattermost_dm import MattermostDirectMessenger
from recapd.delivery.webhook import (
    InternalAllowList,
    WebhookError,
    WebhookSender,
    flavor_for,
    validate_webhook_url,
)
from recapd.jobs.recap_delivery.worker import make_worker as make_delivery_worker
from recapd.jobs.worker import WorkerPool
from recapd.model.app_error import AppError
from recapd.model.chat import Channel, ChannelMember, ChannelType, Post
from recapd.model.ids import is_valid_id, stable_id
from recapd.model.job import Job, JobStatus, JobType
from recapd.model.recap import ActionItem, Highlight, Recap, RecapChannel, RecapStatus
from recapd.runtime import Runtime
from recapd.store.delivery_store import DELIVERED_KEYS_KEPT_MS
from recapd.store.store import Store
from tests.fake_mattermost import FakeMattermost
from tests.fake_webhook import Answer, FakeWebhook, fake_webhook
from tests.test_recaps_app import T0, runtime_for, settings_for, team_workspace
from tests.workspace import Workspace

DELIVERY = {
    "allowed_untrusted_internal_connections": "127.0.0.1",
    "max_attempts": 3,
    "webhook_timeout_seconds": 10.0,
}


@pytest.fixture
def hook() -> Iterator[FakeWebhook]:
    with fake_webhook() as h:
        yield h


class Harness:
    """A runtime on a fake clock whose recap and delivery jobs the test runs step by step."""

    def __init__(self, store: Store, **overrides: Any) -> None:
        self.store = store
        self.ws: Workspace = team_workspace(store)
        self.clock = FakeClock(T0 + 3_600_000)
        self.rt: Runtime = runtime_for(store, self.clock, **({"delivery": DELIVERY} | overrides))
        self.alice = self.ws.users["alice"]

    def pool(self, job_type: str) -> WorkerPool:
        spec = self.rt.jobs.workers[job_type]
        return WorkerPool(
            spec, self.store, self.rt.settings, self.clock, "test-node", asyncio.Event()
        )

    def run(self, job_type: str) -> None:
        """Run every ready job of the type to its end (a retry only once its backoff passed)."""

        async def main() -> None:
            pool = self.pool(job_type)
            while await pool.claim_once():
                while pool.running_ids:
                    await asyncio.sleep(0.001)
                await pool.flush()

        asyncio.run(main())

    def recap(self, channels: tuple[str, ...] = ("dev",), title: str = "Dev") -> Recap:
        ids = [self.ws.channels[c].id for c in channels]
        made = asyncio.run(self.rt.recaps.create(self.alice.id, title=title, channel_ids=ids))
        self.run(JobType.RECAP)
        return self.store.recaps.get(made.id)

    def deliveries(self) -> list[Job]:
        return self.store.jobs.list_page(type=JobType.RECAP_DELIVERY)

    def dm_channel(self) -> Channel:
        bot = self.store.workspace.get_user_by_username("recap-bot")
        name = direct_channel_name(bot.id, self.alice.id)
        return self.store.workspace.get_channel_by_name("", name)

    def dms(self) -> list[Post]:
        return self.store.workspace.latest_posts(self.dm_channel().id, 100)

    def set_webhook(self, url: str) -> None:
        asyncio.run(self.rt.delivery.set_webhook(self.alice.id, url))


def test_a_completed_recap_sends_one_direct_message_from_the_bot(store: Store) -> None:
    h = Harness(store)
    recap = h.recap()
    assert recap.status == RecapStatus.COMPLETED
    (job,) = h.deliveries()
    assert job.status == JobStatus.PENDING
    assert job.dedupe_key == f"recap_delivery:{recap.id}:completed:{recap.update_at}"
    assert recap.finish_at == recap.update_at
    assert job.data == {"recap_id": recap.id, "status": "completed", "finish_at": recap.finish_at}
    h.run(JobType.RECAP_DELIVERY)
    assert store.jobs.get(job.id).status == JobStatus.SUCCESS

    bot = store.workspace.get_user_by_username("recap-bot")
    assert bot.is_bot and is_valid_id(bot.id)
    channel = h.dm_channel()
    assert channel.type == ChannelType.DIRECT and channel.team_id == ""
    assert channel.name == "__".join(sorted([bot.id, h.alice.id]))
    assert store.workspace.is_member(channel.id, h.alice.id)
    (post,) = h.dms()
    assert post.user_id == bot.id and post.props["from_bot"] == "true"
    text = post.message
    assert text.startswith("**Your recap \u201cDev\u201d is ready.**")
    assert "#### Dev" in text and "**Highlights**" in text and "**Action items**" in text
    cited = {p for ch in recap.channels for h_ in ch.highlights for p in h_.post_ids}
    assert cited
    for pid in cited:  # every cited post is linked, readable as a Markdown link
        assert f"(http://127.0.0.1:8065/acme/pl/{pid})" in text
    assert "(@dave)" in text  # the action item's owner
    assert f"[Open the recap](http://127.0.0.1:8065/recaps/{recap.id})" in text

    # A second run of the same delivery (a retry, a recovered job) posts nothing more.
    asyncio.run(
        h.rt.delivery.deliver(
            recap.id, "completed", recap.finish_at, job.dedupe_key or "", last_attempt=False
        )
    )
    assert len(h.dms()) == 1
    # The bot's message does not make the next "all unreads" recap read the last one.
    assert channel.id not in {c.id for c in store.workspace.unread_channels(h.alice.id)}
    assert store.workspace.channels_of_user(h.alice.id)  # the DM is listed among her channels


def test_the_webhook_gets_slack_style_json(store: Store, hook: FakeWebhook) -> None:
    h = Harness(store)
    h.set_webhook(hook.url)
    recap = h.recap()
    h.run(JobType.RECAP_DELIVERY)
    (req,) = hook.received()
    assert req.method == "POST" and req.path == "/hooks/xyz" and req.status == 200
    assert req.headers["Content-Type"] == "application/json"
    body = req.json()
    assert set(body) == {"text", "username"} and body["username"] == "recap-bot"
    assert body["text"].startswith("**Your recap \u201cDev\u201d is ready.**")
    assert "http://127.0.0.1:8065/acme/pl/" in body["text"]
    saved = store.delivery.get_webhook(h.alice.id)
    assert saved is not None and saved.last_delivery_at == h.clock.now_ms()
    assert saved.last_delivery_key.startswith(f"recap_delivery:{recap.id}:")
    assert saved.last_error == ""
    assert len(h.dms()) == 1  # the direct message too


def test_a_500_is_retried_with_backoff_and_delivered_once(store: Store, hook: FakeWebhook) -> None:
    h = Harness(store)
    h.set_webhook(hook.url)
    hook.script(500)
    h.recap()
    h.run(JobType.RECAP_DELIVERY)
    (job,) = h.deliveries()
    assert (job.status, job.attempt) == (JobStatus.PENDING, 1)
    assert job.run_at > h.clock.now_ms()  # waits for its backoff
    assert "HTTP 500" in job.data["last_error"]
    assert [r.status for r in hook.received()] == [500]
    h.run(JobType.RECAP_DELIVERY)  # not due yet: nothing happens
    assert len(hook.received()) == 1

    h.clock.advance(60_000)
    h.run(JobType.RECAP_DELIVERY)
    job = store.jobs.get(job.id)
    assert (job.status, job.attempt) == (JobStatus.SUCCESS, 2)
    assert [r.status for r in hook.received()] == [500, 200]
    assert hook.received()[0].body == hook.received()[1].body
    assert len(h.dms()) == 1  # the retry did not post the direct message again


def test_a_400_is_not_retried_and_is_recorded(store: Store, hook: FakeWebhook) -> None:
    h = Harness(store)
    h.set_webhook(hook.url)
    hook.script(400)
    h.recap()
    h.run(JobType.RECAP_DELIVERY)
    h.clock.advance(3_600_000)
    h.run(JobType.RECAP_DELIVERY)
    assert [r.status for r in hook.received()] == [400]  # one request, never repeated
    (job,) = h.deliveries()
    assert (job.status, job.attempt) == (JobStatus.SUCCESS, 1)
    saved = store.delivery.get_webhook(h.alice.id)
    assert saved is not None and saved.last_delivery_at == 0
    assert saved.last_error == "HTTP 400"  # the receiver's answer is never stored
    assert saved.last_error_at == h.clock.now_ms() - 3_600_000
    assert len(h.dms()) == 1  # the direct message was delivered all the same


def test_a_webhook_down_for_good_ends_the_job_in_error_and_nothing_else(
    store: Store, hook: FakeWebhook
) -> None:
    h = Harness(store, delivery={**DELIVERY, "webhook_timeout_seconds": 0.5})
    h.set_webhook(hook.url)
    hook.script(503, 429, Answer(200, delay_s=3.0))  # the last one answers after the timeout
    recap = h.recap()
    for _ in range(3):
        h.run(JobType.RECAP_DELIVERY)
        h.clock.advance(60_000)
    (job,) = h.deliveries()
    assert (job.status, job.attempt) == (JobStatus.ERROR, 3)
    assert "timed out after 0.5 s" in job.data["error"]
    assert [r.status for r in hook.received()[:2]] == [503, 429]
    saved = store.delivery.get_webhook(h.alice.id)
    assert saved is not None and "timed out" in saved.last_error
    # The recap was finished before any of this and stays as it was.
    got = store.recaps.get(recap.id)
    assert (got.status, got.update_at) == (RecapStatus.COMPLETED, recap.update_at)
    assert store.jobs.list_page(type=JobType.RECAP)[0].status == JobStatus.SUCCESS
    assert len(h.dms()) == 1


def test_a_failed_recap_tells_the_user_why(store: Store, hook: FakeWebhook) -> None:
    h = Harness(store)
    h.set_webhook(hook.url)
    dev = h.ws.channels["dev"]
    made = asyncio.run(h.rt.recaps.create(h.alice.id, title="Dev", channel_ids=[dev.id]))
    # The channel is archived before the recap runs: alice may no longer read it.
    dev.delete_at = h.clock.now_ms()
    store.workspace.upsert_channels([dev])
    h.run(JobType.RECAP)
    recap = store.recaps.get(made.id)
    assert recap.status == RecapStatus.FAILED and recap.error.startswith("Every channel failed.")
    (job,) = h.deliveries()
    assert job.data["status"] == "failed"
    h.run(JobType.RECAP_DELIVERY)
    (post,) = h.dms()
    assert post.message.startswith("**Your recap \u201cDev\u201d could not be made.**")
    assert f"Reason: {recap.error}" in post.message
    (req,) = hook.received()
    assert "could not be made" in req.json()["text"] and recap.error in req.json()["text"]


def test_fail_recap_and_the_stuck_recap_sweep_queue_the_delivery_with_the_failure(
    store: Store,
) -> None:
    h = Harness(store)
    dev = [h.ws.channels["dev"].id]
    a = asyncio.run(h.rt.recaps.create(h.alice.id, title="a", channel_ids=dev))
    asyncio.run(h.rt.recaps.fail_recap(a.id, "The recap could not be made: agent down"))
    asyncio.run(h.rt.recaps.fail_recap(a.id, "again"))  # already failed: no second delivery
    assert [j.data["recap_id"] for j in h.deliveries()] == [a.id]

    b = asyncio.run(h.rt.recaps.create(h.alice.id, title="b", channel_ids=dev))
    job = next(j for j in store.jobs.list_page(type=JobType.RECAP) if j.data["recap_id"] == b.id)
    store.jobs.update_status(job.id, JobStatus.ERROR, [JobStatus.PENDING], h.clock.now_ms())
    h.clock.advance(10 * 60_000)
    sweeper = StuckRecapRecovery(store, h.rt.jobs)
    assert sweeper.sweep(h.clock.now_ms() - 60_000, h.clock.now_ms()) == 1
    assert sweeper.sweep(h.clock.now_ms() - 60_000, h.clock.now_ms()) == 0
    assert sorted(j.data["recap_id"] for j in h.deliveries()) == sorted([a.id, b.id])
    h.run(JobType.RECAP_DELIVERY)
    texts = sorted(p.message for p in h.dms())
    assert any("agent down" in t for t in texts) and any("interrupted" in t for t in texts)


def test_a_regenerated_recap_is_announced_again(store: Store) -> None:
    h = Harness(store)
    recap = h.recap()
    h.run(JobType.RECAP_DELIVERY)
    h.clock.advance(1000)
    asyncio.run(h.rt.recaps.regenerate(h.alice.id, recap.id))
    h.run(JobType.RECAP)
    keys = {j.dedupe_key for j in h.deliveries()}
    assert len(keys) == 2
    h.run(JobType.RECAP_DELIVERY)
    assert len(h.dms()) == 2


def test_a_deleted_recap_or_switched_off_direct_messages_send_nothing(
    store: Store, hook: FakeWebhook
) -> None:
    h = Harness(store)
    recap = h.recap()
    asyncio.run(h.rt.recaps.delete(h.alice.id, recap.id))
    h.run(JobType.RECAP_DELIVERY)
    assert h.deliveries()[0].status == JobStatus.SUCCESS
    with pytest.raises(AppError):
        h.dm_channel()  # no direct message was ever needed

    h.rt.apply_settings(settings_for(store.db.url, delivery={**DELIVERY, "direct_message": False}))
    h.set_webhook(hook.url)
    h.recap(title="Again")
    h.run(JobType.RECAP_DELIVERY)
    assert len(hook.received()) == 1  # the webhook still is told
    with pytest.raises(AppError):
        h.dm_channel()


def test_skipped_occurrences_are_not_announced(store: Store) -> None:
    h = Harness(store)
    for ch in ("dev", "ops"):  # alice has read everything
        store.workspace.set_last_viewed_at(
            h.ws.channels[ch].id, h.alice.id, h.clock.now_ms() + 86_400_000
        )
    body = {
        "title": "Daily",
        "days_of_week": 127,
        "time_of_day": "09:00",
        "timezone": "UTC",
        "time_period": "last_24h",
        "channel_mode": "all_unreads",
        "channel_ids": [],
    }
    sr = asyncio.run(h.rt.schedules.create(h.alice.id, body))
    asyncio.run(h.rt.schedules.run_now(h.alice.id, sr.id))
    h.run(JobType.SCHEDULED_RECAP)
    found = store.recaps.get_by_occurrence(sr.id, h.clock.now_ms())
    assert found is not None and found.status == RecapStatus.SKIPPED
    assert h.deliveries() == []


def test_a_scheduled_recap_is_announced_when_it_completes(store: Store) -> None:
    h = Harness(store)
    body = {
        "title": "Daily dev",
        "days_of_week": 127,
        "time_of_day": "09:00",
        "timezone": "UTC",
        "time_period": "last_week",
        "channel_mode": "specific",
        "channel_ids": [h.ws.channels["dev"].id],
    }
    sr = asyncio.run(h.rt.schedules.create(h.alice.id, body))
    asyncio.run(h.rt.schedules.run_now(h.alice.id, sr.id))
    h.run(JobType.SCHEDULED_RECAP)
    (job,) = h.deliveries()
    h.run(JobType.RECAP_DELIVERY)
    assert store.jobs.get(job.id).status == JobStatus.SUCCESS
    (post,) = h.dms()
    assert "Daily dev" in post.message


# -- the webhook setting ---------------------------------------------------------------------


def test_webhook_setting_store_round_trip(store: Store) -> None:
    user = "u" * 26
    assert store.delivery.get_webhook(user) is None
    first = store.delivery.set_webhook(user, "https://hooks.example.com/a", 10)
    assert (first.url, first.create_at, first.update_at) == ("https://hooks.example.com/a", 10, 10)
    store.delivery.record_error(user, first.url, "HTTP 404", 15)
    store.delivery.record_error(user, "https://other.example.com/", "not this one", 16)
    assert store.delivery.get_webhook(user).last_error == "HTTP 404"  # type: ignore[union-attr]
    second = store.delivery.set_webhook(user, "https://hooks.example.com/b", 20)
    assert (second.create_at, second.update_at, second.last_error) == (10, 20, "")
    store.delivery.record_delivered(user, second.url, "k1", 30)
    got = store.delivery.get_webhook(user)
    assert got is not None and (got.last_delivery_key, got.last_delivery_at) == ("k1", 30)
    assert store.delivery.delete_webhook(user) is True
    assert store.delivery.delete_webhook(user) is False
    assert store.delivery.get_webhook(user) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ftp://hooks.example.com/x", "scheme"),
        ("hooks.example.com/x", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("http:///nohost", "host"),
        ("https://hooks.example.com/a b", "invalid"),
        ("https://hooks.example.com:99999/", "invalid"),
        ("https://hooks.example.com/" + "x" * 2048, "too_long"),
        ("http://127.0.0.1:8065/hooks/x", "internal"),
        ("http://[::1]/hooks/x", "internal"),
        ("http://169.254.169.254/latest/meta-data", "internal"),
        ("http://10.1.2.3/hooks", "internal"),
    ],
)
def test_bad_webhook_urls_are_refused_with_clear_ids(url: str, reason: str) -> None:
    with pytest.raises(AppError) as err:
        validate_webhook_url(url, InternalAllowList.parse(""))
    assert err.value.id == f"app.delivery.webhook_url.{reason}.app_error"
    assert err.value.status_code == 400


def test_internal_addresses_only_when_allowed() -> None:
    allow = InternalAllowList.parse("127.0.0.1, 10.0.0.0/8 chat.internal")
    assert validate_webhook_url(" http://127.0.0.1:9/h ", allow) == "http://127.0.0.1:9/h"
    assert validate_webhook_url("http://10.9.8.7/h", allow) == "http://10.9.8.7/h"
    assert validate_webhook_url("https://chat.internal/hooks/1", allow)
    with pytest.raises(AppError):
        validate_webhook_url("http://192.168.1.1/h", allow)
    assert validate_webhook_url("https://8.8.8.8/h", InternalAllowList.parse("")) == (
        "https://8.8.8.8/h"
    )


def test_a_host_that_resolves_to_an_internal_address_is_refused_when_sent(
    store: Store, hook: FakeWebhook
) -> None:
    h = Harness(store, delivery={**DELIVERY, "allowed_untrusted_internal_connections": ""})
    # "localhost" passes the syntax check (it is a name), but resolves to loopback.
    url = hook.url.replace("127.0.0.1", "localhost")
    h.set_webhook(url)
    h.recap()
    h.run(JobType.RECAP_DELIVERY)
    assert hook.received() == []
    saved = store.delivery.get_webhook(h.alice.id)
    assert saved is not None and "refused" in saved.last_error
    assert h.deliveries()[0].status == JobStatus.SUCCESS  # not retried: it can never work


# -- rendering -------------------------------------------------------------------------------


def _sample_recap() -> Recap:
    ch = RecapChannel(
        id="c" * 26,
        recap_id="r" * 26,
        channel_id="d" * 26,
        channel_name="Dev <ops> & co",
        highlights=[Highlight("Ship it @channel", ["p" * 26])],
        action_items=[ActionItem("Fix CI", owner="dave", post_ids=["p" * 26, "q" * 26])],
        status="success",
    )
    return Recap(
        id="r" * 26,
        user_id="u" * 26,
        title="Morning",
        status=RecapStatus.COMPLETED,
        total_message_count=3,
        channels=[ch],
    )


def test_markdown_and_slack_renderings() -> None:
    links = {"p" * 26: "https://chat/acme/pl/p", "q" * 26: "https://chat/acme/pl/q"}
    md = render_message(_sample_recap(), links, recap_url="https://recapd/recaps/r")
    assert md.splitlines()[:2] == [
        "**Your recap \u201cMorning\u201d is ready.**",
        "3 posts read in 1 channel. [Open the recap](https://recapd/recaps/r)",
    ]
    assert "- Ship it @\u200bchannel [1](https://chat/acme/pl/p)" in md  # no channel-wide ping
    assert "- [ ] Fix CI (@dave) [1](https://chat/acme/pl/p) [2](https://chat/acme/pl/q)" in md
    slack = render_message(_sample_recap(), links, flavor=Flavor.SLACK)
    assert slack.startswith("*Your recap \u201cMorning\u201d is ready.*")
    assert "*Dev &lt;ops&gt; &amp; co*" in slack
    assert "<https://chat/acme/pl/p|1>" in slack
    assert flavor_for("https://hooks.slack.com/services/T/B/X") == Flavor.SLACK
    assert flavor_for("https://chat.example.com/hooks/abc") == Flavor.MARKDOWN


def test_split_and_truncate_keep_every_character_within_the_limit() -> None:
    text = "\n".join(f"line {i} " + "x" * (i % 40) for i in range(400))
    parts = split_message(text, 500)
    assert all(len(p) <= 500 for p in parts) and "\n".join(parts) == text
    long_line = "y" * 1234
    parts = split_message(f"a\n{long_line}\nb", 500)
    assert all(len(p) <= 500 for p in parts) and "".join(parts).count("y") == 1234
    assert split_message("", 10) == [""]
    cut = truncate_message(text, 300)
    assert len(cut) <= 300 and cut.endswith("(truncated)") and text.startswith(cut.split("\n…")[0])
    assert truncate_message("short", 300) == "short"


def test_derived_ids_are_valid_and_stable() -> None:
    a = stable_id("dm", "key", "0")
    assert is_valid_id(a) and a == stable_id("dm", "key", "0") != stable_id("dm", "key", "1")
    assert direct_channel_name("b" * 26, "a" * 26) == f"{'a' * 26}__{'b' * 26}"


def test_a_direct_message_from_a_person_still_counts_as_unread(store: Store) -> None:
    h = Harness(store)
    bob = h.ws.users["bob"]
    name = direct_channel_name(bob.id, h.alice.id)
    dm = Channel(id=stable_id("t", name), team_id="", name=name, type=ChannelType.DIRECT)
    store.workspace.upsert_channels([dm])
    store.workspace.upsert_members([ChannelMember(dm.id, bob.id), ChannelMember(dm.id, h.alice.id)])
    post = Post(id=stable_id("p"), channel_id=dm.id, user_id=bob.id, message="hi", create_at=T0)
    store.workspace.add_post(post)
    assert dm.id in {c.id for c in store.workspace.unread_channels(h.alice.id)}


def test_a_user_outside_the_workspace_gets_no_direct_message_and_no_retry(store: Store) -> None:
    h = Harness(store)
    messenger = LocalDirectMessenger(store, h.clock)
    asyncio.run(messenger.send_direct("z" * 26, "hello", "k"))  # returns: nothing to do
    assert store.workspace.user_ids_by_username(["recap-bot"]) == {}
    with pytest.raises(ValueError):
        asyncio.run(messenger.send_direct("not-an-id", "hello", "k"))


# -- refused addresses, hostile receivers ----------------------------------------------------

REFUSED_ADDRESSES = [
    "100.100.100.200",  # shared address space (100.64.0.0/10): a cloud metadata service
    "100.64.0.1",
    "::ffff:100.100.100.200",  # the same, IPv4-mapped
    "::ffff:127.0.0.1",
    "fec0::1",  # IPv6 site-local
    "2002:a00:1::1",  # 6to4 carrying 10.0.0.1
    "2002:7f00:1::1",  # 6to4 carrying 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 carrying 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 carrying 127.0.0.1
    "::a00:1",  # IPv4-compatible (deprecated) 10.0.0.1
    "fc00::1",
    "fe80::1",
    "224.0.0.1",
    "ff02::1",
    "0.0.0.0",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
]


def _url_of(address: str) -> str:
    return f"http://[{address}]/hooks/x" if ":" in address else f"http://{address}/hooks/x"


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_every_non_public_address_is_refused_however_it_is_written(address: str) -> None:
    with pytest.raises(AppError) as err:
        validate_webhook_url(_url_of(address), InternalAllowList.parse(""))
    assert err.value.id == "app.delivery.webhook_url.internal.app_error"
    assert not InternalAllowList.parse("").allows_ip(ipaddress.ip_address(address))


PUBLIC_ADDRESSES = [
    "8.8.8.8",
    "2606:4700::1111",
    "::ffff:8.8.8.8",
    "2002:808:808::1",  # 6to4 carrying 8.8.8.8
    "64:ff9b::808:808",  # NAT64 carrying 8.8.8.8
]


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_addresses_pass_also_when_embedded_in_ipv6(address: str) -> None:
    url = _url_of(address)
    assert validate_webhook_url(url, InternalAllowList.parse("")) == url


def test_the_allow_list_covers_an_internal_address_in_any_of_its_forms() -> None:
    allow = InternalAllowList.parse("100.64.0.0/10")
    for address in ("100.100.100.200", "::ffff:100.100.100.200", "64:ff9b::6464:64c8"):
        assert allow.allows_ip(ipaddress.ip_address(address)), address
    assert not allow.allows_ip(ipaddress.ip_address("::ffff:10.0.0.1"))


def test_a_refused_or_rejected_webhook_stores_no_address_and_no_answer(
    store: Store, hook: FakeWebhook
) -> None:
    h = Harness(store, delivery={**DELIVERY, "allowed_untrusted_internal_connections": ""})
    h.set_webhook(hook.url.replace("127.0.0.1", "localhost"))  # a name that resolves to loopback
    h.recap()
    h.run(JobType.RECAP_DELIVERY)
    assert hook.received() == []
    saved = store.delivery.get_webhook(h.alice.id)
    assert saved is not None and saved.last_error == "refused: the address is internal"

    # Allowed: the receiver answers 400 with a body, which is not kept.
    h.rt.apply_settings(settings_for(store.db.url, delivery=DELIVERY))
    h.set_webhook(hook.url)
    hook.script(Answer(400, body_bytes=5000))
    h.clock.advance(1000)
    h.recap(title="Again")
    h.run(JobType.RECAP_DELIVERY)
    saved = store.delivery.get_webhook(h.alice.id)
    assert saved is not None and saved.last_error == "HTTP 400"
    assert [r.status for r in hook.received()] == [400]


def test_a_host_name_is_connected_at_the_address_that_was_checked(hook: FakeWebhook) -> None:
    # localhost may resolve to ::1 first, where nothing listens: the next address is tried,
    # and the receiver still sees the name in Host.
    sender = WebhookSender(2.0, InternalAllowList.parse("127.0.0.0/8 ::1/128"))
    url = hook.url.replace("127.0.0.1", "localhost")
    assert asyncio.run(sender.send(url, {"text": "hi"})) == 200
    (req,) = hook.received()
    assert req.headers["Host"] == url.split("/")[2] and req.json() == {"text": "hi"}


def test_a_receiver_that_drips_its_answer_cannot_hold_the_sender(hook: FakeWebhook) -> None:
    sender = WebhookSender(0.5, InternalAllowList.parse("127.0.0.1"))
    # The head a byte every 50 ms: each read is quick, the whole answer would take ~5 s.
    hook.script(Answer(200, drip="head", drip_s=0.05))
    started = time.monotonic()
    with pytest.raises(WebhookError) as err:
        asyncio.run(sender.send(hook.url, {"text": "hi"}))
    assert time.monotonic() - started < 1.5
    assert err.value.retryable and str(err.value) == "timed out after 0.5 s"

    # A quick head, then a body dripped or huge: the status is all that is read.
    hook.script(Answer(200, drip="body", drip_s=0.05, body_bytes=1_000_000))
    hook.script(Answer(503, body_bytes=200_000_000))
    started = time.monotonic()
    assert asyncio.run(sender.send(hook.url, {"text": "hi"})) == 200
    with pytest.raises(WebhookError) as err:
        asyncio.run(sender.send(hook.url, {"text": "hi"}))
    assert str(err.value) == "HTTP 503" and err.value.retryable
    assert time.monotonic() - started < 1.0


def test_a_stuck_delivery_job_times_out_and_is_retried(store: Store) -> None:
    h = Harness(
        store,
        delivery={**DELIVERY, "webhook_timeout_seconds": 0.1},
        mattermost_timeout_seconds=0.1,
    )
    spec = h.rt.jobs.workers[JobType.RECAP_DELIVERY]
    assert spec.timeout_s == pytest.approx(3 * 0.1 + 5 * 0.1)
    assert make_delivery_worker(h.rt.delivery, settings_for(store.db.url)).timeout_s == 180.0
    with FakeMattermost(h.clock) as mm:
        bot = mm.add_user("recap-bot", bot=True)
        h.rt.delivery.messenger = MattermostDirectMessenger(
            MattermostClient(mm.url, mm.token_for(bot), options=ClientOptions(timeout_s=5.0))
        )
        mm.fail("GET", "/api/v4/users/me", 0, delay_s=1.5)  # the chat server stalls
        h.recap()
        started = time.monotonic()
        h.run(JobType.RECAP_DELIVERY)
        assert time.monotonic() - started < 1.4
    (job,) = h.deliveries()
    assert (job.status, job.attempt) == (JobStatus.PENDING, 1)
    assert job.data["last_error"] == "timed out after 0.8 s"


# -- stale and repeated deliveries -----------------------------------------------------------


def test_a_delivery_waiting_to_retry_does_not_announce_the_regenerated_recap(
    store: Store, hook: FakeWebhook
) -> None:
    h = Harness(store)
    h.set_webhook(hook.url)
    hook.script(500)
    recap = h.recap()
    h.run(JobType.RECAP_DELIVERY)  # the first outcome's job waits in its backoff
    (first,) = h.deliveries()
    assert first.status == JobStatus.PENDING and first.data["finish_at"] == recap.finish_at
    h.clock.advance(1000)
    asyncio.run(h.rt.recaps.mark_read(h.alice.id, recap.id))  # reading does not make it stale
    assert store.recaps.get(recap.id).update_at > recap.finish_at
    h.clock.advance(1000)
    asyncio.run(h.rt.recaps.regenerate(h.alice.id, recap.id))
    h.run(JobType.RECAP)
    again = store.recaps.get(recap.id)
    assert again.status == RecapStatus.COMPLETED and again.finish_at > recap.finish_at
    h.clock.advance(3_600_000)
    h.run(JobType.RECAP_DELIVERY)
    assert {j.status for j in h.deliveries()} == {JobStatus.SUCCESS}
    # The stale job sent nothing: one webhook post and one DM per outcome.
    assert [r.status for r in hook.received()] == [500, 200]
    assert len(h.dms()) == 2


def test_a_delivery_is_still_made_after_the_recap_was_read(store: Store, hook: FakeWebhook) -> None:
    h = Harness(store)
    h.set_webhook(hook.url)
    hook.script(500)
    recap = h.recap()
    h.run(JobType.RECAP_DELIVERY)
    h.clock.advance(1000)
    asyncio.run(h.rt.recaps.mark_read(h.alice.id, recap.id))
    h.clock.advance(3_600_000)
    h.run(JobType.RECAP_DELIVERY)
    assert [r.status for r in hook.received()] == [500, 200]


def test_a_users_deliveries_do_not_overwrite_each_others_record(
    store: Store, hook: FakeWebhook
) -> None:
    h = Harness(store)
    h.set_webhook(hook.url)
    a = h.recap(title="A")
    b = h.recap(title="B")
    h.run(JobType.RECAP_DELIVERY)  # both jobs of alice, run together
    assert len(hook.received()) == 2
    for recap in (a, b):  # each job run again (recovered after a crash): nothing more is sent
        (job,) = [j for j in h.deliveries() if j.data["recap_id"] == recap.id]
        assert job.dedupe_key and store.delivery.was_delivered(job.dedupe_key)
        asyncio.run(
            h.rt.delivery.deliver(
                recap.id, "completed", recap.finish_at, job.dedupe_key, last_attempt=False
            )
        )
    assert len(hook.received()) == 2


def test_delivered_keys_are_kept_per_key_and_pruned_by_age(store: Store) -> None:
    user = "u" * 26
    hook = store.delivery.set_webhook(user, "https://hooks.example.com/a", 10)
    store.delivery.record_delivered(user, hook.url, "k1", 100)
    store.delivery.record_delivered(user, hook.url, "k2", 200)
    store.delivery.record_delivered(user, hook.url, "k2", 250)  # a repeat is harmless
    assert store.delivery.was_delivered("k1") and store.delivery.was_delivered("k2")
    assert not store.delivery.was_delivered("k3")
    later = 150 + DELIVERED_KEYS_KEPT_MS
    store.delivery.record_delivered(user, hook.url, "k3", later)
    assert not store.delivery.was_delivered("k1")  # older than kept: pruned
    assert store.delivery.was_delivered("k2") and store.delivery.was_delivered("k3")


# -- direct messages that can never be sent --------------------------------------------------


class MattermostDM:
    """A Mattermost server whose bot sends the harness's direct messages."""

    def __init__(self, h: Harness, mm: FakeMattermost, *, alice_on_server: bool) -> None:
        self.mm = mm
        bot = mm.add_user("recap-bot", bot=True)
        if alice_on_server:  # the same user on both sides, as with chat = "mattermost"
            uid = mm.add_user("alice")
            with mm.lock:
                user = mm.users.pop(uid)
                mm.users[h.alice.id] = {**user, "id": h.alice.id}
        client = MattermostClient(
            mm.url, mm.token_for(bot), options=ClientOptions(timeout_s=5.0, max_retries=0)
        )
        h.rt.delivery.messenger = MattermostDirectMessenger(client)
        self.bot = bot

    def posts_to(self, user_id: str) -> list[dict[str, Any]]:
        return self.mm.posts_in(self.mm.add_direct(self.bot, user_id))


def test_a_dm_to_a_user_unknown_to_mattermost_does_not_hold_up_the_webhook(
    store: Store, hook: FakeWebhook
) -> None:
    h = Harness(store)
    h.set_webhook(hook.url)
    with FakeMattermost(h.clock) as mm:
        MattermostDM(h, mm, alice_on_server=False)
        h.recap()
        h.run(JobType.RECAP_DELIVERY)
        assert [c.status for c in mm.calls("POST", "/api/v4/channels/direct")] == [400]
    (job,) = h.deliveries()
    assert (job.status, job.attempt) == (JobStatus.SUCCESS, 1)  # not retried
    assert [r.status for r in hook.received()] == [200]


@pytest.mark.parametrize(("path", "status"), [("/api/v4/posts", 403), ("/api/v4/posts", 404)])
def test_a_dm_refused_for_good_is_not_retried(
    store: Store, hook: FakeWebhook, path: str, status: int
) -> None:
    h = Harness(store)
    h.set_webhook(hook.url)
    with FakeMattermost(h.clock) as mm:
        dm = MattermostDM(h, mm, alice_on_server=True)
        mm.fail("POST", path, status)
        h.recap()
        h.run(JobType.RECAP_DELIVERY)
        h.clock.advance(3_600_000)
        h.run(JobType.RECAP_DELIVERY)
        assert dm.posts_to(h.alice.id) == []
    (job,) = h.deliveries()
    assert (job.status, job.attempt) == (JobStatus.SUCCESS, 1)
    assert [r.status for r in hook.received()] == [200]


def test_a_dm_that_fails_for_now_is_retried_after_the_webhook_went_out(
    store: Store, hook: FakeWebhook
) -> None:
    h = Harness(store)
    h.set_webhook(hook.url)
    with FakeMattermost(h.clock) as mm:
        dm = MattermostDM(h, mm, alice_on_server=True)
        mm.fail("POST", "/api/v4/posts", 503)
        h.recap()
        h.run(JobType.RECAP_DELIVERY)
        (job,) = h.deliveries()
        assert (job.status, job.attempt) == (JobStatus.PENDING, 1)
        assert [r.status for r in hook.received()] == [200]  # not held up by the DM
        h.clock.advance(3_600_000)
        h.run(JobType.RECAP_DELIVERY)
        assert len(dm.posts_to(h.alice.id)) == 1
    assert store.jobs.get(job.id).status == JobStatus.SUCCESS
    assert len(hook.received()) == 1  # the retry did not post the webhook again
