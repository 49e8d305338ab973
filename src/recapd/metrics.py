"""Prometheus metrics of this process (served at /metrics by `recapd serve`).

Module-level, as prometheus_client intends: one set per process, whatever builds on it. Job
counts are not kept here: they live in the database, shared by every node, so `render` counts
them at scrape time (`JobCountsCollector`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from recapd.clock import Clock
from recapd.model.job import ALL_JOB_TYPES, JobStatus

__all__ = [
    "CONTENT_TYPE_LATEST",
    "CachedJobCounts",
    "JobCountsCollector",
    "agent_call",
    "record_agent_error",
    "record_agent_tokens",
    "record_part_cache",
    "render",
]

log = logging.getLogger(__name__)

SCHEDULE_DUE_BACKLOG = Gauge(
    "recapd_scheduled_recaps_due_backlog",
    "Live schedules due and not yet enqueued, as the leader saw it at its last drain.",
)
SCHEDULE_START_DELAY = Histogram(
    "recapd_scheduled_recap_start_delay_seconds",
    "Delay from an occurrence's scheduled time to the start of its recap.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
)
SCHEDULE_OUTCOMES = Counter(
    "recapd_scheduled_recap_outcomes_total",
    "Outcomes recorded for scheduled occurrences, by kind (completed, failed, skipped_<why>).",
    ["kind"],
)

# -- agents ------------------------------------------------------------------------------------
# One "call" is one request to the backend: one HTTP request for an LLM (each retry counts),
# one summarize or merge for the offline agent.

AGENT_CALLS = Counter(
    "recapd_agent_calls_total",
    "Calls to an agent's backend, by agent id and operation (summarize, merge).",
    ["agent", "operation"],
)
AGENT_CALL_SECONDS = Histogram(
    "recapd_agent_call_duration_seconds",
    "Duration of one call to an agent's backend, failed calls included.",
    ["agent", "operation"],
    buckets=(0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
AGENT_TOKENS = Counter(
    "recapd_agent_tokens_total",
    "Tokens the backend reported using, by agent id and kind (prompt, completion).",
    ["agent", "kind"],
)
AGENT_ERRORS = Counter(
    "recapd_agent_errors_total",
    "Failed agent calls, by agent id and reason (rate_limited, server_error, client_error, "
    "timeout, connection, invalid_response, invalid_answer, declined, internal).",
    ["agent", "reason"],
)


@contextmanager
def agent_call(agent_id: str, operation: str) -> Iterator[None]:
    """Count one backend call of `agent_id` and observe its duration, whatever its outcome."""
    AGENT_CALLS.labels(agent_id, operation).inc()
    # A duration, not a point in time: the monotonic counter, not the injected clock.
    start = time.perf_counter()
    try:
        yield
    finally:
        AGENT_CALL_SECONDS.labels(agent_id, operation).observe(time.perf_counter() - start)


def record_agent_error(agent_id: str, reason: str) -> None:
    """Count one failed call of `agent_id`."""
    AGENT_ERRORS.labels(agent_id, reason).inc()


def record_agent_tokens(agent_id: str, prompt_tokens: int, completion_tokens: int) -> None:
    """Add the tokens a backend reported for one call."""
    AGENT_TOKENS.labels(agent_id, "prompt").inc(max(0, prompt_tokens))
    AGENT_TOKENS.labels(agent_id, "completion").inc(max(0, completion_tokens))


# -- the part cache ----------------------------------------------------------------------------

PART_CACHE_LOOKUPS = Counter(
    "recapd_part_cache_lookups_total",
    "Part summaries a recap needed from the part cache, by result: hit (stored, or made by a "
    "concurrent run), miss (computed by this run).",
    ["result"],
)
# Both results present from the start, zeros included, so a rate is defined at once.
PART_CACHE_LOOKUPS.labels("hit")
PART_CACHE_LOOKUPS.labels("miss")
PART_CACHE_TOKENS_SAVED = Counter(
    "recapd_part_cache_tokens_saved_total",
    "Agent tokens (prompt and completion) that parts reused from the cache cost when made.",
)


def record_part_cache(hit: bool, tokens_saved: int = 0) -> None:
    """Count one part cache lookup, and the tokens a hit saved."""
    PART_CACHE_LOOKUPS.labels("hit" if hit else "miss").inc()
    if hit:
        PART_CACHE_TOKENS_SAVED.inc(max(0, tokens_saved))


# -- jobs --------------------------------------------------------------------------------------

JobCounts = Callable[[], Mapping[tuple[str, str], int]]


class CachedJobCounts:
    """A JobCounts that counts at most once per `max_age_ms`: /metrics needs no sign-in, so
    scraping it often must not cost the database more than one GROUP BY every few seconds."""

    def __init__(self, count: JobCounts, clock: Clock, max_age_ms: int = 5000) -> None:
        self._count = count
        self._clock = clock
        self._max_age_ms = max_age_ms
        self._lock = threading.Lock()
        self._counted_at: int | None = None
        self._counts: Mapping[tuple[str, str], int] = {}

    def __call__(self) -> Mapping[tuple[str, str], int]:
        """The counts, fresh or at most `max_age_ms` old."""
        with self._lock:  # concurrent scrapes share one count
            now = self._clock.now_ms()
            if self._counted_at is None or now - self._counted_at >= self._max_age_ms:
                self._counts = dict(self._count())
                self._counted_at = now
            return self._counts


class JobCountsCollector(Collector):
    """`recapd_jobs{type, status}`: jobs in the database, counted (one GROUP BY) at scrape
    time, so every node reports the cluster's numbers; every known type and status appears,
    zeros included, so a series never vanishes."""

    def __init__(self, count: JobCounts) -> None:
        self._count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The job counts, and whether counting them worked."""
        up = GaugeMetricFamily(
            "recapd_jobs_count_up", "1 when the job counts below could be read from the database."
        )
        try:
            counts = dict(self._count())
        except Exception:
            log.warning("metrics: cannot count jobs", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        family = GaugeMetricFamily(
            "recapd_jobs", "Jobs in the database by type and status.", labels=["type", "status"]
        )
        for known_type in ALL_JOB_TYPES:
            for known_status in JobStatus:
                counts.setdefault((known_type.value, known_status.value), 0)
        for (job_type, status), n in sorted(counts.items()):
            family.add_metric([job_type, status], n)
        yield family


def render(job_counts: JobCounts | None = None) -> bytes:
    """The text exposition of this process's metrics, plus the job counts when given."""
    out = generate_latest(REGISTRY)
    if job_counts is not None:
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(JobCountsCollector(job_counts))
        out += generate_latest(scrape)
    return out
