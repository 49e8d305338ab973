"""Jobs: units of background work, as in Mattermost's job system."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobType(StrEnum):
    """Every job type recapd knows; ALL_JOB_TYPES below is the single list of what exists."""

    SCHEDULED_RECAP = "scheduled_recap"
    RECAP = "recap"
    RECAP_DELIVERY = "recap_delivery"


ALL_JOB_TYPES: tuple[JobType, ...] = (
    JobType.SCHEDULED_RECAP,
    JobType.RECAP,
    JobType.RECAP_DELIVERY,
)


class JobStatus(StrEnum):
    """The original's seven job statuses."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    ERROR = "error"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELED = "canceled"
    WARNING = "warning"


# A live job still holds its dedupe key: no second live job with the same key may exist.
LIVE_JOB_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.PENDING, JobStatus.IN_PROGRESS, JobStatus.CANCEL_REQUESTED}
)
FINISHED_JOB_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCESS, JobStatus.ERROR, JobStatus.CANCELED, JobStatus.WARNING}
)


@dataclass(slots=True)
class Job:
    """One job row. `data` is a JSON object; Mattermost's is a string map."""

    id: str = ""
    type: str = ""
    priority: int = 0
    create_at: int = 0
    start_at: int = 0
    last_activity_at: int = 0
    status: str = JobStatus.PENDING
    progress: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    # recapd additions: dedupe key among live jobs, attempts made, the earliest time the job
    # may start (retry backoff), the node that runs it, and the leader term that created it.
    dedupe_key: str | None = None
    attempt: int = 0
    run_at: int = 0
    node_id: str = ""
    term: int = 0
