"""The site of the local workspace's links: RECAPD_SITE_URL when set, else the address `recapd
serve` bound (`--port 0`, `--port N`), in the pages' permalinks, the recap bot's message and
webhooks; one warning line at start-up when the setting names another address."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from recapd.model.job import JobType
from recapd.runtime import same_address
from recapd.store.store import Store
from tests.fake_webhook import FakeWebhook
from tests.test_delivery import Harness, hook  # noqa: F401 - the fixture
from tests.test_recaps_app import runtime_for
from tests.test_serve import ServeProcess, _user_with_token


def test_unset_site_url_links_to_the_served_address_in_messages_and_webhooks(
    store: Store,
    hook: FakeWebhook,  # noqa: F811
) -> None:
    h = Harness(store)
    assert h.rt.settings.site_url == ""
    assert h.rt.serve_at("http://127.0.0.1:8123/") == ""  # unset: nothing to warn about
    h.set_webhook(hook.url)
    recap = h.recap()
    h.run(JobType.RECAP_DELIVERY)
    (post,) = h.dms()
    (req,) = hook.received()
    for text in (post.message, req.json()["text"]):
        assert "(http://127.0.0.1:8123/acme/pl/" in text
        assert f"(http://127.0.0.1:8123/recaps/{recap.id})" in text
        assert "8065" not in text
    # A reload of the settings (SIGHUP) keeps the served address.
    h.rt.apply_settings(h.rt.settings)
    assert h.rt.delivery.pages_url == "http://127.0.0.1:8123"


def test_a_set_site_url_wins_and_another_address_is_warned_about(store: Store) -> None:
    h = Harness(store, site_url="https://chat.example.com/")
    warning = h.rt.serve_at("http://127.0.0.1:8123/")
    assert warning.startswith(
        "RECAPD_SITE_URL is https://chat.example.com/ but recapd serves at http://127.0.0.1:8123"
    )
    assert h.rt.delivery.pages_url == "https://chat.example.com"
    recap = h.recap()
    h.run(JobType.RECAP_DELIVERY)
    (post,) = h.dms()
    assert f"(https://chat.example.com/recaps/{recap.id})" in post.message
    # The same address (loopback names alike, a trailing slash) is no reason to warn.
    same = runtime_for(store, site_url="http://localhost:8123")
    assert same.serve_at("http://127.0.0.1:8123/") == ""
    # Bound to every address (--host 0.0.0.0): any name of this machine on that port is it.
    named = runtime_for(store, site_url="http://recaps.internal:8123/")
    assert named.serve_at("http://127.0.0.1:8123/", any_host=True) == ""
    assert named.serve_at("http://127.0.0.1:8124/", any_host=True) != ""


@pytest.mark.parametrize(
    ("url", "served", "same"),
    [
        ("http://127.0.0.1:8065", "http://127.0.0.1:8065/", True),
        ("http://localhost:8065/", "http://127.0.0.1:8065", True),
        ("http://127.0.0.1:8065", "http://127.0.0.1:8123", False),
        ("https://127.0.0.1:8065", "http://127.0.0.1:8065", False),
        ("http://example.com", "http://127.0.0.1:80", False),
        ("http://example.com:99999", "http://127.0.0.1:8065", False),
    ],
)
def test_same_address(url: str, served: str, same: bool) -> None:
    assert same_address(url, served) is same


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bot_message(url: str, deadline_s: float = 20.0) -> str:
    """The recap bot's first direct message, once it is there."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        store = Store.open(url)
        try:
            try:
                bot = store.workspace.get_user_by_username("recap-bot")
            except Exception:
                bot = None
            if bot is not None:
                for channel in store.workspace.channels_of_user(bot.id):
                    posts = store.workspace.latest_posts(channel.id, 10)
                    if posts:
                        return posts[0].message
        finally:
            store.close()
        time.sleep(0.1)
    raise AssertionError("no message from the recap bot")


def test_serve_on_a_chosen_port_links_there_and_warns_about_another_site_url(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'recapd.db'}"
    port = _free_port()
    node = ServeProcess(url, tmp_path, "--port", str(port), name="chosen")
    try:
        node.started()
        assert f"127.0.0.1:{port}" in node.base
        store = Store.open(url)
        try:
            _, token, channel_id = _user_with_token(store)
        finally:
            store.close()
        status, _, recap = node.post(
            "/api/v4/recaps",
            {"title": "Dev", "channel_ids": [channel_id], "agent_id": "extractive"},
            token,
        )
        assert status == 201, recap
        text = _bot_message(url)
        assert f"(http://127.0.0.1:{port}/recaps/{recap['id']})" in text, text
        assert f"(http://127.0.0.1:{port}/" in text.split("/pl/")[0], text
        assert "RECAPD_SITE_URL" not in node.output()
    finally:
        assert node.stop()[0] == 0, node.output()

    other = ServeProcess(
        url, tmp_path, name="other", env={"RECAPD_SITE_URL": "http://127.0.0.1:8065"}
    )
    try:
        other.started()
        lines = [ln for ln in other.output().splitlines() if "RECAPD_SITE_URL is" in ln]
        assert len(lines) == 1 and "WARNING" in lines[0], other.output()
        assert f"recapd serves at {other.base.rstrip('/')}" in lines[0]
    finally:
        assert other.stop()[0] == 0, other.output()
