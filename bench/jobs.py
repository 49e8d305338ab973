#!/usr/bin/env python3
"""Job-system benchmark: recapd's JobServer on PostgreSQL and SQLite, and procrastinate on the
same PostgreSQL server, on one node.

    .venv/bin/python bench/jobs.py            # or python3 bench/jobs.py; --help for the flags

The script makes its own venv, bench/.venv (recapd installed editable, plus procrastinate and
py-spy, so recapd's own .venv never gains them), then re-executes itself there. It measures:

1. no-op jobs per second end to end: N jobs inserted in one bulk statement while the server
   is running and idle, then claimed, run and marked `success`; from the start of the insert to
   the moment all N rows read `success` (insert and drain are reported apart as well);
2. the start delay when idle: jobs created one at a time, 20 ms apart, from another Store and
   JobServer (PostgreSQL: the wake-up goes through LISTEN/NOTIFY as from another process), from
   the create call returning to the handler starting;
3. the same two figures for procrastinate on its own scratch database (2,000 jobs by default:
   it drains a few hundred jobs/s at best, so 20,000 would take minutes).

Scratch databases (recapd_bench, recapd_bench_procrastinate) are dropped and recreated at the
start and dropped at the end; the SQLite file and the reports go to bench/out/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchenv import OUT, VENV, enter

if __name__ == "__main__":
    enter(__file__)

import asyncio
import contextlib
import datetime as dt
import json
import logging
import platform
import re
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
import sqlalchemy as sa
from procrastinate import App, PsycopgConnector
from procrastinate import JobContext as PqJobContext
from rich.console import Console
from rich.table import Table

from recapd.config import Settings, load_settings
from recapd.jobs.leader import StaticLeadership
from recapd.jobs.server import JobServer
from recapd.jobs.worker import JobContext, WorkerSpec
from recapd.model.ids import new_id
from recapd.model.job import Job, JobStatus
from recapd.store.database import Database, to_sqlalchemy_url
from recapd.store.migrate import upgrade
from recapd.store.store import Store

NOOP = "bench_noop"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
RECAPD_DB = "recapd_bench"
PQ_DB = "recapd_bench_procrastinate"
TARGET_JOBS_S = 10_000.0
TARGET_P99_MS = 100.0
DONE_POLL_S = 0.02  # how often the end of a drain is checked in the database
RUN_TIMEOUT_S = 90.0  # a throughput run that takes longer is reported as failed
console = Console(width=None if sys.stdout.isatty() else 160)


# -- results ---------------------------------------------------------------------------------


@dataclass
class Throughput:
    system: str
    engine: str
    concurrency: int
    n: int
    insert_s: float
    drain_s: float
    total_s: float
    ok: bool = True
    detail: dict[str, Any] = field(default_factory=dict)
    # "main": a run of the sweep; "same-n": recapd again at procrastinate's N, for the ratio.
    role: str = "main"

    @property
    def jobs_s(self) -> float:
        return self.n / self.total_s if self.ok and self.total_s > 0 else 0.0


@dataclass
class Latency:
    system: str
    engine: str
    delays_ms: list[float]
    create_ms: list[float]
    missing: int = 0

    def pct(self, q: float) -> float:
        return _percentile(self.delays_ms, q)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# -- scratch databases -----------------------------------------------------------------------


def _pg_url(admin_url: str, database: str) -> str:
    url = sa.make_url(to_sqlalchemy_url(admin_url)).set(database=database)
    return url.render_as_string(hide_password=False).replace(
        "postgresql+psycopg://", "postgresql://"
    )


def _recreate_pg_db(admin_url: str, name: str, *, drop_only: bool = False) -> None:
    conninfo = to_sqlalchemy_url(admin_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def _pg_version(admin_url: str) -> str:
    conninfo = to_sqlalchemy_url(admin_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def _reset_recapd_db(url: str, template: Path | None) -> None:
    """Empty the jobs table (PostgreSQL) or lay a fresh copy of the migrated SQLite file."""
    if template is not None:
        path = Path(sa.make_url(url).database or "")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        shutil.copy(template, path)
        return
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE jobs")


def _cpu_now(database: str) -> tuple[float, float]:
    """CPU seconds used so far by this process, and by the PostgreSQL backends of `database`
    plus the server's own processes (WAL writer, checkpointer...): other clients of a shared
    server are left out."""
    ours = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    pg = 0.0
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = (proc / "stat").read_text()
            if not text[text.index("(") + 1 : text.rindex(")")].startswith("postgres"):
                continue
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            backend = re.search(r"\S+\(\d+\)|\[local\]", title) is not None
            if backend and f" {database} " not in title:
                continue
            fields = text[text.rindex(")") + 2 :].split()
            pg += (int(fields[11]) + int(fields[12])) / tick
    return ours, pg


def _cpu_detail(database: str, before: tuple[float, float], wall_s: float) -> dict[str, float]:
    after = _cpu_now(database)
    wall = max(wall_s, 1e-9)
    return {
        "cpu_cores_python": round((after[0] - before[0]) / wall, 2),
        "cpu_cores_postgres": round((after[1] - before[1]) / wall, 2),
    }


def _settings(url: str) -> Settings:
    # Every job setting at its default: poll interval 1 s, heartbeat 5 s, and so on.
    return load_settings(database_url=url, jobs={})


# -- recapd ------------------------------------------------------------------------------------


class _Calls:
    """Counts and times the store calls the worker pool makes (wrapped on the instance)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self._lock = threading.Lock()

    def wrap(self, obj: Any, name: str, rows: Callable[[Any, tuple[Any, ...]], int]) -> None:
        inner = getattr(obj, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            result = inner(*args, **kwargs)
            spent = time.perf_counter() - t0
            with self._lock:
                self.calls[name] += 1
                self.rows[name] += rows(result, args)
                self.seconds[name] += spent
            return result

        setattr(obj, name, timed)

    def summary(self) -> dict[str, Any]:
        return {
            name: {
                "calls": self.calls[name],
                "rows_per_call": round(self.rows[name] / max(1, self.calls[name]), 1),
                "ms_per_call": round(1000 * self.seconds[name] / max(1, self.calls[name]), 2),
                "busy_s": round(self.seconds[name], 3),
            }
            for name in sorted(self.calls)
        }


def _new_jobs(n: int) -> list[Job]:
    now = int(time.time() * 1000)
    return [
        Job(
            id=new_id(),
            type=NOOP,
            create_at=now,
            status=JobStatus.PENDING,
            data={},
            run_at=now,
        )
        for _ in range(n)
    ]


async def _wait_all_success(store: Store, n: int, timeout_s: float) -> bool:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        counts = await asyncio.to_thread(store.jobs.count_by_type_and_status)
        if counts.get((NOOP, JobStatus.SUCCESS.value), 0) >= n:
            return True
        await asyncio.sleep(DONE_POLL_S)
    return False


async def recapd_throughput(url: str, engine: str, n: int, concurrency: int) -> Throughput:
    store = Store.open(url)
    calls = _Calls()
    calls.wrap(store.jobs, "claim_batch", lambda res, _a: len(res))
    calls.wrap(store.jobs, "complete_many", lambda _res, args: len(args[0]))
    calls.wrap(store.jobs, "heartbeat_status", lambda _res, args: len(args[0]))
    server = JobServer(
        store, _settings(url), node_id="bench-node", leadership=StaticLeadership(term=1)
    )
    ran = 0
    all_ran = asyncio.Event()

    async def noop(ctx: JobContext) -> None:
        nonlocal ran
        ran += 1
        if ran >= n:
            all_ran.set()

    server.register_worker(WorkerSpec(NOOP, noop, concurrency=concurrency))
    stop = asyncio.Event()
    running = asyncio.create_task(server.run(stop))
    await asyncio.sleep(0.5)  # pools started, LISTEN connected: the server is idle
    result = Throughput("recapd", engine, concurrency, n, 0.0, 0.0, 0.0)
    cpu: dict[str, float] = {}
    try:
        database = sa.make_url(url).database or ""
        cpu0 = _cpu_now(database)
        t0 = time.perf_counter()
        await asyncio.to_thread(store.jobs.save_many, _new_jobs(n))
        if store.db.is_sqlite:
            # save_many does not wake the pools (create_job does): do what an in-process
            # creator would. On PostgreSQL the NOTIFY sent at commit wakes them.
            server.wakeups.notify(NOOP)
        t1 = time.perf_counter()
        try:
            await asyncio.wait_for(all_ran.wait(), RUN_TIMEOUT_S)
            done = await _wait_all_success(store, n, 10.0)
        except TimeoutError:
            done = False
        t2 = time.perf_counter()
        cpu = _cpu_detail(database, cpu0, t2 - t0)
        result = Throughput(
            "recapd", engine, concurrency, n, t1 - t0, t2 - t1, t2 - t0, ok=done, detail={}
        )
    finally:
        stop.set()
        await running
        result.detail = {"handler_runs": ran, **cpu, **calls.summary()}
        store.close()
    return result


async def recapd_start_delay(url: str, engine: str, count: int, gap_s: float) -> Latency:
    store = Store.open(url)
    server = JobServer(
        store, _settings(url), node_id="bench-node", leadership=StaticLeadership(term=1)
    )
    started: dict[str, float] = {}
    returned: dict[str, float] = {}
    create_ms: list[float] = []
    warmup = 5

    async def handler(ctx: JobContext) -> None:
        started[ctx.job.id] = time.perf_counter()

    spec = WorkerSpec(NOOP, handler, concurrency=4)
    server.register_worker(spec)
    if store.db.is_postgres:
        # Another process in all but name: its own engine, and a JobServer that is not running,
        # so its create_job wakes nobody in-process; only LISTEN/NOTIFY reaches the pool.
        other_store: Store | None = Store.open(url)
        creator = JobServer(other_store, _settings(url), node_id="bench-creator")
        creator.register_worker(spec)
    else:
        other_store, creator = None, server

    def create_all() -> None:
        for i in range(warmup + count):
            t0 = time.perf_counter()
            job = creator.create_job(NOOP, {"i": i})
            t1 = time.perf_counter()
            if i >= warmup:
                returned[job.id] = t1
                create_ms.append(1000 * (t1 - t0))
            time.sleep(gap_s)

    stop = asyncio.Event()
    running = asyncio.create_task(server.run(stop))
    try:
        await asyncio.sleep(1.5)  # idle: LISTEN connected, the first poll done
        await asyncio.to_thread(create_all)
        deadline = time.perf_counter() + 5.0
        while time.perf_counter() < deadline and not all(j in started for j in returned):
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running
        store.close()
        if other_store is not None:
            other_store.close()
    delays = [1000 * (started[j] - t) for j, t in returned.items() if j in started]
    return Latency("recapd", engine, delays, create_ms, missing=len(returned) - len(delays))


# -- procrastinate ---------------------------------------------------------------------------


def _pq_connector(conninfo: str, pool_size: int) -> PsycopgConnector:
    return PsycopgConnector(conninfo=conninfo, min_size=min(4, pool_size), max_size=pool_size)


async def _pq_count_succeeded(conninfo: str) -> int:
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


def _pq_reset(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE procrastinate_jobs, procrastinate_workers RESTART IDENTITY CASCADE")


async def pq_apply_schema(conninfo: str) -> None:
    app = App(connector=_pq_connector(conninfo, 2))
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def _stop_worker(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)


async def pq_throughput(conninfo: str, n: int, concurrency: int, pool_size: int) -> Throughput:
    _pq_reset(conninfo)
    app = App(connector=_pq_connector(conninfo, pool_size))
    ran = 0
    all_ran = asyncio.Event()

    @app.task(name=NOOP)
    async def noop() -> None:
        nonlocal ran
        ran += 1
        if ran >= n:
            all_ran.set()

    result = Throughput("procrastinate", "postgresql", concurrency, n, 0.0, 0.0, 0.0)
    async with app.open_async():
        worker = asyncio.create_task(
            app.run_worker_async(concurrency=concurrency, install_signal_handlers=False)
        )
        await asyncio.sleep(0.5)
        cpu: dict[str, float] = {}
        try:
            cpu0 = _cpu_now(PQ_DB)
            t0 = time.perf_counter()
            await noop.batch_defer_async(*({} for _ in range(n)))
            t1 = time.perf_counter()
            try:
                await asyncio.wait_for(all_ran.wait(), RUN_TIMEOUT_S)
                deadline = time.perf_counter() + 10.0
                done = False
                while not done and time.perf_counter() < deadline:
                    done = await _pq_count_succeeded(conninfo) >= n
                    if not done:
                        await asyncio.sleep(DONE_POLL_S)
            except TimeoutError:
                done = False
            t2 = time.perf_counter()
            cpu = _cpu_detail(PQ_DB, cpu0, t2 - t0)
            result = Throughput(
                "procrastinate", "postgresql", concurrency, n, t1 - t0, t2 - t1, t2 - t0, ok=done
            )
        finally:
            await _stop_worker(worker)
    result.detail = {"handler_runs": ran, "pool_size": pool_size, **cpu}
    return result


async def pq_start_delay(conninfo: str, count: int, gap_s: float) -> Latency:
    _pq_reset(conninfo)
    app = App(connector=_pq_connector(conninfo, 4))
    started: dict[int, float] = {}
    returned: dict[int, float] = {}
    create_ms: list[float] = []
    warmup = 5

    @app.task(name=NOOP, pass_context=True)
    async def handler(context: PqJobContext) -> None:
        if context.job.id is not None:
            started[context.job.id] = time.perf_counter()

    def create_all() -> None:
        # A second App on its own loop and connection pool, as another process would have.
        async def go() -> None:
            other = App(connector=_pq_connector(conninfo, 2))
            async with other.open_async():
                deferrer = other.configure_task(NOOP)
                for i in range(warmup + count):
                    t0 = time.perf_counter()
                    job_id = await deferrer.defer_async()
                    t1 = time.perf_counter()
                    if i >= warmup:
                        returned[job_id] = t1
                        create_ms.append(1000 * (t1 - t0))
                    await asyncio.sleep(gap_s)

        asyncio.run(go())

    async with app.open_async():
        worker = asyncio.create_task(
            app.run_worker_async(concurrency=4, install_signal_handlers=False)
        )
        try:
            await asyncio.sleep(1.5)
            await asyncio.to_thread(create_all)
            deadline = time.perf_counter() + 8.0
            while time.perf_counter() < deadline and not all(j in started for j in returned):
                await asyncio.sleep(0.05)
        finally:
            await _stop_worker(worker)
    delays = [1000 * (started[j] - t) for j, t in returned.items() if j in started]
    return Latency("procrastinate", "postgresql", delays, create_ms, len(returned) - len(delays))


# -- profiling ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _py_spy(enabled: bool, name: str) -> Iterator[None]:
    """Sample this process with py-spy while the block runs; summarize to bench/out/."""
    if not enabled:
        yield
        return
    raw = OUT / f"profile-{name}.raw.txt"
    exe = shutil.which("py-spy", path=str(VENV / "bin")) or "py-spy"
    cmd = [exe, "record", "--pid", str(os.getpid()), "--rate", "500", "--threads"]
    spy = subprocess.Popen(
        [*cmd, "--format", "raw", "--output", str(raw), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
        if raw.exists():
            (OUT / f"profile-{name}.summary.txt").write_text(_summarize_profile(raw))
            console.print(f"[dim]profile: {raw} and profile-{name}.summary.txt[/dim]")


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _summarize_profile(raw: Path) -> str:
    """Self and inclusive sample shares per function, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        names = []
        for frame in frames[1:]:
            m = _FRAME.match(frame)
            if m is None:
                names.append(frame)
                continue
            file = m["file"]
            for marker in ("site-packages/", "/src/", "lib/python3"):
                if marker in file:
                    file = file.split(marker, 1)[1]
            names.append(f"{m['func']} ({file})")
        if names:
            own[names[-1]] += count
        for name in set(names):
            incl[name] += count

    def block(title: str, counter: Counter[str], k: int) -> list[str]:
        rows = [f"{100 * c / max(1, total):5.1f}%  {name}" for name, c in counter.most_common(k)]
        return [title, *rows, ""]

    lines = [f"{total} samples (all threads, active only)", ""]
    lines += block("per thread:", threads, 20)
    lines += block("self:", own, 40)
    lines += block("inclusive:", incl, 80)
    return "\n".join(lines)


# -- report ----------------------------------------------------------------------------------


def _machine() -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count() or "?"),
        "cpu": model,
        "python": platform.python_version(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v else "failed"


def _best(runs: list[Throughput]) -> Throughput | None:
    ok = [r for r in runs if r.ok]
    return max(ok, key=lambda r: r.jobs_s) if ok else None


def report(
    runs: list[Throughput], lats: list[Latency], meta: dict[str, Any]
) -> tuple[Table, Table, list[str]]:
    sweep = Table(title="Throughput runs (no-op jobs, one node)")
    for col in ("system", "engine", "concurrency", "N", "insert s", "drain s", "total s", "jobs/s"):
        sweep.add_column(col, justify="right" if col not in ("system", "engine") else "left")
    for r in runs:
        sweep.add_row(
            r.system,
            r.engine,
            str(r.concurrency),
            f"{r.n:,}",
            f"{r.insert_s:.2f}",
            f"{r.drain_s:.2f}",
            f"{r.total_s:.2f}",
            _fmt_rate(r.jobs_s),
        )

    summary = Table(title="Job system: recapd vs procrastinate")
    for col in ("system", "engine", "jobs/s e2e (best conc.)", "insert", "drain"):
        summary.add_column(col)
    for col in ("start p50 ms", "start p99 ms", "target"):
        summary.add_column(col, justify="right")
    md = [
        "| system | engine | jobs/s end to end (concurrency) | insert | drain "
        "| start delay p50 / p99 ms | targets |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys = [("recapd", "postgresql"), ("recapd", "sqlite"), ("procrastinate", "postgresql")]
    best: dict[tuple[str, str], Throughput | None] = {}
    for system, engine in keys:
        b = _best([r for r in runs if (r.system, r.engine, r.role) == (system, engine, "main")])
        best[(system, engine)] = b
        lat = next((x for x in lats if (x.system, x.engine) == (system, engine)), None)
        if b is None and lat is None:
            continue
        rate = f"{_fmt_rate(b.jobs_s)} (c={b.concurrency})" if b else "-"
        ins = f"{b.insert_s:.2f} s ({b.n / b.insert_s:,.0f}/s)" if b else "-"
        drain = f"{b.drain_s:.2f} s ({b.n / b.drain_s:,.0f}/s)" if b else "-"
        p50 = f"{lat.pct(0.5):.1f}" if lat else "-"
        p99 = f"{lat.pct(0.99):.1f}" if lat else "-"
        target = "-"
        if system == "recapd":
            marks = []
            if engine == "postgresql" and b is not None:
                ok = b.jobs_s >= TARGET_JOBS_S
                marks.append(f"{'OK' if ok else 'MISS'} >= {TARGET_JOBS_S:,.0f}/s")
            if lat is not None:
                ok = lat.pct(0.99) < TARGET_P99_MS
                marks.append(f"{'OK' if ok else 'MISS'} p99 < {TARGET_P99_MS:.0f} ms")
            target = "; ".join(marks)
        summary.add_row(system, engine, rate, ins, drain, p50, p99, target)
        md.append(f"| {system} | {engine} | {rate} | {ins} | {drain} | {p50} / {p99} | {target} |")
    ours, theirs = best[("recapd", "postgresql")], best[("procrastinate", "postgresql")]
    same_n = _best([r for r in runs if r.role == "same-n"])
    lines = []
    if same_n and theirs and theirs.jobs_s:
        lines.append(
            f"recapd / procrastinate on PostgreSQL, both N={theirs.n:,}: "
            f"{same_n.jobs_s / theirs.jobs_s:.2f}x jobs/s "
            f"({same_n.jobs_s:,.0f} at c={same_n.concurrency} vs {theirs.jobs_s:,.0f})"
        )
    if ours and theirs and theirs.jobs_s:
        lines.append(
            f"recapd at N={ours.n:,} / procrastinate at N={theirs.n:,}: "
            f"{ours.jobs_s / theirs.jobs_s:.2f}x jobs/s "
            f"({ours.jobs_s:,.0f} vs {theirs.jobs_s:,.0f})"
        )
    meta["ratio"] = "\n".join(lines)
    md += ["", *(f"- {line}" for line in lines)] if lines else []
    md += [
        "",
        "| system | engine | concurrency | N | insert s | drain s | total s | jobs/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    md += [
        f"| {r.system}{' (same N)' if r.role == 'same-n' else ''} | {r.engine} "
        f"| {r.concurrency} | {r.n:,} | {r.insert_s:.2f} | {r.drain_s:.2f} | {r.total_s:.2f} "
        f"| {_fmt_rate(r.jobs_s)} |"
        for r in runs
    ]
    return sweep, summary, md


# -- main --------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pg-url", default=os.environ.get("RECAPD_BENCH_POSTGRES_URL", DEFAULT_PG))
    p.add_argument("-n", "--jobs", type=int, default=20_000, help="jobs per throughput run (PG)")
    p.add_argument("--sqlite-jobs", type=int, default=None, help="jobs per run on SQLite (=-n)")
    p.add_argument(
        "--pq-jobs",
        type=int,
        default=2_000,
        help="jobs per procrastinate run (it drains ~100-200/s here: 20,000 would take minutes)",
    )
    p.add_argument("--concurrency", type=_ints, default=[200, 500, 1000], help="recapd sweep")
    p.add_argument("--pq-concurrency", type=_ints, default=[10], help="procrastinate sweep")
    p.add_argument("--pq-pool", type=int, default=20, help="procrastinate's connection pool size")
    p.add_argument("--latency-jobs", type=int, default=200, help="jobs per start-delay run")
    p.add_argument("--latency-gap-ms", type=float, default=20.0)
    p.add_argument(
        "--only",
        default="recapd-pg,recapd-sqlite,pq",
        help="comma list of recapd-pg, recapd-sqlite, pq",
    )
    p.add_argument("--no-latency", action="store_true", help="skip the start-delay runs")
    p.add_argument("--profile", action="store_true", help="py-spy the throughput runs")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> tuple[list[Throughput], list[Latency]]:
    only = set(args.only.split(","))
    runs: list[Throughput] = []
    lats: list[Latency] = []
    gap = args.latency_gap_ms / 1000

    def show(r: Throughput) -> None:
        console.print(
            f"  {r.system:13} {r.engine:10} c={r.concurrency:<5} n={r.n:<7,} "
            f"insert {r.insert_s:6.2f} s  drain {r.drain_s:6.2f} s  "
            f"[bold]{_fmt_rate(r.jobs_s)} jobs/s[/bold]"
        )
        console.print(f"    [dim]{json.dumps(r.detail)}[/dim]")

    def show_lat(x: Latency) -> None:
        console.print(
            f"  {x.system:13} {x.engine:10} start delay p50 {x.pct(0.5):.1f} ms  "
            f"p99 {x.pct(0.99):.1f} ms  max {max(x.delays_ms, default=float('nan')):.1f} ms  "
            f"(create call p50 {_percentile(x.create_ms, 0.5):.1f} ms, missing {x.missing})"
        )

    targets: list[tuple[str, str, Path | None, int]] = []
    if "recapd-pg" in only:
        _recreate_pg_db(args.pg_url, RECAPD_DB)
        url = _pg_url(args.pg_url, RECAPD_DB)
        db = Database(url)
        upgrade(db)
        db.dispose()
        targets.append(("postgresql", url, None, args.jobs))
    if "recapd-sqlite" in only:
        OUT.mkdir(parents=True, exist_ok=True)
        template = OUT / "recapd_bench_template.db"
        template.unlink(missing_ok=True)
        db = Database(f"sqlite:///{template}")
        upgrade(db)
        db.dispose()
        url = f"sqlite:///{OUT / 'recapd_bench.db'}"
        targets.append(("sqlite", url, template, args.sqlite_jobs or args.jobs))

    for engine, url, template, n in targets:
        console.print(f"[bold]recapd on {engine}[/bold]")
        for conc in args.concurrency:
            _reset_recapd_db(url, template)
            with _py_spy(args.profile, f"recapd-{engine}-c{conc}"):
                r = await recapd_throughput(url, engine, n, conc)
            runs.append(r)
            show(r)
        if not args.no_latency:
            _reset_recapd_db(url, template)
            lat = await recapd_start_delay(url, engine, args.latency_jobs, gap)
            lats.append(lat)
            show_lat(lat)
        if template is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{sa.make_url(url).database}{suffix}").unlink(missing_ok=True)
            template.unlink(missing_ok=True)

    if "pq" in only:
        console.print("[bold]procrastinate on postgresql[/bold]")
        _recreate_pg_db(args.pg_url, PQ_DB)
        conninfo = _pg_url(args.pg_url, PQ_DB)
        await pq_apply_schema(conninfo)
        for conc in args.pq_concurrency:
            with _py_spy(args.profile, f"procrastinate-c{conc}"):
                r = await pq_throughput(conninfo, args.pq_jobs, conc, args.pq_pool)
            runs.append(r)
            show(r)
        pg_runs = [r for r in runs if (r.system, r.engine) == ("recapd", "postgresql")]
        best_pg = _best(pg_runs)
        if pg_runs and args.pq_jobs != args.jobs:
            # recapd again at procrastinate's N, so the ratio compares equal queues.
            conc = best_pg.concurrency if best_pg else pg_runs[0].concurrency
            url = _pg_url(args.pg_url, RECAPD_DB)
            _reset_recapd_db(url, None)
            r = await recapd_throughput(url, "postgresql", args.pq_jobs, conc)
            r.role = "same-n"
            runs.append(r)
            show(r)
        if not args.no_latency:
            lat = await pq_start_delay(conninfo, args.latency_jobs, gap)
            lats.append(lat)
            show_lat(lat)
    return runs, lats


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("procrastinate").setLevel(logging.ERROR)
    OUT.mkdir(parents=True, exist_ok=True)
    machine = _machine()
    meta: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **machine,
        "postgresql": _pg_version(args.pg_url),
        "command": " ".join([".venv/bin/python bench/jobs.py", *sys.argv[1:]]),
    }
    console.print(
        f"[dim]{meta['date']} | nproc {meta['nproc']} | {meta['cpu']} | "
        f"PostgreSQL {meta['postgresql']} | Python {meta['python']} | "
        f"load average before {meta['loadavg']}[/dim]"
    )
    t0 = time.perf_counter()
    try:
        runs, lats = asyncio.run(run(args))
    finally:
        for name in (RECAPD_DB, PQ_DB):
            with contextlib.suppress(Exception):
                _recreate_pg_db(args.pg_url, name, drop_only=True)
    meta["wall_s"] = round(time.perf_counter() - t0, 1)
    sweep, summary, md = report(runs, lats, meta)
    console.print(sweep)
    console.print(summary)
    if meta["ratio"]:
        console.print(f"[bold]{meta['ratio']}[/bold]")
    console.print(f"[dim]wall time {meta['wall_s']} s[/dim]")
    header = [
        f"{meta['date']}; `nproc` {meta['nproc']}; CPU {meta['cpu']}; "
        f"PostgreSQL {meta['postgresql']}; Python {meta['python']}; load average before the run "
        f"{meta['loadavg']}; run took {meta['wall_s']} s.",
        "",
        f"Command: `{meta['command']}`",
        "",
    ]
    (OUT / "jobs-results.md").write_text("\n".join(header + md) + "\n")
    (OUT / "jobs-results.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "throughput": [asdict(r) | {"jobs_s": r.jobs_s} for r in runs],
                "start_delay": [
                    {
                        "system": x.system,
                        "engine": x.engine,
                        "p50_ms": x.pct(0.5),
                        "p99_ms": x.pct(0.99),
                        "max_ms": max(x.delays_ms, default=None),
                        "samples": len(x.delays_ms),
                        "missing": x.missing,
                        "create_p50_ms": _percentile(x.create_ms, 0.5),
                    }
                    for x in lats
                ],
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"[dim]written: {OUT / 'jobs-results.md'}, jobs-results.json[/dim]")


if __name__ == "__main__":
    main()
