"""The `recapd` command, run as a user runs it: a real process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from recapd import __version__
from recapd.store import migrate
from recapd.store.database import Database, to_sqlalchemy_url


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


def test_recap_for_an_unknown_channel_is_a_clear_error(tmp_path: Path) -> None:
    recapd("migrate", cwd=tmp_path)
    out = recapd("recap", "create", "--user", "nobody", "--channel", "x", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.startswith("error: store.sql_workspace.get_user")


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
    assert out.returncode == 1 and "app.scheduled_recap.get.app_error" in out.stderr
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
    assert out.returncode == 1
    assert "model.scheduled_recap.is_valid.time_of_day.app_error" in out.stderr
