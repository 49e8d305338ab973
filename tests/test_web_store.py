"""The store parts the web pages need, on SQLite and PostgreSQL: recaps changed since a time
(live updates), unread-first listing, and the shared session-signing secret."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from recapd.model.ids import new_id
from recapd.model.recap import RecapStatus, SkipReason
from recapd.store.store import Store
from tests.factories import NOW, recap


def test_changed_since_sees_one_users_changes_in_order_deleted_included(store: Store) -> None:
    user, other = new_id(), new_id()
    old = store.recaps.save(recap(user_id=user, create_at=NOW - 10, update_at=NOW - 10))
    a = store.recaps.save(recap(user_id=user, update_at=NOW + 5))
    b = store.recaps.save(recap(user_id=user, update_at=NOW + 2))
    store.recaps.save(recap(user_id=other, update_at=NOW + 3))
    store.recaps.save(
        recap(
            user_id=user,
            update_at=NOW + 4,
            status=RecapStatus.SKIPPED,
            scheduled_recap_id=new_id(),
            scheduled_for=NOW,
            skip_reason=SkipReason.MISSED,
        )
    )
    assert [r.id for r in store.recaps.changed_since(user, NOW)] == [b.id, a.id]
    assert [r.id for r in store.recaps.changed_since(user, NOW, limit=1)] == [b.id]
    store.recaps.delete(old.id, NOW + 9)
    changed = store.recaps.changed_since(user, NOW + 6)
    assert [(r.id, r.delete_at) for r in changed] == [(old.id, NOW + 9)]
    assert store.recaps.changed_since(user, NOW + 10) == []


def test_unread_first_puts_unread_recaps_before_read_ones(store: Store) -> None:
    user = new_id()
    first = store.recaps.save(recap(user_id=user, create_at=NOW))
    second = store.recaps.save(recap(user_id=user, create_at=NOW + 1))
    third = store.recaps.save(recap(user_id=user, create_at=NOW + 2))
    store.recaps.mark_read(third.id, NOW + 3)
    plain = [r.id for r in store.recaps.list_for_user(user)]
    assert plain == [third.id, second.id, first.id]
    unread = [r.id for r in store.recaps.list_for_user(user, unread_first=True)]
    assert unread == [second.id, first.id, third.id]
    assert [r.id for r in store.recaps.list_for_user(user, 1, 2, unread_first=True)] == [third.id]


def test_a_secret_is_made_once_and_shared(store: Store) -> None:
    assert store.secrets.get("s") is None
    assert store.secrets.get_or_create("s", "first", NOW) == "first"
    assert store.secrets.get_or_create("s", "second", NOW) == "first"
    assert store.secrets.get("s") == "first"
    # Nodes asking at once all get the value of the one insert that won.
    stores = [Store.open(store.db.url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            got = list(
                pool.map(lambda i: stores[i].secrets.get_or_create("t", f"v{i}", NOW), range(4))
            )
    finally:
        for s in stores:
            s.close()
    assert len(set(got)) == 1 and got[0] in {"v0", "v1", "v2", "v3"}
    assert store.secrets.get("t") == got[0]
