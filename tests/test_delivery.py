"""Delivery on both engines: a finished recap queues one recap_delivery job in the transaction
that finishes it; the job posts a direct message from the recap bot in the local workspace and
calls the user's webhook (a real HTTP receiver on loopback), retried by the job server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from recapd.app.recovery import StuckRecapRecovery
from recapd.clock import FakeClock
from recapd.delivery.local_dm import LocalDirectMessenger, derived_id, direct_channel_name
from recapd.delivery.markdown import Flavor, render_message, split_message, truncate_message
from recapd.delivery.webhook import InternalAllowList, flavor_for, validate_webhook_url
from recapd.jobs.worker import WorkerPool
from recapd.model.app_error import AppError
from recapd.model.chat import Channel, ChannelMember, ChannelType, Post
from recapd.model.ids import is_valid_id
from recapd.model.job import Job, JobStatus, JobType
from recapd.model.recap import ActionItem, Highlight, Recap, RecapChannel, RecapStatus
from recapd.runtime import Runtime
from recapd.store.store import Store
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
    assert job.data == {"recap_id": recap.id, "status": "completed"}
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
        h.rt.delivery.deliver(recap.id, "completed", job.dedupe_key or "", last_attempt=False)
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
    assert saved.last_error == "HTTP 400: invalid_payload"
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
    a = derived_id("dm", "key", "0")
    assert is_valid_id(a) and a == derived_id("dm", "key", "0") != derived_id("dm", "key", "1")
    assert direct_channel_name("b" * 26, "a" * 26) == f"{'a' * 26}__{'b' * 26}"


def test_a_direct_message_from_a_person_still_counts_as_unread(store: Store) -> None:
    h = Harness(store)
    bob = h.ws.users["bob"]
    name = direct_channel_name(bob.id, h.alice.id)
    dm = Channel(id=derived_id("t", name), team_id="", name=name, type=ChannelType.DIRECT)
    store.workspace.upsert_channels([dm])
    store.workspace.upsert_members([ChannelMember(dm.id, bob.id), ChannelMember(dm.id, h.alice.id)])
    post = Post(id=derived_id("p"), channel_id=dm.id, user_id=bob.id, message="hi", create_at=T0)
    store.workspace.add_post(post)
    assert dm.id in {c.id for c in store.workspace.unread_channels(h.alice.id)}


def test_a_user_outside_the_workspace_gets_no_direct_message_and_no_retry(store: Store) -> None:
    h = Harness(store)
    messenger = LocalDirectMessenger(store, h.clock)
    asyncio.run(messenger.send_direct("z" * 26, "hello", "k"))  # returns: nothing to do
    assert store.workspace.user_ids_by_username(["recap-bot"]) == {}
    with pytest.raises(ValueError):
        asyncio.run(messenger.send_direct("not-an-id", "hello", "k"))
