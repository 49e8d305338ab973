"""/api/v4/jobs on both engines: administrators only, filters, paging and its cap, one job,
cancel (pending -> canceled, in_progress -> cancel_requested, finished -> 409), 404s."""

from __future__ import annotations

from typing import Any

from recapd.model.ids import new_id
from recapd.model.job import Job, JobStatus, JobType
from recapd.store.store import Store
from tests.test_api import Api, assert_error, make_api

FORBIDDEN = "api.context.permissions.app_error"
NOT_FOUND = "store.sql_job.get.not_found.app_error"
MATTERMOST_JOB_FIELDS = {
    "id",
    "type",
    "priority",
    "create_at",
    "start_at",
    "last_activity_at",
    "status",
    "progress",
    "data",
}


def admin_api(store: Store) -> Api:
    api = make_api(store)
    store.tokens.set_roles(api.ws.users["alice"].id, "system_admin")
    return api


def make_jobs(api: Api, job_type: JobType, count: int) -> list[Job]:
    made = []
    for i in range(count):
        made.append(api.rt.jobs.create_job(job_type, {"n": i}))
        api.clock.advance(1000)
    return made


def ids(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [j["id"] for j in resp.json()]


def test_jobs_are_for_administrators_only(store: Store) -> None:
    api = admin_api(store)
    (job,) = make_jobs(api, JobType.RECAP, 1)
    for method, path in [
        ("GET", "/jobs"),
        ("GET", "/jobs?job_type=recap"),
        ("GET", "/jobs/type/recap"),
        ("GET", f"/jobs/{job.id}"),
        ("GET", f"/jobs/{new_id()}"),
        ("POST", f"/jobs/{job.id}/cancel"),
    ]:
        assert_error(api.call(method, path, user="bob"), 403, FORBIDDEN)
        assert_error(
            api.call(method, path, user=None), 401, "api.context.session_expired.app_error"
        )
    # bob's refused cancel changed nothing; alice, an administrator, sees the job.
    assert store.jobs.get(job.id).status == JobStatus.PENDING
    assert ids(api.call("GET", "/jobs")) == [job.id]


def test_list_filters_by_type_and_status(store: Store) -> None:
    api = admin_api(store)
    recaps = make_jobs(api, JobType.RECAP, 3)
    scheduled = make_jobs(api, JobType.SCHEDULED_RECAP, 2)
    assert store.jobs.claim(recaps[0].id, api.clock.now_ms(), "n1")
    assert store.jobs.claim(scheduled[1].id, api.clock.now_ms(), "n1")

    newest_first = [j.id for j in reversed(recaps + scheduled)]
    assert ids(api.call("GET", "/jobs")) == newest_first
    recap_ids = [j.id for j in reversed(recaps)]
    assert ids(api.call("GET", "/jobs?job_type=recap")) == recap_ids
    assert ids(api.call("GET", "/jobs?type=recap")) == recap_ids
    assert ids(api.call("GET", "/jobs/type/recap")) == recap_ids
    assert ids(api.call("GET", "/jobs?job_type=recap&type=recap")) == recap_ids
    assert ids(api.call("GET", "/jobs?job_type=no_such_type")) == []
    assert ids(api.call("GET", "/jobs?status=in_progress")) == [scheduled[1].id, recaps[0].id]
    assert ids(api.call("GET", "/jobs?status=in_progress&type=recap")) == [recaps[0].id]
    pending = [recaps[2].id, recaps[1].id]
    assert ids(api.call("GET", "/jobs?type=recap&status=pending&status=success")) == pending
    assert ids(api.call("GET", "/jobs?type=recap&status=pending,success")) == pending

    assert_error(api.call("GET", "/jobs?status=sleeping"), 400, "api.job.get_jobs.status.app_error")
    assert_error(
        api.call("GET", "/jobs?type=recap&job_type=scheduled_recap"),
        400,
        "api.job.get_jobs.type.app_error",
    )
    invalid = "api.context.invalid_body_param.app_error"
    assert_error(api.call("GET", "/jobs?page=-1"), 400, invalid)
    assert_error(api.call("GET", "/jobs?per_page=0"), 400, invalid)
    assert_error(api.call("GET", "/jobs?per_page=x"), 400, invalid)


def test_paging_and_the_per_page_cap(store: Store) -> None:
    api = admin_api(store)
    now = api.clock.now_ms()
    many = [
        Job(id=new_id(), type=JobType.RECAP, create_at=now + i, run_at=now + i) for i in range(205)
    ]
    store.jobs.save_many(many)
    newest_first = [j.id for j in reversed(many)]
    assert ids(api.call("GET", "/jobs?page=0&per_page=2")) == newest_first[:2]
    assert ids(api.call("GET", "/jobs?page=1&per_page=2")) == newest_first[2:4]
    assert ids(api.call("GET", "/jobs?page=102&per_page=2")) == newest_first[204:]
    assert ids(api.call("GET", "/jobs?page=103&per_page=2")) == []
    assert len(ids(api.call("GET", "/jobs"))) == 60
    assert ids(api.call("GET", "/jobs?per_page=5000")) == newest_first[:200]
    assert ids(api.call("GET", "/jobs?page=1&per_page=201")) == newest_first[200:]
    assert ids(api.call("GET", "/jobs/type/recap?page=1&per_page=1000")) == newest_first[200:]


def test_get_one_job_with_mattermost_and_recapd_fields(store: Store) -> None:
    api = admin_api(store)
    job = api.rt.jobs.create_job(JobType.RECAP, {"recap_id": "r1"}, priority=3)
    assert store.jobs.claim(job.id, api.clock.now_ms() + 5, "node-a")
    resp = api.call("GET", f"/jobs/{job.id}")
    assert resp.status_code == 200, resp.text
    got = resp.json()
    recapd_fields = {"attempt", "run_at", "node_id", "dedupe_key", "term"}
    assert set(got) == MATTERMOST_JOB_FIELDS | recapd_fields
    assert got["id"] == job.id and got["type"] == "recap" and got["priority"] == 3
    assert got["status"] == "in_progress" and got["progress"] == 0
    assert got["create_at"] == job.create_at and got["start_at"] == job.create_at + 5
    assert got["last_activity_at"] == got["start_at"]
    assert got["data"] == {"recap_id": "r1"}
    assert (got["attempt"], got["node_id"], got["dedupe_key"]) == (1, "node-a", "")
    assert_error(api.call("GET", f"/jobs/{new_id()}"), 404, NOT_FOUND)
    assert_error(api.call("GET", "/jobs/not-an-id"), 404, NOT_FOUND)


def test_cancel_pending_running_finished_and_missing(store: Store) -> None:
    api = admin_api(store)
    pending, running, done = make_jobs(api, JobType.RECAP, 3)
    assert store.jobs.claim(running.id, api.clock.now_ms(), "node-a")
    assert store.jobs.claim(done.id, api.clock.now_ms(), "node-a")
    assert store.jobs.complete_many([(done.id, 1)], "node-a", api.clock.now_ms()) == 1
    api.clock.advance(500)

    resp = api.call("POST", f"/jobs/{pending.id}/cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": "OK", "job_id": pending.id, "job_status": "canceled"}
    got = api.call("GET", f"/jobs/{pending.id}").json()
    assert got["status"] == "canceled" and got["last_activity_at"] == api.clock.now_ms()

    resp = api.call("POST", f"/jobs/{running.id}/cancel")
    assert resp.json() == {"status": "OK", "job_id": running.id, "job_status": "cancel_requested"}
    assert store.jobs.get(running.id).status == JobStatus.CANCEL_REQUESTED
    # Asking again is harmless: the answer stays the same.
    again = api.call("POST", f"/jobs/{running.id}/cancel")
    assert again.json()["job_status"] == "cancel_requested"
    assert api.call("POST", f"/jobs/{pending.id}/cancel").json()["job_status"] == "canceled"

    assert_error(
        api.call("POST", f"/jobs/{done.id}/cancel"), 409, "jobs.request_cancellation.status.error"
    )
    assert store.jobs.get(done.id).status == JobStatus.SUCCESS
    assert_error(api.call("POST", f"/jobs/{new_id()}/cancel"), 404, NOT_FOUND)
