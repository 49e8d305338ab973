"""The `recapd` command, run as a user runs it: a real process."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from recapd import __version__
from recapd.cli import app as cli_app
from recapd.clock import FakeClock
from recapd.store import migrate
from recapd.store.database import Database, to_sqlalchemy_url
from recapd.store.store import Store
from tests.test_recaps_app import runtime_for, team_workspace
from tests.test_scheduled_recaps import create, ms, outcomes, pool_of, run_jobs, scheduler_of


def recapd(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m recapd ARGS` with a clean RECAPD_* environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECAPD_")}
    base["COLUMNS"] = "120"
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "recapd", *args],
        cwd=cwd,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_and_version(tmp_path: Path) -> None:
    out = recapd("--help", cwd=tmp_path)
    assert out.returncode == 0
    for command in ("version", "migrate", "status"):
        assert command in out.stdout
    out = recapd("version", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == f"recapd {__version__}"


def test_migrate_and_status_on_the_default_sqlite_file(tmp_path: Path) -> None:
    out = recapd("status", cwd=tmp_path)
    assert out.returncode == 1 and "recapd migrate" in out.stdout
    out = recapd("migrate", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "migrated from empty" in out.stdout
    assert (tmp_path / "recapd.db").exists()
    out = recapd("migrate", cwd=tmp_path)
    assert "already at revision" in out.stdout
    out = recapd("status", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "scheduled recaps" in out.stdout and "AI recaps: on" in out.stdout


@pytest.fixture
def fresh_pg_url(pg_server_url: str) -> Iterator[str]:
    """An empty, never-migrated PostgreSQL database."""
    admin = sa.create_engine(to_sqlalchemy_url(pg_server_url), isolation_level="AUTOCOMMIT")
    name = f"recapd_cli_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(pg_server_url).set(drivername="postgresql", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_migrate_on_postgresql(fresh_pg_url: str, tmp_path: Path) -> None:
    out = recapd("--database-url", fresh_pg_url, "migrate", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "migrated from empty" in out.stdout
    out = recapd("status", cwd=tmp_path, env={"RECAPD_DATABASE_URL": fresh_pg_url})
    assert out.returncode == 0, out.stderr
    head = migrate.head_revision(Database(fresh_pg_url))
    assert f"revision {head} (newest {head})" in out.stdout


def test_invalid_setting_stops_with_one_clear_line(tmp_path: Path) -> None:
    out = recapd("status", cwd=tmp_path, env={"RECAPD_AI_RECAPS__MAX_RECAPS_PER_DAY": "0"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("invalid setting RECAPD_AI_RECAPS__MAX_RECAPS_PER_DAY")
    assert not (tmp_path / "recapd.db").exists()


def test_bad_database_url_is_refused(tmp_path: Path) -> None:
    out = recapd("--database-url", "mysql://root@localhost/x", "migrate", cwd=tmp_path)
    assert out.returncode == 2
    assert "RECAPD_DATABASE_URL" in out.stderr


def test_toml_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "recapd.toml"
    cfg.write_text(f'database_url = "sqlite:///{tmp_path / "other.db"}"\n')
    out = recapd("--config", str(cfg), "migrate", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "other.db").exists()


DATA = Path(__file__).resolve().parent / "data"


def test_import_a_log_then_make_a_recap_and_print_it(tmp_path: Path) -> None:
    log = DATA / "irc" / "mediawiki.1.head300.ascii.txt"
    out = recapd("import", "log", str(log), "--channel", "mediawiki", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "posts +" in out.stdout
    again = recapd("import", "log", str(log), "--channel", "mediawiki", cwd=tmp_path)
    assert "posts +0 ~0" in again.stdout  # importing twice changes nothing
    out = recapd(
        "recap",
        "create",
        "--user",
        "bd808",
        "--channel",
        "irc/mediawiki",
        "--wait",
        cwd=tmp_path,
        env={"RECAPD_AI_RECAPS__COOLDOWN_MINUTES": "0"},
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "status: completed" in text
    assert "Highlights:" in text
    assert "http://127.0.0.1:8065/irc/pl/" in text


def test_unknown_users_and_channels_are_named_in_words(tmp_path: Path) -> None:
    recapd("migrate", cwd=tmp_path)
    out = recapd("recap", "create", "--user", "nobody", "--channel", "x", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (1, "error: no user named nobody\n")
    # --verbose adds the error's stable id and its detail.
    out = recapd("--verbose", "recap", "create", "--user", "nobody", "--channel", "x", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "error: no user named nobody",
        "  id: store.sql_workspace.get_user.not_found.app_error",
        "  detail: username=nobody",
    ]
    recapd("users", "create", "alice", cwd=tmp_path)
    out = recapd("recap", "create", "--user", "@alice", "--channel", "x", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (1, "error: no channel named x\n")
    out = recapd("schedules", "list", "--user", "nobody", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (1, "error: no user named nobody\n")


def test_schedules_commands(tmp_path: Path) -> None:
    log = DATA / "irc" / "mediawiki.1.head300.ascii.txt"
    recapd("import", "log", str(log), "--channel", "mediawiki", cwd=tmp_path)
    out = recapd(
        "schedules",
        "create",
        "--user",
        "bd808",
        "--title",
        "Morning",
        "--days",
        "mon,wed",
        "--time",
        "07:30",
        "--timezone",
        "Asia/Kathmandu",
        "--channel",
        "mediawiki",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "mon,wed 07:30" in out.stdout and "+0545" in out.stdout  # next run in its zone
    found = re.findall(r"\b[a-z0-9]{26}\b", out.stdout)
    assert len(found) == 1
    sr_id = found[0]
    for action, expected in (("pause", "paused"), ("resume", "on"), ("run-now", "queued")):
        out = recapd("schedules", action, sr_id, "--user", "bd808", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert expected in out.stdout
    out = recapd("schedules", "show", sr_id, "--user", "bd808", cwd=tmp_path)
    assert "Morning" in out.stdout
    out = recapd("schedules", "delete", sr_id, "--user", "bd808", cwd=tmp_path)
    assert "deleted" in out.stdout
    out = recapd("schedules", "show", sr_id, "--user", "bd808", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (1, "error: scheduled recap not found\n")
    out = recapd(
        "schedules",
        "create",
        "--user",
        "bd808",
        "--title",
        "Bad",
        "--time",
        "25:00",
        "--timezone",
        "UTC",
        "--channel",
        "mediawiki",
        cwd=tmp_path,
    )
    # The message, not the internal id (which --verbose adds).
    assert out.returncode == 1
    assert out.stderr == "error: time_of_day must be HH:MM in 24-hour time, got '25:00'\n"


def test_schedules_create_without_channels_names_the_options(tmp_path: Path) -> None:
    recapd("users", "create", "alice", cwd=tmp_path)
    base = ("schedules", "create", "--user", "alice", "--title", "T", "--timezone", "UTC")
    out = recapd(*base, cwd=tmp_path)
    assert out.returncode == 2
    assert "--channel" in out.stderr and "--all-unreads" in out.stderr
    assert "channel_ids" not in out.stderr
    out = recapd(*base, "--all-unreads", cwd=tmp_path)
    assert out.returncode == 0, out.stderr


def test_user_text_is_printed_literally(tmp_path: Path) -> None:
    """Titles and names are the users' own: rich markup, emoji codes and all print as typed."""
    for name in ("[leeloo]", "[b]bold"):
        assert recapd("users", "create", name, cwd=tmp_path).returncode == 0
    out = recapd("users", "list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "[leeloo]" in out.stdout and "[b]bold" in out.stdout
    titles = ["Ops [/b] weekly", "[eng] standup", "[bold red]alert[/] :smile:"]
    for title in titles:
        out = recapd(
            "schedules",
            "create",
            "--user",
            "[leeloo]",
            "--title",
            title,
            "--timezone",
            "UTC",
            "--all-unreads",
            cwd=tmp_path,
            env={"RECAPD_AI_RECAPS__MAX_SCHEDULED_RECAPS": "10"},
        )
        assert out.returncode == 0, out.stderr
        assert title in out.stdout
    out = recapd("schedules", "list", "--user", "[leeloo]", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for title in titles:
        assert title in out.stdout


def _import_mediawiki(cwd: Path) -> None:
    log = DATA / "irc" / "mediawiki.1.head300.ascii.txt"
    out = recapd("import", "log", str(log), "--channel", "mediawiki", cwd=cwd)
    assert out.returncode == 0, out.stderr


def test_an_imported_channel_is_recapped_once_the_user_is_a_member(tmp_path: Path) -> None:
    """README's flow: import a log, add the user to its channel, recap it."""
    _import_mediawiki(tmp_path)
    recapd("users", "create", "demo", cwd=tmp_path)
    fast = {"RECAPD_AI_RECAPS__COOLDOWN_MINUTES": "0"}
    create = ("recap", "create", "--user", "demo", "--channel", "mediawiki")
    out = recapd(*create, cwd=tmp_path, env=fast)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "error: you cannot read channel mediawiki",
        "hint: `recapd channels members add mediawiki demo` lets demo read it",
    ]
    out = recapd("channels", "list", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert re.search(r"irc/mediawiki\s.*\bpublic\s.*\b31\b", out.stdout), out.stdout
    out = recapd("channels", "list", "--user", "demo", cwd=tmp_path)
    assert "mediawiki" not in out.stdout and "demo is in no channel" in out.stdout

    out = recapd("channels", "members", "add", "mediawiki", "demo", "bd808", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "channel mediawiki: 1 member(s) added, 1 already in it (demo, bd808)\n"
    out = recapd("channels", "list", "--user", "demo", cwd=tmp_path)
    assert re.search(r"irc/mediawiki\s.*\b32\b", out.stdout), out.stdout
    out = recapd(*create, "--wait", cwd=tmp_path, env=fast)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# Recap of mediawiki\nstatus: completed\n")

    out = recapd("channels", "members", "remove", "irc/mediawiki", "demo", "nick", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (1, "error: no user named nick\n")
    out = recapd("channels", "members", "remove", "irc/mediawiki", "demo", cwd=tmp_path)
    assert out.stdout == "channel mediawiki: 1 member(s) removed\n"
    out = recapd(*create, cwd=tmp_path, env=fast)
    assert out.returncode == 1 and "you cannot read channel mediawiki" in out.stderr


def test_recap_list_gives_the_ids_newest_first_with_paging(tmp_path: Path) -> None:
    _import_mediawiki(tmp_path)
    fast = {"RECAPD_AI_RECAPS__COOLDOWN_MINUTES": "0"}
    ids = []
    for title in ("alpha", "bravo", "charlie"):
        out = recapd(
            "recap", "create", "--user", "bd808", "--channel", "mediawiki", "--title", title,
            cwd=tmp_path, env=fast,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        ids.append(re.findall(r"\b[a-z0-9]{26}\b", out.stdout)[0])
    out = recapd("recap", "list", "--user", "bd808", "--per-page", "2", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    listed = re.findall(r"\b[a-z0-9]{26}\b", out.stdout)
    assert listed == [ids[2], ids[1]]
    assert "charlie" in out.stdout and "bravo" in out.stdout and "alpha" not in out.stdout
    assert "pending" in out.stdout and "mediawiki" in out.stdout
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", out.stdout)
    assert "more: --page 1" in out.stdout
    out = recapd("recap", "list", "--user", "bd808", "--per-page", "2", "--page", "1", cwd=tmp_path)
    assert re.findall(r"\b[a-z0-9]{26}\b", out.stdout) == [ids[0]]
    out = recapd("recap", "show", ids[0], "--user", "bd808", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("# alpha\nstatus: pending")


def test_tables_fit_80_columns_without_cutting_dates(tmp_path: Path) -> None:
    _import_mediawiki(tmp_path)
    narrow = {"COLUMNS": "80", "RECAPD_AI_RECAPS__COOLDOWN_MINUTES": "0"}
    out = recapd(
        "schedules", "create", "--user", "bd808", "--title", "A long title for a morning recap",
        "--timezone", "America/Argentina/Buenos_Aires", "--channel", "mediawiki",
        cwd=tmp_path, env=narrow,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    sr_id = re.findall(r"\b[a-z0-9]{26}\b", out.stdout)[0]
    recapd("recap", "create", "--user", "bd808", "--channel", "mediawiki", cwd=tmp_path)
    recapd("schedules", "run-now", sr_id, "--user", "bd808", cwd=tmp_path)
    for args in (
        ("schedules", "list", "--user", "bd808"),
        ("schedules", "show", sr_id, "--user", "bd808"),
        ("recap", "list", "--user", "bd808"),
        ("jobs", "list"),
        ("users", "list"),
        ("channels", "list"),
    ):
        out = recapd(*args, cwd=tmp_path, env=narrow)
        assert out.returncode == 0, out.stderr
        assert "\u2026" not in out.stdout, out.stdout  # nothing cut
        assert max(len(line) for line in out.stdout.splitlines()) <= 80, out.stdout
        if args[0] not in ("users", "channels"):
            assert re.search(r"\b20\d\d-\d\d-\d\d\b", out.stdout), out.stdout
        assert sr_id in out.stdout or args[0] != "schedules"


def test_run_now_and_a_queued_recap_name_both_commands_that_make_them(tmp_path: Path) -> None:
    _import_mediawiki(tmp_path)
    out = recapd(
        "schedules", "create", "--user", "bd808", "--title", "T", "--timezone", "UTC",
        "--channel", "mediawiki", cwd=tmp_path,
    )  # fmt: skip
    sr_id = re.findall(r"\b[a-z0-9]{26}\b", out.stdout)[0]
    out = recapd("schedules", "run-now", sr_id, "--user", "bd808", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "a running `recapd serve` or `recapd worker` makes it" in out.stdout
    out = recapd("recap", "create", "--user", "bd808", "--channel", "mediawiki", cwd=tmp_path)
    assert "a running `recapd serve` or `recapd worker` makes it (or use --wait)" in out.stdout


def test_schedules_show_has_the_whole_schedule_and_its_last_runs(store: Store) -> None:
    ws = team_workspace(store)
    clock = FakeClock(ms("UTC", 2026, 9, 21, 8, 0))
    rt = runtime_for(store, clock)
    alice = ws.users["alice"].id
    sr = create(
        rt,
        ws,
        timezone="Asia/Kathmandu",
        time_of_day="14:45",  # 09:00 UTC
        title="Ops [/b] weekly",
        channel_ids=[ws.channels["dev"].id, ws.channels["ops"].id],
        custom_instructions="Only [decisions].",
    )
    for day, pause in ((21, False), (22, True)):
        clock.set(ms("UTC", 2026, 9, day, 9, 0))
        scheduler_of(rt).drain(clock.now_ms(), None, rt.settings)
        if pause:
            asyncio.run(rt.schedules.pause(alice, sr.id))
        asyncio.run(run_jobs(pool_of(rt)))
    completed = outcomes(store, sr.id)[0]

    result = CliRunner().invoke(
        cli_app,
        ["--database-url", store.db.url, "schedules", "show", sr.id, "--user", "alice"],
        env={"COLUMNS": "100"},
    )
    assert result.exit_code == 0, result.output
    text = result.output
    for expected in (
        "Ops [/b] weekly",
        "paused",
        "dev, ops",
        "the last 24 hours",
        "everyday at 14:45, Asia/Kathmandu",
        "extractive",
        "Only [decisions].",
        "Mon 2026-09-21 14:45 +0545",  # the completed run, in the schedule's zone
        "completed",
        f"recap {completed.id}",
        "Tue 2026-09-22 14:45 +0545",
        "skipped: The schedule is paused.",
    ):
        assert expected in text, (expected, text)
    assert text.index("Tue 2026-09-22") < text.index("Mon 2026-09-21")  # latest first
    result = CliRunner().invoke(
        cli_app,
        ["--database-url", store.db.url, "schedules", "show", sr.id, "--user", "bob"],
    )
    assert (result.exit_code, result.output) == (1, "error: scheduled recap not found\n")


def test_an_error_is_logged_with_its_id(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with caplog.at_level(logging.INFO, logger="recapd.cli"):
        result = CliRunner().invoke(
            cli_app, ["--database-url", url, "schedules", "list", "--user", "nobody"]
        )
    assert (result.exit_code, result.output) == (1, "error: no user named nobody\n")
    assert [r.getMessage() for r in caplog.records if r.name == "recapd.cli"] == [
        "store.sql_workspace.get_user.not_found.app_error: no user named nobody (username=nobody)"
    ]
