"""Issue 7's "done when", as real processes: `recapd serve` with `RECAPD_CHAT=mattermost`
against the loopback Mattermost server makes a schedule's recap of that server's channels and
delivers it to the reader as a direct message from the bot."""

from __future__ import annotations

import time
from pathlib import Path

from recapd.clock import SystemClock
from tests.fake_mattermost import FakeMattermost
from tests.test_serve import ServeProcess

MIN = 60_000


def test_serve_on_mattermost_recaps_a_schedule_and_delivers_it_by_dm(tmp_path: Path) -> None:
    with FakeMattermost(SystemClock()) as mm:
        alice = mm.add_user("alice", timezone="Europe/Paris")
        bob = mm.add_user("bob")
        bot = mm.add_user("recap-bot", bot=True)
        team = mm.add_team("acme", members=[alice, bob, bot])
        dev = mm.add_channel(team, "dev", members=[alice, bob, bot])
        secret = mm.add_channel(team, "secret", type="P", members=[bob, bot])
        now = SystemClock().now_ms()
        for i, text in enumerate(
            [
                "The deploy of 2.3 is blocked on the failing migration test.",
                "I will fix the migration test today.",
                "Decision: we ship 2.3 on Thursday after the fix.",
            ]
        ):
            mm.add_post(dev, bob, text, create_at=now - (30 - i) * MIN)
        mm.add_post(secret, bob, "Salaries are in the sheet.", create_at=now - 20 * MIN)
        node = ServeProcess(
            f"sqlite:///{tmp_path}/r.db",
            tmp_path,
            env={
                "RECAPD_CHAT": "mattermost",
                "RECAPD_MATTERMOST_URL": mm.url,
                "RECAPD_MATTERMOST_TOKEN": mm.token_for(bot),
            },
        )
        try:
            node.started()
            token = mm.token_for(alice)  # alice signs in with her Mattermost token
            status, _, sr = node.post(
                "/api/v4/scheduled_recaps",
                {
                    "title": "Dev",
                    "days_of_week": 127,
                    "time_of_day": "09:00",
                    "time_period": "last_24h",
                    "channel_mode": "specific",
                    "channel_ids": [dev],
                    "agent_id": "extractive",
                },
                token,
            )
            assert status == 201, sr
            assert sr["user_id"] == alice and sr["timezone"] == "Europe/Paris"
            status, _, denied = node.post(
                "/api/v4/scheduled_recaps",
                {"title": "x", "days_of_week": 127, "time_of_day": "09:00",
                 "time_period": "last_24h", "channel_mode": "specific",
                 "channel_ids": [secret], "agent_id": "extractive"},
                token,
            )  # fmt: skip
            assert status == 403, denied
            status, _, _ = node.post(f"/api/v4/scheduled_recaps/{sr['id']}/run_now", {}, token)
            assert status in (200, 201)
            dm = mm.add_direct(alice, bot)
            deadline = time.monotonic() + 30
            while not mm.posts_in(dm) and time.monotonic() < deadline:
                time.sleep(0.1)
            posts = mm.posts_in(dm)
            assert posts, node.output()
            text = "\n".join(p["message"] for p in posts)
            assert all(p["user_id"] == bot for p in posts)
            assert "Dev" in text and f"{mm.site_url}/acme/pl/" in text
            assert "Salaries" not in text
            status, _, recaps = node.get("/api/v4/recaps", token)
            assert status == 200 and [r["status"] for r in recaps] == ["completed"]
        finally:
            code, _ = node.stop()
        assert code == 0, node.output()
