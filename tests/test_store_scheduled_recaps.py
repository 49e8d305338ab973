"""ScheduledRecapStore on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from recapd.model.app_error import AppError
from recapd.model.ids import new_id
from recapd.store.store import Store
from tests.factories import NOW, scheduled_recap


def test_save_and_get_round_trip(store: Store) -> None:
    sr = scheduled_recap(custom_instructions="Be brief", channel_ids=[new_id(), new_id()])
    store.scheduled_recaps.save(sr)
    got = store.scheduled_recaps.get(sr.id)
    assert got == sr


def test_get_missing_is_404(store: Store) -> None:
    with pytest.raises(AppError) as err:
        store.scheduled_recaps.get(new_id())
    assert err.value.status_code == 404
    assert err.value.id == "store.sql_scheduled_recap.get.not_found.app_error"


def test_save_if_under_limit_counts_only_enabled_live(store: Store) -> None:
    user = new_id()
    s = store.scheduled_recaps
    first = s.save_if_under_limit(scheduled_recap(user_id=user), 2)
    s.save_if_under_limit(scheduled_recap(user_id=user), 2)
    with pytest.raises(AppError) as err:
        s.save_if_under_limit(scheduled_recap(user_id=user), 2)
    assert err.value.id == "app.scheduled_recap.limit_reached.app_error"
    # Another user is not affected.
    s.save_if_under_limit(scheduled_recap(), 2)
    # Pausing or deleting frees a slot.
    s.set_enabled(first.id, False, NOW + 1)
    third = s.save_if_under_limit(scheduled_recap(user_id=user), 2)
    s.delete(third.id, NOW + 2)
    s.save_if_under_limit(scheduled_recap(user_id=user), 2)
    # -1 is unlimited.
    s.save_if_under_limit(scheduled_recap(user_id=user), -1)


def test_enable_if_under_limit_rechecks_the_limit_on_resume(store: Store) -> None:
    user = new_id()
    s = store.scheduled_recaps
    paused = s.save(scheduled_recap(user_id=user, enabled=False))
    s.save(scheduled_recap(user_id=user))
    with pytest.raises(AppError) as err:
        s.enable_if_under_limit(paused.id, 1, NOW + 5, NOW + 1)
    assert err.value.id == "app.scheduled_recap.limit_reached.app_error"
    assert s.get(paused.id).enabled is False
    resumed = s.enable_if_under_limit(paused.id, 2, NOW + 5, NOW + 1)
    assert resumed.enabled is True
    assert resumed.next_run_at == NOW + 5


def test_list_for_user_newest_first_with_paging_and_no_deleted(store: Store) -> None:
    user = new_id()
    s = store.scheduled_recaps
    made = [s.save(scheduled_recap(user_id=user, create_at=NOW + i)) for i in range(5)]
    s.save(scheduled_recap())  # someone else's
    s.delete(made[4].id, NOW + 10)
    page0 = s.list_for_user(user, page=0, per_page=3)
    page1 = s.list_for_user(user, page=1, per_page=3)
    assert [x.id for x in page0] == [made[3].id, made[2].id, made[1].id]
    assert [x.id for x in page1] == [made[0].id]


def test_update_is_guarded_against_lost_updates(store: Store) -> None:
    s = store.scheduled_recaps
    sr = s.save(scheduled_recap())
    first = s.get(sr.id)
    second = s.get(sr.id)
    first.title = "First edit"
    first.update_at = NOW + 1
    updated = s.update(first, expected_update_at=sr.update_at)
    assert updated.title == "First edit"
    assert updated.update_at > sr.update_at
    second.title = "Stale edit"
    with pytest.raises(AppError) as err:
        s.update(second, expected_update_at=sr.update_at)
    assert err.value.status_code == 409
    assert s.get(sr.id).title == "First edit"


def test_update_keeps_run_bookkeeping(store: Store) -> None:
    s = store.scheduled_recaps
    sr = s.save(scheduled_recap())
    s.mark_executed(sr.id, NOW + 100)
    fresh = s.get(sr.id)
    expected = fresh.update_at
    fresh.run_count = 0  # a client cannot reset these through update
    fresh.last_run_at = 0
    fresh.update_at = NOW + 200
    s.update(fresh, expected_update_at=expected)
    got = s.get(sr.id)
    assert got.run_count == 1
    assert got.last_run_at == NOW + 100


def test_soft_delete(store: Store) -> None:
    s = store.scheduled_recaps
    sr = s.save(scheduled_recap())
    s.delete(sr.id, NOW + 5)
    with pytest.raises(AppError):
        s.get(sr.id)
    assert s.get(sr.id, include_deleted=True).delete_at == NOW + 5
    with pytest.raises(AppError):
        s.delete(sr.id, NOW + 6)


def test_get_due_before_order_filter_and_keyset_cursor(store: Store) -> None:
    s = store.scheduled_recaps
    due = [s.save(scheduled_recap(next_run_at=NOW - 1000 + (i % 3))) for i in range(7)]
    s.save(scheduled_recap(next_run_at=NOW + 1))  # not due yet
    s.save(scheduled_recap(next_run_at=NOW - 5, enabled=False))  # paused
    gone = s.save(scheduled_recap(next_run_at=NOW - 5))
    s.delete(gone.id, NOW)
    expected = sorted(due, key=lambda x: (x.next_run_at, x.id))
    seen = []
    cursor = None
    while True:
        batch = s.get_due_before(NOW, 3, cursor)
        if not batch:
            break
        seen.extend(batch)
        cursor = (batch[-1].next_run_at, batch[-1].id)
    assert [x.id for x in seen] == [x.id for x in expected]
    assert [x.id for x in s.get_due_before(NOW, 100)] == [x.id for x in expected]


def test_due_query_uses_the_partial_index(store: Store) -> None:
    # The query's cost must not grow with rows that are not due: it must walk the index.
    import sqlalchemy as sa

    from recapd.store.tables import SCHEDULE_LIVE, scheduled_recaps

    t = scheduled_recaps
    q = (
        sa.select(t.c.id)
        .where(SCHEDULE_LIVE, t.c.next_run_at <= NOW)
        .order_by(t.c.next_run_at, t.c.id)
        .limit(10)
    )
    with store.db.engine.connect() as conn:
        if store.db.is_postgres:
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = conn.execute(
                sa.text("EXPLAIN " + str(q.compile(conn, compile_kwargs={"literal_binds": True})))
            ).fetchall()
        else:
            plan = conn.execute(
                sa.text(
                    "EXPLAIN QUERY PLAN "
                    + str(q.compile(conn, compile_kwargs={"literal_binds": True}))
                )
            ).fetchall()
    text = " ".join(str(r) for r in plan)
    assert "ix_scheduled_recaps_due" in text, text
    assert "TEMP B-TREE" not in text.upper()


def test_mark_executed_counts_the_run_and_leaves_the_timetable_alone(store: Store) -> None:
    s = store.scheduled_recaps
    sr = s.save(scheduled_recap(next_run_at=NOW + 10_000))
    s.mark_executed(sr.id, NOW, scheduled_for=NOW - 5)
    got = s.get(sr.id)
    assert (got.run_count, got.last_run_at, got.next_run_at) == (1, NOW, NOW + 10_000)
    assert s.mark_executed(sr.id, NOW + 1, scheduled_for=NOW - 5) is None  # a retried job
    assert s.get(sr.id).run_count == 1
    with pytest.raises(AppError):
        s.mark_executed(new_id(), NOW)


def test_set_enabled(store: Store) -> None:
    s = store.scheduled_recaps
    sr = s.save(scheduled_recap())
    s.set_enabled(sr.id, False, NOW + 1)
    assert s.get(sr.id).enabled is False
    s.set_enabled(sr.id, True, NOW + 2, next_run_at=NOW + 99)
    got = s.get(sr.id)
    assert got.enabled is True and got.next_run_at == NOW + 99
    with pytest.raises(AppError):
        s.set_enabled(new_id(), True, NOW)


def test_transaction_composes_and_rolls_back(store: Store) -> None:
    sr = scheduled_recap()
    with pytest.raises(RuntimeError), store.transaction() as conn:
        store.scheduled_recaps.save(sr, conn=conn)
        raise RuntimeError("boom")
    with pytest.raises(AppError):
        store.scheduled_recaps.get(sr.id)
