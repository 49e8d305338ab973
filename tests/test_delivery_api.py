"""/api/v4/users/me/recap_webhook on both engines, and `recapd users webhook`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from recapd.cli import app as cli_app
from recapd.model.chat import User
from recapd.model.ids import new_id
from recapd.store.store import Store
from tests.test_api import assert_error, make_api

HOOK = "https://hooks.example.com/hooks/abc123"
PATH = "/users/me/recap_webhook"


def test_webhook_routes_happy_path(store: Store) -> None:
    api = make_api(store)
    assert_error(api.call("GET", PATH), 404, "app.delivery.webhook.not_found.app_error")
    resp = api.call("PUT", PATH, json={"url": f"  {HOOK} "})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["url"] == HOOK and body["user_id"] == api.ws.users["alice"].id
    assert body["create_at"] == body["update_at"] == api.clock.now_ms()
    assert (body["last_delivery_at"], body["last_error"], body["last_error_at"]) == (0, "", 0)
    assert api.call("GET", PATH).json() == body

    api.clock.advance(5000)
    other = "http://chat.example.com/hooks/zzz"
    replaced = api.call("PUT", PATH, json={"url": other}).json()
    assert (replaced["url"], replaced["create_at"]) == (other, body["create_at"])
    assert replaced["update_at"] == api.clock.now_ms()

    # Bob has none and cannot see or change alice's.
    assert_error(api.call("GET", PATH, user="bob"), 404, "app.delivery.webhook.not_found.app_error")
    assert api.call("DELETE", PATH, user="bob").json() == {"status": "OK"}
    assert api.call("GET", PATH).json()["url"] == other

    assert api.call("DELETE", PATH).json() == {"status": "OK"}
    assert_error(api.call("GET", PATH), 404, "app.delivery.webhook.not_found.app_error")
    assert api.call("DELETE", PATH).json() == {"status": "OK"}  # removing nothing is fine


def test_webhook_routes_refuse_bad_urls_with_their_ids(store: Store) -> None:
    api = make_api(store)
    cases = {
        "ftp://hooks.example.com/x": "scheme",
        "": "empty",
        "https://": "host",
        "https://hooks.example.com/a b": "invalid",
        "http://127.0.0.1:8065/hooks/x": "internal",
        "http://169.254.169.254/latest": "internal",
    }
    for url, reason in cases.items():
        body = assert_error(
            api.call("PUT", PATH, json={"url": url}),
            400,
            f"app.delivery.webhook_url.{reason}.app_error",
        )
        assert body["message"]
    invalid = "api.context.invalid_body_param.app_error"
    assert_error(api.call("PUT", PATH, json={}), 400, invalid)
    assert_error(api.call("PUT", PATH, json={"url": 5}), 400, invalid)
    assert_error(api.call("PUT", PATH, content=b"not json"), 400, invalid)
    assert_error(api.call("PUT", PATH, json={"url": "https://h.example.com/\x00"}), 400, invalid)
    assert_error(api.call("GET", PATH), 404, "app.delivery.webhook.not_found.app_error")


def test_webhook_routes_need_a_token(store: Store) -> None:
    api = make_api(store)
    expired = "api.context.session_expired.app_error"
    for method in ("GET", "PUT", "DELETE"):
        assert_error(api.call(method, PATH, user=None, json={"url": HOOK}), 401, expired)
    bad = {"Authorization": "Bearer nope"}
    assert_error(api.call("GET", PATH, user=None, headers=bad), 401, expired)
    assert_error(api.call("GET", PATH), 404, "app.delivery.webhook.not_found.app_error")


def test_users_webhook_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli_app, ["--database-url", url, *args])
        return result.exit_code, result.output

    assert run("migrate")[0] == 0
    store = Store.open(url)
    try:
        store.workspace.upsert_users([User(id=new_id(), username="alice")])
    finally:
        store.close()
    assert run("users", "webhook", "alice") == (0, "no webhook is set for alice\n")
    assert run("users", "webhook", "alice", HOOK) == (0, HOOK + "\n")
    assert run("users", "webhook", "@alice") == (0, HOOK + "\n")
    code, out = run("users", "webhook", "alice", "ftp://x.example.com/")
    assert code == 1 and out.startswith("error: ") and "app_error" not in out
    code, out = run("--verbose", "users", "webhook", "alice", "ftp://x.example.com/")
    assert code == 1 and "id: app.delivery.webhook_url.scheme.app_error" in out
    assert run("users", "webhook", "alice", "--clear") == (0, "webhook removed\n")
    assert run("users", "webhook", "alice", "--clear") == (0, "no webhook was set\n")
