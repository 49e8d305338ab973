"""`recapd jobs`: look at and cancel jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from recapd.cli.common import open_store, settings
from recapd.cli.output import out, show, table, utc
from recapd.model.job import JobStatus

if TYPE_CHECKING:
    from recapd.model.job import Job

app = typer.Typer(help="Look at and cancel jobs.", no_args_is_help=True)


@app.command("list")
def jobs_list(
    ctx: typer.Context,
    job_type: str | None = typer.Option(None, "--type", help="Only this job type."),
    status_: list[JobStatus] = typer.Option([], "--status", help="Only these statuses."),
    page: int = typer.Option(0, min=0, help="Page, from 0."),
    per_page: int = typer.Option(50, min=1, max=200, help="Jobs per page."),
) -> None:
    """Jobs, newest first (`jobs show ID` for one job's node, data and error in full)."""
    with open_store(ctx) as store:
        found = store.jobs.list_page(
            type=job_type, statuses=status_ or None, page=page, per_page=per_page
        )
    t = table(title=f"Jobs (page {page})")
    t.add_column("id", no_wrap=True)
    t.add_column("type / status")
    t.add_column("created (UTC)", no_wrap=True)
    t.add_column("error", overflow="fold")
    for j in found:
        state = f"{j.type}\n{j.status}"
        if j.progress:
            state += f" {j.progress}%"
        if j.attempt > 1:
            state += f", attempt {j.attempt}"
        error = str(j.data.get("error") or j.data.get("last_error") or "")
        t.add_row(j.id, state, utc(j.create_at), error[:120])
    show(t)


def _show_job(j: Job) -> None:
    t = table("field", "value", show_header=False)
    t.columns[1].overflow = "fold"
    for name, value in (
        ("id", j.id),
        ("type", j.type),
        ("status", j.status),
        ("attempt", str(j.attempt)),
        ("progress", f"{j.progress}%"),
        ("priority", str(j.priority)),
        ("created (UTC)", utc(j.create_at, seconds=True)),
        ("runs from (UTC)", utc(j.run_at, seconds=True)),
        ("started (UTC)", utc(j.start_at, seconds=True)),
        ("last activity (UTC)", utc(j.last_activity_at, seconds=True)),
        ("node", j.node_id or "-"),
        ("dedupe key", j.dedupe_key or "-"),
        ("leader term", str(j.term)),
    ):
        t.add_row(name, value)
    for key, value in sorted(j.data.items()):
        t.add_row(f"data.{key}", str(value))
    show(t)


@app.command("show")
def jobs_show(ctx: typer.Context, job_id: str) -> None:
    """One job with its data (errors and tracebacks included)."""
    with open_store(ctx) as store:
        _show_job(store.jobs.get(job_id))


@app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: str) -> None:
    """Cancel a pending job, or ask a running one to stop."""
    from recapd.jobs.server import JobServer

    with open_store(ctx) as store:
        job = JobServer(store, settings(ctx)).cancel_job(job_id)
    out(f"job {job.id}: {job.status}")
