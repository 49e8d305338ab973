"""/metrics on both engines: jobs by type and status counted from the database at scrape time,
and agent calls, latency, tokens and errors after real recaps with the offline agent and with
an OpenAI-compatible loopback server."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from recapd.metrics import JobCountsCollector
from recapd.model.job import JobStatus, JobType
from recapd.store.store import Store
from tests.fake_openai import FakeOpenAI, Reply
from tests.test_api import Api, make_api


def scrape(api: Api) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of GET /metrics by (name, labels)."""
    resp = api.client.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def _no_progress(_: int) -> None:
    return None


def make_recap(api: Api, agent_id: str) -> dict[str, Any]:
    """A recap of #dev by alice with `agent_id`, made by the real pipeline."""
    body = {"title": "Dev", "channel_ids": [api.channel("dev")], "agent_id": agent_id}
    resp = api.call("POST", "/recaps", json=body)
    assert resp.status_code == 201, resp.text
    rid = resp.json()["id"]
    asyncio.run(api.rt.recaps.process_recap(rid, _no_progress))
    got: dict[str, Any] = api.call("GET", f"/recaps/{rid}").json()
    return got


def test_jobs_by_type_and_status_are_counted_at_scrape_time(store: Store) -> None:
    api = make_api(store)
    samples = scrape(api)
    assert value(samples, "recapd_jobs_count_up") == 1
    for job_type in JobType:
        for status in JobStatus:
            key = (
                "recapd_jobs",
                frozenset({"type": job_type.value, "status": status.value}.items()),
            )
            assert samples[key] == 0  # every known series is there, at zero

    recaps = [api.rt.jobs.create_job(JobType.RECAP, {"n": i}) for i in range(3)]
    api.rt.jobs.create_job(JobType.SCHEDULED_RECAP, {})
    assert store.jobs.claim(recaps[0].id, api.clock.now_ms(), "n1")
    api.rt.jobs.cancel_job(recaps[1].id)
    # Counted at most once per 5 s, however often /metrics is scraped.
    api.clock.advance(4999)
    assert value(scrape(api), "recapd_jobs", type="recap", status="pending") == 0
    api.clock.advance(1)
    samples = scrape(api)
    assert value(samples, "recapd_jobs", type="recap", status="pending") == 1
    assert value(samples, "recapd_jobs", type="recap", status="in_progress") == 1
    assert value(samples, "recapd_jobs", type="recap", status="canceled") == 1
    assert value(samples, "recapd_jobs", type="recap", status="success") == 0
    assert value(samples, "recapd_jobs", type="scheduled_recap", status="pending") == 1
    # The existing scheduler metrics are still served.
    assert ("recapd_scheduled_recaps_due_backlog", frozenset()) in samples
    assert any(name == "recapd_scheduled_recap_start_delay_seconds_count" for name, _ in samples)


def test_a_broken_count_is_reported_not_raised() -> None:
    def broken() -> dict[tuple[str, str], int]:
        raise RuntimeError("database down")

    families = list(JobCountsCollector(broken).collect())
    assert [f.name for f in families] == ["recapd_jobs_count_up"]
    assert families[0].samples[0].value == 0

    def counted() -> dict[tuple[str, str], int]:
        return {("custom", "pending"): 2}

    names = {
        (s.labels.get("type"), s.labels.get("status")): s.value
        for f in JobCountsCollector(counted).collect()
        for s in f.samples
        if f.name == "recapd_jobs"
    }
    assert names[("custom", "pending")] == 2 and names[("recap", "error")] == 0


def test_offline_agent_calls_and_latency(store: Store) -> None:
    api = make_api(store)
    labels = {"agent": "extractive", "operation": "summarize"}
    before = scrape(api)
    recap = make_recap(api, "extractive")
    assert recap["status"] == "completed"
    after = scrape(api)

    def delta(name: str, **extra: str) -> float:
        return value(after, name, **extra) - value(before, name, **extra)

    assert delta("recapd_agent_calls_total", **labels) == 1
    assert delta("recapd_agent_call_duration_seconds_count", **labels) == 1
    assert delta("recapd_agent_call_duration_seconds_sum", **labels) > 0
    # The offline agent uses no tokens and did not fail.
    assert delta("recapd_agent_tokens_total", agent="extractive", kind="prompt") == 0
    assert delta("recapd_agent_errors_total", agent="extractive", reason="internal") == 0


def test_openai_agent_calls_tokens_and_errors(store: Store) -> None:
    with FakeOpenAI() as server:
        api = make_api(
            store,
            agents={
                "metered": {
                    "type": "openai",
                    "model": "m",
                    "base_url": server.base_url,
                    "max_retries": 2,
                    "timeout_seconds": 5,
                }
            },
        )
        api.rt.agents.get("metered").backoff_base_s = 0.01  # type: ignore[attr-defined]
        dev_post = api.ws.posts[0].id
        answer = {"highlights": [{"text": "CI mocks the sandbox.", "post_ids": [dev_post]}]}
        server.script(
            Reply.error(500, "upstream hiccup"),
            Reply.answer("this is not JSON", prompt_tokens=70, completion_tokens=5),
            Reply.answer(answer, usage=False),
        )
        before = scrape(api)
        recap = make_recap(api, "metered")
        after = scrape(api)
        assert len(server.chat_requests) == 3

    def delta(name: str, **labels: str) -> float:
        labels["agent"] = "metered"
        return value(after, name, **labels) - value(before, name, **labels)

    assert recap["status"] == "completed", recap
    assert delta("recapd_agent_calls_total", operation="summarize") == 3
    assert delta("recapd_agent_call_duration_seconds_count", operation="summarize") == 3
    assert delta("recapd_agent_errors_total", reason="server_error") == 1
    assert delta("recapd_agent_errors_total", reason="invalid_answer") == 1
    # Only what the server reported: the third answer came without usage.
    assert delta("recapd_agent_tokens_total", kind="prompt") == 70
    assert delta("recapd_agent_tokens_total", kind="completion") == 5
