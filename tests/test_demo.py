"""`recapd demo`: the bundled channels moved into the last day, the demo user, token, schedules
and first recaps; idempotent; and served by `recapd serve` with the offline agent."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from recapd.cli.main import REAL_MODEL_HINT
from recapd.clock import FakeClock
from recapd.demo.bundled import DEMO_LOGS, shifted_log
from recapd.demo.seed import DAILY_TITLE, WEEKLY_TITLE, DemoResult, seed_demo
from recapd.model.job import JobStatus, JobType
from recapd.model.tz import load_zone, ms_to_local
from recapd.runtime import Runtime
from recapd.store.store import Store
from recapd.store.tables import posts
from tests.fake_openai import FakeOpenAI
from tests.processes import FAST_JOBS, ROOT
from tests.test_recaps_app import runtime_for
from tests.test_serve import ServeProcess

DAY_MS = 86_400_000
# A Thursday, 13:47:30 UTC (14:47:30 in Paris).
NOW = int(dt.datetime(2026, 3, 12, 13, 47, 30, tzinfo=dt.UTC).timestamp() * 1000)
POSTS = {"stripe": 160, "rust": 160, "ubuntu-meeting": 160}


def _seed(rt: Runtime, token_file: Path) -> DemoResult:
    return asyncio.run(seed_demo(rt, token_file, zone="Europe/Paris"))


def _span(store: Store, channel_id: str) -> tuple[int, int, int]:
    """(oldest, newest, replies) of the channel's posts."""
    with store.db.engine.connect() as conn:
        row = conn.execute(
            sa.select(
                sa.func.min(posts.c.create_at),
                sa.func.max(posts.c.create_at),
                sa.func.count().filter(posts.c.root_id != ""),
            ).where(posts.c.channel_id == channel_id)
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def _demo_jobs(store: Store) -> list[str]:
    return sorted(
        str(j.data["scheduled_recap_id"])
        for j in store.jobs.list_page(type=JobType.SCHEDULED_RECAP, per_page=200)
    )


def test_shifted_log_keeps_every_line_and_its_spacing() -> None:
    log = DEMO_LOGS[2]  # ubuntu-meeting: minute times, and system lines without a time
    original = (ROOT / "src/recapd/demo/data" / log.log_file).read_text().splitlines()
    text = shifted_log(log, NOW).decode().splitlines()
    assert len(text) == len(original) == POSTS[log.channel]
    assert all(line.startswith("ubuntu-meeting 2026-03-12 [") for line in text)
    # The last line ends 180 minutes before now; the log's 1 h 43 min keep their spacing.
    assert original[-1].startswith("ubuntu-meeting 2010-11-09 [19:26] <mathiaz> ")
    assert text[-1].startswith("ubuntu-meeting 2026-03-12 [10:47:30] <mathiaz> ")
    assert original[0].startswith("ubuntu-meeting 2010-11-09 [17:43] <tgardner> ")
    assert text[0].startswith("ubuntu-meeting 2026-03-12 [09:04:30] <tgardner> ")
    # System lines without a time get the time of the line before them; text is unchanged.
    assert original[23].startswith("ubuntu-meeting 2010-11-09 === bjf is now known")
    stamp = text[22][len("ubuntu-meeting 2026-03-12 ") :][:10]
    assert text[23] == f"ubuntu-meeting 2026-03-12 {stamp} === bjf is now known as bjf[afk] "
    assert [t.split("] ", 1)[1] for t in text if "] <" in t] == [
        o.split("] ", 1)[1] for o in original if "] <" in o
    ]


def test_demo_falls_in_the_last_day_and_running_it_again_adds_nothing(
    store: Store, tmp_path: Path
) -> None:
    clock = FakeClock(NOW)
    rt = runtime_for(store, clock)
    token_file = tmp_path / "token.txt"
    first = _seed(rt, token_file)

    assert {c.channel.name: c.posts for c in first.channels} == POSTS
    assert all(c.imported for c in first.channels)
    for c in first.channels:
        oldest, newest, replies = _span(store, c.channel.id)
        assert NOW - DAY_MS < oldest < newest < NOW
        assert replies > 20  # the corpus' reply-to links became threads
    stripe = next(c for c in first.channels if c.channel.name == "stripe")
    assert _span(store, stripe.channel.id)[1] // 1000 == (NOW - 4 * 60_000) // 1000

    user = first.user
    assert (user.username, user.timezone) == ("demo", "Europe/Paris")
    assert store.tokens.is_admin(user.id)
    assert sorted(c.name for c in store.workspace.channels_of_user(user.id)) == sorted(POSTS)
    assert store.workspace.unread_channels(user.id)  # never read: everything is new

    assert token_file.read_text().strip() == first.token and first.token_created
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert store.tokens.lookup(first.token) == user.id

    daily, weekly = (s.schedule for s in first.schedules)
    assert (daily.title, daily.days_of_week, daily.time_period) == (DAILY_TITLE, 127, "last_24h")
    assert (weekly.title, weekly.days_of_week, weekly.time_of_day) == (WEEKLY_TITLE, 2, "09:00")
    assert daily.timezone == weekly.timezone == "Europe/Paris"
    local_now = ms_to_local(NOW, load_zone("Europe/Paris"))
    assert (local_now.hour, local_now.minute) == (14, 47)  # CET in March, before the DST switch
    assert daily.time_of_day == "15:00"  # 10 to 15 minutes ahead, on a multiple of 5
    assert NOW + 10 * 60_000 <= daily.next_run_at <= NOW + 15 * 60_000
    assert sorted(daily.channel_ids) == sorted(c.channel.id for c in first.channels)
    assert len(first.queued_job_ids) == 2
    assert _demo_jobs(store) == sorted([daily.id, weekly.id])
    pending = store.jobs.list_page(statuses=[JobStatus.PENDING], per_page=200)
    assert {j.id for j in pending} == set(first.queued_job_ids)

    # Again, a day later: nothing imported again at the new times, nothing duplicated.
    clock.advance(DAY_MS)
    users_before = len(store.tokens.list_users())
    again = _seed(rt, token_file)
    assert {c.channel.name: c.posts for c in again.channels} == POSTS
    assert not any(c.imported for c in again.channels)
    assert again.user.id == user.id and len(store.tokens.list_users()) == users_before
    assert (again.token, again.token_created) == (first.token, False)
    assert len(store.tokens.list_for_user(user.id)) == 1
    assert [(s.schedule.id, s.created) for s in again.schedules] == [
        (daily.id, False),
        (weekly.id, False),
    ]
    assert again.queued_job_ids == [] and again.waiting_jobs == 2
    assert _demo_jobs(store) == sorted([daily.id, weekly.id])
    assert store.scheduled_recaps.count() == 2
    assert "2 queued" in "\n".join(again.lines())

    # A lost token file gets a new token; the rest stays.
    token_file.unlink()
    third = _seed(rt, token_file)
    assert third.token_created and third.token != first.token
    assert token_file.read_text().strip() == third.token
    assert store.scheduled_recaps.count() == 2


def _recapd(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECAPD_")}
    env.update(PYTHONPATH=str(ROOT), **FAST_JOBS)
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "recapd", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_demo_then_serve_shows_the_demo_recaps_made_offline(tmp_path: Path) -> None:
    out = _recapd("demo", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    token_file = tmp_path / "recapd-demo-token.txt"
    token = token_file.read_text().strip()
    assert f"saved in {token_file}): {token}" in out.stdout
    assert "2 first recaps queued" in out.stdout
    assert out.stdout.endswith(
        "next: `recapd serve`, open the URL it prints and sign in with the token\n"
    )

    node = ServeProcess(None, tmp_path)  # the default database: ./recapd.db
    try:
        node.started()
        status, _, body = node.get("/api/v4/system/ping")
        assert status == 200 and body["status"] == "OK"
        deadline = time.monotonic() + 20
        while True:
            status, _, recaps = node.get("/api/v4/recaps", token)
            assert status == 200, recaps
            done = [r for r in recaps if r["status"] in ("completed", "failed")]
            if len(recaps) == 2 and len(done) == 2:
                break
            assert time.monotonic() < deadline, (recaps, node.output())
            time.sleep(0.2)
        assert sorted(r["title"] for r in recaps) == sorted([DAILY_TITLE, WEEKLY_TITLE])
        assert all(r["status"] == "completed" for r in recaps), recaps
        for r in recaps:
            status, _, full = node.get(f"/api/v4/recaps/{r['id']}", token)
            assert status == 200
            assert sorted(ch["channel_name"] for ch in full["channels"]) == sorted(POSTS)
            assert all(ch["highlights"] for ch in full["channels"]), full
    finally:
        code, _ = node.stop()
    assert code == 0, node.output()

    again = _recapd("demo", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("(already there)") == 5
    assert "2 recaps made so far" in again.stdout
    assert f"token (unchanged, saved in {token_file}): {token}" in again.stdout
    store = Store.open(f"sqlite:///{tmp_path / 'recapd.db'}")
    try:
        assert store.recaps.count() == 2 and store.scheduled_recaps.count() == 2
    finally:
        store.close()


def test_the_demo_says_how_to_use_a_real_model_and_its_settings_work(tmp_path: Path) -> None:
    # scripts/run serves right after the demo: the "next:" hint is left out there.
    out = _recapd("demo", "--no-next-hint", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-2:] == list(REAL_MODEL_HINT)
    assert "next:" not in out.stdout
    assert REAL_MODEL_HINT[1] in (ROOT / "README.md").read_text()  # README's top says the same
    # The settings of the hint, as written, with a fake OpenAI-compatible server's address
    # in place of Ollama's, make a recap with the model.
    settings = dict(word.split("=", 1) for word in REAL_MODEL_HINT[1].split())
    with FakeOpenAI() as server:
        settings["RECAPD_AGENTS__OLLAMA__BASE_URL"] = server.base_url
        out = _recapd(
            "recap", "create", "--user", "demo", "--channel", "rust", "--wait", "--timeout", "50",
            cwd=tmp_path, env=settings,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "status: completed" in out.stdout, out.stdout
        models = {r.body.get("model") for r in server.requests if r.path.endswith("/completions")}
    assert models == {"llama3.1"}
    again = _recapd("demo", cwd=tmp_path, env=settings)
    assert REAL_MODEL_HINT[1] not in again.stdout
    assert "new recaps use agent ollama (RECAPD_DEFAULT_AGENT)" in again.stdout
