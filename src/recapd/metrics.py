"""Prometheus metrics of this process (served at /metrics by `recapd serve`).

Module-level, as prometheus_client intends: one set per process, whatever builds on it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
