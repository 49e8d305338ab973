"""The `/recap` slash command, on both engines, through the loopback Mattermost server: the
form Mattermost sends, the token check, every subcommand, the note posted to the response URL
when a recap is done, and a schedule made with `/recap schedule` that fires, reads only the
reader's channels and arrives as direct messages split under a small MaxPostSize."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from recapd.app.slash_command import HELP, describe_days, parse_days, period_for
from recapd.clock import FakeClock
from recapd.model.job import JobType
from recapd.model.recap import ChannelStatus, RecapStatus
from recapd.model.scheduled_recap import FRIDAY, MONDAY, WEDNESDAY
from recapd.store.store import Store
from tests.fake_mattermost import FakeMattermost
from tests.jobhelpers import wait_until
from tests.test_mattermost_signin import HOUR, MIN, SLASH_TOKEN, T0, MattermostWorld
from tests.test_scheduled_recaps import scheduler_of

SMALL_POST_SIZE = 300


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def mm(clock: FakeClock) -> Iterator[FakeMattermost]:
    with FakeMattermost(clock, max_post_size=SMALL_POST_SIZE) as server:
        yield server


class Slash:
    """Types `/recap ...` as a user in a channel, as the Mattermost server would send it."""

    def __init__(self, w: MattermostWorld, api: httpx.AsyncClient) -> None:
        self.w, self.api = w, api
        self.last_form: dict[str, str] = {}
        self.last_seconds = 0.0

    async def send(
        self, text: str, user: str = "alice", channel: str = "", **form: str
    ) -> httpx.Response:
        w = self.w
        uid = {"alice": w.alice, "bob": w.bob, "carol": w.carol}[user]
        self.last_form = w.mm.slash_form(uid, channel or w.dev, text, token=SLASH_TOKEN) | form
        started = time.monotonic()
        resp = await self.api.post("/api/v4/slash/recap", data=self.last_form)
        self.last_seconds = time.monotonic() - started
        return resp

    async def __call__(self, text: str, user: str = "alice", channel: str = "") -> str:
        resp = await self.send(text, user, channel)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["response_type"] == "ephemeral" and set(body) == {"response_type", "text"}
        assert self.last_seconds < 3.0  # Mattermost's limit
        text_: str = body["text"]
        return text_

    def notes(self) -> list[Any]:
        return self.w.mm.command_responses(self.last_form["response_url"])


def run_slash(w: MattermostWorld, body: Any) -> None:
    async def main() -> None:
        async with w.api() as api:
            await body(Slash(w, api))

    w.run(main)


def test_the_command_token_is_checked(store: Store, mm: FakeMattermost, clock: FakeClock) -> None:
    w = MattermostWorld(store, mm, clock)

    async def body(slash: Slash) -> None:
        for token in ("", "wrong", SLASH_TOKEN + "x"):
            resp = await slash.send("list", token=token)
            assert resp.status_code == 401
            assert resp.json()["response_type"] == "ephemeral"
            assert "token" in resp.json()["text"]
        # Mattermost may send the token as `Authorization: Token ...` instead.
        form = mm.slash_form(w.alice, w.dev, "list", token="")
        resp = await slash.api.post(
            "/api/v4/slash/recap", data=form, headers={"Authorization": f"Token {SLASH_TOKEN}"}
        )
        assert resp.status_code == 200 and "no scheduled recaps" in resp.json()["text"]
        # Without a user id the command cannot be run as anyone.
        resp = await slash.send("list", user_id="")
        assert resp.status_code == 400 and resp.json()["response_type"] == "ephemeral"

    run_slash(w, body)


def test_no_slash_token_configured_means_the_command_is_off(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock, mattermost_slash_token="")

    async def body(slash: Slash) -> None:
        assert (await slash.send("list", token="")).status_code == 401

    run_slash(w, body)


def test_help_and_unknown_subcommands(store: Store, mm: FakeMattermost, clock: FakeClock) -> None:
    w = MattermostWorld(store, mm, clock)

    async def body(slash: Slash) -> None:
        assert await slash("") == HELP
        assert await slash("help") == HELP
        assert "/recap now" in HELP and "/recap schedule" in HELP
        assert "Unknown command `frobnicate`" in await slash("frobnicate")

    run_slash(w, body)


def test_now_recaps_the_current_channel_and_reports_back(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)
    mm.add_post(w.dev, w.bob, "The deploy of the billing service is done.", create_at=T0 - HOUR)
    mm.add_post(w.dev, w.alice, "@bob please write the release notes.", create_at=T0 - 50 * MIN)

    async def body(slash: Slash) -> None:
        answer = await slash("now")
        assert "Recap of ~dev" in answer and "note here" in answer
        (recap,) = store.recaps.list_for_user(w.alice)
        assert recap.channel_ids == [w.dev] and recap.status == RecapStatus.PENDING
        assert slash.notes() == []  # nothing is ready yet
        await w.run_jobs(JobType.RECAP)
        await wait_until(lambda: bool(slash.notes()), timeout=10)
        (note,) = slash.notes()
        assert note["response_type"] == "ephemeral"
        assert "Recap of ~dev" in note["text"] and "is ready" in note["text"]
        # And the recap itself arrives as a direct message from the bot.
        await w.run_jobs(JobType.RECAP_DELIVERY)
        dm = mm.add_direct(w.bot, w.alice)
        posts = mm.posts_in(dm)
        assert posts and all(p["user_id"] == w.bot for p in posts)

    run_slash(w, body)


def test_now_with_named_channels_and_its_mistakes(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)

    async def body(slash: Slash) -> None:
        answer = await slash("now ~ops ~dev")
        assert "Recap of ~ops, ~dev" in answer
        (recap,) = store.recaps.list_for_user(w.alice)
        assert recap.channel_ids == [w.ops, w.dev]
        # hr exists but alice is not in it: it does not resolve for her.
        assert "not in a channel of that name" in await slash("now ~hr")
        assert "not in a channel of that name" in await slash("now ~nowhere")
        assert "write channels as `~name`" in await slash("now dev")
        # Typed in a channel she cannot read: no recap, a clear answer.
        assert "cannot read this channel" in await slash("now", channel=w.hr)
        assert len(store.recaps.list_for_user(w.alice)) == 1

    run_slash(w, body)


def test_schedule_parses_days_time_zone_and_channels(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock, ai_recaps={"max_scheduled_recaps": 10})

    async def body(slash: Slash) -> None:
        answer = await slash("schedule mon,wed,fri 9:00 America/New_York ~dev ~ops")
        assert "Mon, Wed, Fri at 09:00 America/New_York" in answer
        sr_id = re.search(r"Id `([a-z0-9]{26})`", answer).group(1)  # type: ignore[union-attr]
        sr = store.scheduled_recaps.get(sr_id)
        assert (sr.user_id, sr.days_of_week, sr.time_of_day) == (
            w.alice,
            MONDAY | WEDNESDAY | FRIDAY,
            "09:00",
        )
        assert (sr.timezone, sr.channel_mode, sr.channel_ids) == (
            "America/New_York",
            "specific",
            [w.dev, w.ops],
        )
        assert sr.time_period == "since_last_read" and sr.title == "Recap of ~dev, ~ops"
        # No zone: alice's profile zone.
        answer = await slash("schedule daily 07:30 ~dev")
        assert "daily at 07:30 Europe/Paris" in answer
        # carol's profile has none: UTC, and she is told so.
        answer = await slash("schedule weekdays 08:00 ~ops", user="carol", channel=w.ops)
        assert "weekdays at 08:00 UTC" in answer and "no time zone" in answer
        # Every unread channel instead of a list.
        answer = await slash("schedule fri 17:00 Europe/Paris unreads")
        found = {s.title: s for s in store.scheduled_recaps.list_for_user(w.alice, 0, 60)}
        weekly = found["Recap of unread channels"]
        assert (weekly.channel_mode, weekly.channel_ids, weekly.time_period) == (
            "all_unreads",
            [],
            "last_week",
        )
        assert len(store.scheduled_recaps.list_for_user(w.alice, 0, 60)) == 3
        # Mistakes are answered, nothing is made.
        mistakes = {
            "schedule someday 09:00 ~dev": "not a set of days",
            "schedule fri-mon 09:00 ~dev": "runs forward",
            "schedule daily 25:00 ~dev": "not a time of day",
            "schedule daily 09:00 Mars/Olympus ~dev": "not a time zone",
            "schedule daily 09:00 Europe/Paris": "Name the channels",
            "schedule daily 09:00": "Usage",
            "schedule daily 09:00 ~hr": "not in a channel of that name",
        }
        for text, expected in mistakes.items():
            assert expected in await slash(text), text
        assert len(store.scheduled_recaps.list_for_user(w.alice, 0, 60)) == 3

    run_slash(w, body)


def test_list_pause_resume_delete_and_run(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)
    mm.add_post(w.dev, w.bob, "Standup moved to 10:00 from Monday.", create_at=T0 - HOUR)

    async def body(slash: Slash) -> None:
        assert "no scheduled recaps" in await slash("list")
        await slash("schedule weekdays 09:00 ~dev")
        await slash("schedule daily 18:00 ~ops")
        listing = await slash("list")
        rows = [line for line in listing.splitlines() if line.startswith("| `")]
        assert len(rows) == 2 and all("| active |" in r for r in rows)
        assert "Recap of ~dev" in listing and "weekdays 09:00 Europe/Paris" in listing
        dev = next(
            s for s in store.scheduled_recaps.list_for_user(w.alice, 0, 60) if "dev" in s.title
        )

        assert "Paused" in await slash(f"pause {dev.id[:6]}")  # a prefix is enough
        assert not store.scheduled_recaps.get(dev.id).enabled
        assert "| paused |" in await slash("list")
        assert "Resumed" in await slash(f"resume {dev.id}")
        assert store.scheduled_recaps.get(dev.id).enabled
        # Someone else's schedule is as unknown as a missing one.
        assert "no schedule" in await slash(f"pause {dev.id}", user="bob")
        assert "no schedule" in await slash("pause zzzzzzzz")
        assert "Usage" in await slash("pause")

        answer = await slash(f"run {dev.id}")
        assert "Running" in answer and "note here" in answer
        await w.run_jobs(JobType.SCHEDULED_RECAP)
        await wait_until(lambda: bool(slash.notes()), timeout=10)
        (note,) = slash.notes()
        assert "Recap of ~dev" in note["text"] and "is ready" in note["text"]
        (recap,) = [r for r in store.recaps.list_for_user(w.alice) if r.scheduled_recap_id]
        assert recap.status == RecapStatus.COMPLETED and recap.channel_ids == [w.dev]

        assert "Deleted" in await slash(f"delete {dev.id}")
        assert dev.id not in await slash("list")

    run_slash(w, body)


def test_a_slash_schedule_fires_and_arrives_as_split_direct_messages(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)

    async def body(slash: Slash) -> None:
        answer = await slash("schedule daily 09:00 Europe/Paris ~dev ~ops")
        sr_id = re.search(r"Id `([a-z0-9]{26})`", answer).group(1)  # type: ignore[union-attr]
        sr = store.scheduled_recaps.get(sr_id)
        due = sr.next_run_at
        lines = [
            (w.bob, "The payments release is blocked on the flaky sandbox test."),
            (w.alice, "We decided to mock the sandbox in CI and keep one nightly run."),
            (w.bob, "I will update the CI config to use the mock by Friday."),
            (w.alice, "Thanks. The status page also needs the new incident template."),
        ]
        for i, (who, text) in enumerate(lines):
            mm.add_post(w.dev, who, text, create_at=due - 3 * HOUR + i * MIN)
        mm.add_post(
            w.ops, w.carol, "Disk on db2 is at 91%, expanding it tonight.", create_at=due - HOUR
        )
        mm.add_post(w.hr, w.carol, "Salary review notes, confidential.", create_at=due - HOUR)
        mm.leave(w.ops, w.alice)  # left between scheduling and running

        clock.set(due + 5_000)
        report = scheduler_of(w.rt).drain(clock.now_ms(), None, w.rt.settings)
        assert report.enqueued == 1
        await w.run_jobs(JobType.SCHEDULED_RECAP)
        (found,) = [r for r in store.recaps.list_for_user(w.alice) if r.scheduled_recap_id]
        recap = store.recaps.get(found.id)
        assert recap.status == RecapStatus.COMPLETED and recap.scheduled_for == due
        by_id = {c.channel_id: c for c in recap.channels}
        assert by_id[w.dev].status == ChannelStatus.SUCCESS and by_id[w.dev].highlights
        assert by_id[w.ops].status == ChannelStatus.FAILED  # no longer hers
        assert w.hr not in by_id
        # Nothing of a channel she cannot read was ever fetched.
        assert not mm.calls("GET", f"/api/v4/channels/{w.hr}/posts")
        assert not mm.calls("GET", f"/api/v4/channels/{w.ops}/posts")

        await w.run_jobs(JobType.RECAP_DELIVERY)
        (job,) = store.jobs.list_page(type=JobType.RECAP_DELIVERY)
        assert job.status == "success", job.data
        dm = mm.add_direct(w.bot, w.alice)
        parts = mm.posts_in(dm)
        assert len(parts) > 1  # split under the server's small MaxPostSize
        n = len(parts)
        for i, post in enumerate(parts, 1):
            assert post["user_id"] == w.bot and post["props"]["from_bot"] == "true"
            assert len(post["message"]) <= SMALL_POST_SIZE
            assert post["message"].endswith(f"_(part {i} of {n})_")
        whole = "\n".join(p["message"] for p in parts)
        cited = {pid for c in recap.channels for h in c.highlights for pid in h.post_ids}
        assert cited
        for pid in cited:  # every cited post's link is whole inside one part
            assert any(f"/acme/pl/{pid})" in p["message"] for p in parts), (
                pid,
                [p["message"] for p in parts],
            )
        assert "Salary" not in whole
        # The server sent its session cookie after each post; recapd kept none of them.
        posts_made = mm.calls("POST", "/api/v4/posts")
        assert len(posts_made) == n
        assert all("Set-Cookie" in r.response_headers for r in posts_made)
        assert all("cookie" not in r.headers for r in mm.requests)
        assert len(w.rt.chat.client.cookies) == 0  # type: ignore[attr-defined]

    run_slash(w, body)


def test_day_words() -> None:
    assert parse_days("weekdays") == 62 and parse_days("daily") == 127
    assert parse_days("weekends") == 65 and parse_days("Mon-Wed,sat") == 2 | 4 | 8 | 64
    assert describe_days(62) == "weekdays" and describe_days(2 | 64) == "Mon, Sat"
    assert period_for(127) == "last_24h" and period_for(32) == "last_week"
    assert period_for(62) == "since_last_read"


def test_a_slow_command_is_answered_at_once_and_finished_via_the_response_url(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)
    # Listing the channels takes 3 s (real time): longer than Mattermost waits for an answer.
    mm.fail("GET", r"/api/v4/users/me/channels", 0, delay_s=3.0)

    async def body(slash: Slash) -> None:
        answer = await slash("schedule daily 09:00 ~dev")
        assert "Working on it" in answer and slash.last_seconds < 3.0
        await wait_until(lambda: bool(slash.notes()), timeout=10)
        (note,) = slash.notes()
        assert note["response_type"] == "ephemeral"
        assert note["text"].startswith("Scheduled \u201cRecap of ~dev\u201d: daily at 09:00")
        assert len(store.scheduled_recaps.list_for_user(w.alice, 0, 60)) == 1

    run_slash(w, body)


def test_notes_go_only_to_the_mattermost_server(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)
    mm.add_post(w.dev, w.bob, "Lunch moved to noon.", create_at=T0 - HOUR)

    async def body(slash: Slash) -> None:
        elsewhere = "http://203.0.113.9/hooks/commands/" + "a" * 26
        resp = await slash.send("now", response_url=elsewhere)
        assert resp.status_code == 200
        assert "note here" not in resp.json()["text"]  # no note promised, none sent
        (recap,) = store.recaps.list_for_user(w.alice)
        assert recap.channel_ids == [w.dev]
        assert not w.rt.slash._tasks

    run_slash(w, body)


def test_a_mattermost_server_under_a_sub_path_gets_its_notes(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    mm.site_url_override = mm.url + "/chat"
    w = MattermostWorld(store, mm, clock, mattermost_url=mm.url + "/chat")
    mm.add_post(w.dev, w.bob, "Lunch moved to noon.", create_at=T0 - HOUR)

    async def body(slash: Slash) -> None:
        answer = await slash("now")
        assert slash.last_form["response_url"].startswith(mm.url + "/chat/hooks/commands/")
        assert "note here" in answer
        await w.run_jobs(JobType.RECAP)
        await wait_until(lambda: bool(slash.notes()), timeout=10)
        assert "is ready" in slash.notes()[0]["text"]
        # The same server's hooks outside its sub-path are not its command hooks.
        outside = mm.url + "/hooks/commands/" + "a" * 26
        resp = await slash.send("now", response_url=outside)
        assert "note here" not in resp.json()["text"]

    run_slash(w, body)


def test_a_slow_site_url_lookup_counts_within_the_answer_budget(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    # The response URL is on the SiteURL (another name for the server than recapd's
    # configured URL), so checking it asks the server, which takes 3 s (real time).
    mm.site_url_override = mm.url.replace("127.0.0.1", "localhost")
    w = MattermostWorld(store, mm, clock)
    mm.add_post(w.dev, w.bob, "Lunch moved to noon.", create_at=T0 - HOUR)
    mm.fail("GET", "/api/v4/config/client", 0, delay_s=3.0)

    async def body(slash: Slash) -> None:
        answer = await slash("now")  # within Mattermost's 3 s
        assert "Working on it" in answer, answer
        await wait_until(lambda: bool(slash.notes()), timeout=10)
        assert "Recap of ~dev" in slash.notes()[0]["text"]  # the command's answer
        await w.run_jobs(JobType.RECAP)
        await wait_until(lambda: len(slash.notes()) == 2, timeout=10)
        assert "is ready" in slash.notes()[1]["text"]

    run_slash(w, body)


def test_a_command_body_beyond_64_kib_is_refused_even_when_chunked(
    store: Store, mm: FakeMattermost, clock: FakeClock
) -> None:
    w = MattermostWorld(store, mm, clock)

    def chunked(text: str) -> tuple[Any, dict[str, str]]:
        data = urlencode(mm.slash_form(w.alice, w.dev, text, token=SLASH_TOKEN)).encode()

        async def pieces() -> AsyncIterator[bytes]:
            for i in range(0, len(data), 4096):
                yield data[i : i + 4096]

        return pieces(), {"Content-Type": "application/x-www-form-urlencoded"}

    async def body(slash: Slash) -> None:
        content, headers = chunked("now " + "~dev " * 14_000)
        resp = await slash.api.post("/api/v4/slash/recap", content=content, headers=headers)
        assert "content-length" not in {k.lower() for k in resp.request.headers}
        assert resp.status_code == 413, resp.text
        assert resp.json()["id"] == "api.context.request_body_too_large.app_error"
        assert store.recaps.list_for_user(w.alice) == []
        # A command of a usual size, chunked all the same, is run.
        content, headers = chunked("list")
        resp = await slash.api.post("/api/v4/slash/recap", content=content, headers=headers)
        assert resp.status_code == 200 and "no scheduled recaps" in resp.json()["text"]

    run_slash(w, body)
