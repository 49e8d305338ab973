"""RecapStore on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from recapd.model.app_error import AppError
from recapd.model.ids import new_id
from recapd.model.recap import (
    ActionItem,
    ChannelStatus,
    Highlight,
    RecapChannel,
    RecapStatus,
)
from recapd.store.store import Store
from tests.factories import NOW, recap


def _channel(recap_id: str, **kw: object) -> RecapChannel:
    rc = RecapChannel(
        id=new_id(),
        recap_id=recap_id,
        channel_id=new_id(),
        channel_name="Town Square",
        highlights=[Highlight("Release moved to Friday", [new_id()])],
        action_items=[ActionItem("Update the changelog", "@alice", [new_id(), new_id()])],
        source_post_ids=[new_id()],
        create_at=NOW,
    )
    for k, v in kw.items():
        setattr(rc, k, v)
    return rc


def test_save_and_get_with_channels(store: Store) -> None:
    r = recap()
    r.channels = [
        _channel(r.id),
        _channel(r.id, status=ChannelStatus.FAILED, error="LLM down", create_at=NOW + 1),
    ]
    store.recaps.save(r)
    got = store.recaps.get(r.id)
    assert got == r
    bare = store.recaps.get(r.id, with_channels=False)
    assert bare.channels == []


def test_get_missing_is_404(store: Store) -> None:
    with pytest.raises(AppError) as err:
        store.recaps.get(new_id())
    assert (err.value.id, err.value.status_code) == ("store.sql_recap.get.not_found.app_error", 404)


def test_one_recap_per_occurrence(store: Store) -> None:
    sr_id = new_id()
    first = store.recaps.save(recap(scheduled_recap_id=sr_id, scheduled_for=NOW))
    with pytest.raises(AppError) as err:
        store.recaps.save(recap(scheduled_recap_id=sr_id, scheduled_for=NOW))
    assert err.value.id == "store.sql_recap.save.occurrence_exists.app_error"
    assert err.value.status_code == 409
    # Another occurrence of the same schedule, and manual recaps, are free.
    store.recaps.save(recap(scheduled_recap_id=sr_id, scheduled_for=NOW + 60_000))
    store.recaps.save(recap())
    store.recaps.save(recap())
    found = store.recaps.get_by_occurrence(sr_id, NOW)
    assert found is not None and found.id == first.id
    assert store.recaps.get_by_occurrence(sr_id, NOW + 1) is None


def test_failed_save_inside_a_transaction_keeps_the_transaction_usable(store: Store) -> None:
    sr_id = new_id()
    store.recaps.save(recap(scheduled_recap_id=sr_id, scheduled_for=NOW))
    other = recap()
    with store.transaction() as conn:
        with pytest.raises(AppError):
            store.recaps.save(recap(scheduled_recap_id=sr_id, scheduled_for=NOW), conn=conn)
        store.recaps.save(other, conn=conn)
    assert store.recaps.get(other.id).id == other.id


def test_daily_limit_counts_the_users_day_and_ignores_skipped(store: Store) -> None:
    user = new_id()
    day_start, day_end = NOW - 1000, NOW + 1000
    s = store.recaps
    s.save_if_under_daily_limit(recap(user_id=user), 2, day_start, day_end)
    s.save(recap(user_id=user, status=RecapStatus.SKIPPED, skip_reason="missed"))
    s.save(recap(user_id=user, create_at=day_start - 1))  # yesterday
    deleted = s.save_if_under_daily_limit(recap(user_id=user), 2, day_start, day_end)
    s.delete(deleted.id, NOW)  # deleting does not give the allowance back
    with pytest.raises(AppError) as err:
        s.save_if_under_daily_limit(recap(user_id=user), 2, day_start, day_end)
    assert err.value.id == "app.recap.max_recaps_reached.app_error"
    assert s.count_for_day(user, day_start, day_end) == 2
    s.save_if_under_daily_limit(recap(user_id=user), -1, day_start, day_end)


def test_list_for_user_hides_skipped_and_deleted_newest_first(store: Store) -> None:
    user = new_id()
    s = store.recaps
    made = [s.save(recap(user_id=user, create_at=NOW + i)) for i in range(4)]
    s.save(recap(user_id=user, create_at=NOW + 10, status=RecapStatus.SKIPPED))
    s.delete(made[0].id, NOW + 20)
    s.save(recap())
    assert [r.id for r in s.list_for_user(user, 0, 2)] == [made[3].id, made[2].id]
    assert [r.id for r in s.list_for_user(user, 1, 2)] == [made[1].id]
    assert all(r.channels == [] for r in s.list_for_user(user))


def test_update_status_is_compare_and_set(store: Store) -> None:
    s = store.recaps
    r = s.save(recap())
    assert s.update_status(r.id, RecapStatus.PROCESSING, [RecapStatus.PENDING], NOW + 1)
    # A second worker expecting pending loses.
    assert not s.update_status(r.id, RecapStatus.PROCESSING, [RecapStatus.PENDING], NOW + 2)
    assert s.update_status(
        r.id,
        RecapStatus.FAILED,
        [RecapStatus.PROCESSING],
        NOW + 3,
        error="The agent did not answer",
        total_message_count=12,
    )
    got = s.get(r.id)
    assert (got.status, got.error, got.total_message_count, got.update_at) == (
        "failed",
        "The agent did not answer",
        12,
        NOW + 3,
    )
    s.delete(r.id, NOW + 4)
    assert not s.update_status(r.id, RecapStatus.PENDING, [RecapStatus.FAILED], NOW + 5)


def test_mark_read_once_and_mark_viewed(store: Store) -> None:
    user = new_id()
    s = store.recaps
    done = s.save(recap(user_id=user, status=RecapStatus.COMPLETED))
    failed = s.save(recap(user_id=user, status=RecapStatus.FAILED))
    pending = s.save(recap(user_id=user))
    assert s.mark_read(done.id, NOW + 1).read_at == NOW + 1
    assert s.mark_read(done.id, NOW + 2).read_at == NOW + 1
    assert s.mark_viewed(user, NOW + 3) == sorted([done.id, failed.id])
    assert s.mark_viewed(user, NOW + 4) == []
    assert s.get(failed.id).viewed_at == NOW + 3
    assert s.get(pending.id).viewed_at == 0


def test_save_channel_replaces_a_retried_channel_and_cascade(store: Store) -> None:
    s = store.recaps
    r = s.save(recap())
    ch = _channel(r.id, status=ChannelStatus.FAILED, error="timeout")
    s.save_channel(ch)
    retry = _channel(r.id, channel_id=ch.channel_id)
    s.save_channel(retry)
    channels = s.get_channels(r.id)
    assert len(channels) == 1
    assert channels[0].status == "success" and channels[0].highlights == retry.highlights
    s.delete_channels(r.id)
    assert s.get_channels(r.id) == []


def test_list_by_status(store: Store) -> None:
    s = store.recaps
    a = s.save(recap(status=RecapStatus.PROCESSING, update_at=NOW + 2))
    b = s.save(recap(status=RecapStatus.PROCESSING, update_at=NOW + 1))
    s.save(recap())
    assert [r.id for r in s.list_by_status(RecapStatus.PROCESSING)] == [b.id, a.id]
