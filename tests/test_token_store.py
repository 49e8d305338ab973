"""Personal access tokens (stored hashed) and user roles, on both engines."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from recapd.model.ids import is_valid_id
from recapd.store.store import Store
from recapd.store.tables import access_tokens
from recapd.store.token_store import SYSTEM_ADMIN, hash_token
from tests.test_cli import recapd
from tests.workspace import make_workspace


def test_a_token_is_stored_hashed_and_finds_its_user(store: Store) -> None:
    ws = make_workspace(store, ["alice", "bob"], {"dev": ["alice"]})
    alice = ws.users["alice"].id
    plaintext, row = store.tokens.create(alice, "laptop", 1000)
    assert row.token_hash == hash_token(plaintext) and len(row.token_hash) == 64
    with store.db.engine.connect() as conn:
        stored = conn.execute(sa.select(access_tokens)).mappings().all()
    assert [r["token_hash"] for r in stored] == [row.token_hash]
    assert all(plaintext not in str(dict(r)) for r in stored)
    assert store.tokens.lookup(plaintext) == alice
    assert store.tokens.lookup(plaintext + "x") is None
    assert store.tokens.lookup("") is None
    assert store.tokens.lookup(plaintext, 5000) == alice
    assert store.tokens.list_for_user(alice)[0].last_used_at == 5000


def test_revoked_tokens_stop_working(store: Store) -> None:
    ws = make_workspace(store, ["alice"], {})
    alice = ws.users["alice"].id
    first, row = store.tokens.create(alice, "", 1)
    second, _ = store.tokens.create(alice, "", 2)
    assert first != second
    assert store.tokens.revoke(row.id, 10)
    assert not store.tokens.revoke(row.id, 11)
    assert store.tokens.lookup(first) is None
    assert store.tokens.lookup(second) == alice
    assert [t.description for t in store.tokens.list_for_user(alice)] == [""]


def test_roles_and_the_user_list(store: Store) -> None:
    ws = make_workspace(store, ["alice", "bob"], {})
    alice, bob = ws.users["alice"].id, ws.users["bob"].id
    assert store.tokens.get_roles(alice) == "" and not store.tokens.is_admin(alice)
    store.tokens.set_roles(alice, SYSTEM_ADMIN)
    assert store.tokens.is_admin(alice)
    store.tokens.set_roles(alice, "")
    assert not store.tokens.is_admin(alice)
    store.tokens.set_roles(bob, SYSTEM_ADMIN)
    store.tokens.create(bob, "", 1)
    listed = {u.username: (u.roles, u.tokens) for u in store.tokens.list_users()}
    assert listed == {"alice": ("", 0), "bob": (SYSTEM_ADMIN, 1)}


def test_users_cli_creates_users_and_tokens_that_sign_in(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"RECAPD_DATABASE_URL": url}
    made = recapd(
        "users", "create", "ann", "--admin", "--display-name", "Ann", cwd=tmp_path, env=env
    )
    assert made.returncode == 0, made.stderr
    user_id = made.stdout.strip()
    assert is_valid_id(user_id)
    again = recapd("users", "create", "ann", cwd=tmp_path, env=env)
    assert again.returncode == 1 and "already exists" in again.stderr
    token = recapd("users", "token", "ann", "--description", "laptop", cwd=tmp_path, env=env)
    assert token.returncode == 0, token.stderr
    listed = recapd("users", "list", cwd=tmp_path, env=env)
    assert "ann" in listed.stdout and "system_admin" in listed.stdout
    store = Store.open(url)
    try:
        assert store.tokens.lookup(token.stdout.strip()) == user_id
        assert store.tokens.is_admin(user_id)
        assert store.workspace.get_user(user_id).display_name == "Ann"
    finally:
        store.close()
