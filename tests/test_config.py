"""Settings: defaults, environment, TOML file, validation messages, database URLs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from recapd.config import (
    CONFIG_ERROR_ID,
    LIMIT_NAMES,
    AIRecapSettings,
    ConfigError,
    JobSettings,
    Settings,
    load_settings,
    redact_url,
)
from recapd.store.database import to_sqlalchemy_url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No stray RECAPD_* variable or recapd.toml from the developer's machine."""
    for name in list(os.environ):
        # pydantic-settings matches names case-insensitively, so recapd_x would count too.
        if name.upper().startswith("RECAPD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write_toml(tmp_path: Path, text: str, name: str = "recapd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(config_file: Path | str | None = None, **overrides: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(config_file, **overrides)
    return info.value


# --- defaults --------------------------------------------------------------------------------


def test_defaults() -> None:
    s = load_settings()
    assert s.enable_ai_recaps is True
    assert s.database_url == "sqlite:///recapd.db"
    assert s.is_sqlite and not s.is_postgres and not s.is_sqlite_memory
    assert s.node_id == ""
    assert s.recaps_enabled

    a = s.ai_recaps
    assert a.enable is True
    assert (a.max_recaps_per_day, a.max_scheduled_recaps, a.max_channels_per_recap) == (10, 5, -1)
    # A busy day of one channel (1,200 posts) is read whole.
    assert (a.max_posts_per_recap, a.max_tokens_per_recap, a.max_posts_per_day) == (
        2000,
        100_000,
        20_000,
    )
    assert a.cooldown_minutes == 60
    assert all(getattr(a, f"enforce_{name}") is True for name in LIMIT_NAMES)
    assert a.misfire_grace_seconds == 3600
    assert a.max_consecutive_failures == 5

    j = s.jobs
    assert j.run_jobs and j.run_scheduler
    assert j.poll_interval_seconds == 1.0
    assert j.scheduler_poll_interval_seconds == 60.0
    assert j.heartbeat_interval_seconds == 5.0
    assert j.wedged_job_timeout_seconds == 60.0
    assert (j.lease_ttl_seconds, j.lease_renew_interval_seconds) == (15.0, 5.0)
    assert j.max_attempts == 5
    assert (j.retry_base_seconds, j.retry_max_seconds) == (2.0, 600.0)
    assert j.cleanup_jobs_threshold_days == -1
    assert j.cleanup_batch_size == 500
    assert j.worker_concurrency == 4
    assert j.shutdown_grace_seconds == 30.0


def test_plain_settings_constructor_matches_loader_without_file() -> None:
    assert Settings() == load_settings()


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValueError):
        s.jobs.max_attempts = 1  # type: ignore[misc]


def test_no_implicit_config_file_in_working_directory(tmp_path: Path) -> None:
    write_toml(tmp_path, "[jobs]\nmax_attempts = 2\n")
    assert load_settings().jobs.max_attempts == 5


# --- environment -----------------------------------------------------------------------------


def test_env_flat_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAPD_DATABASE_URL", "postgresql://recapd@db:5432/recapd")
    monkeypatch.setenv("RECAPD_ENABLE_AI_RECAPS", "false")
    monkeypatch.setenv("RECAPD_NODE_ID", "  node-a  ")
    s = load_settings()
    assert s.database_url == "postgresql://recapd@db:5432/recapd"
    assert s.enable_ai_recaps is False
    assert not s.recaps_enabled
    assert s.node_id == "node-a"
    assert s.effective_node_id() == "node-a"


def test_env_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAPD_JOBS__MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RECAPD_JOBS__RUN_SCHEDULER", "0")
    monkeypatch.setenv("RECAPD_AI_RECAPS__MAX_RECAPS_PER_DAY", "20")
    monkeypatch.setenv("RECAPD_AI_RECAPS__ENFORCE_COOLDOWN_MINUTES", "false")
    s = load_settings()
    assert s.jobs.max_attempts == 3
    assert s.jobs.run_scheduler is False
    assert s.jobs.worker_concurrency == 4  # untouched siblings keep their defaults
    assert s.ai_recaps.max_recaps_per_day == 20
    assert s.ai_recaps.enforce_cooldown_minutes is False


def test_env_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("recapd_jobs__max_attempts", "7")
    assert load_settings().jobs.max_attempts == 7


def test_env_nested_unknown_key_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAPD_JOBS__MAX_ATTEMPS", "3")
    err = error_of()
    assert str(err) == (
        "invalid setting RECAPD_JOBS__MAX_ATTEMPS (jobs.max_attemps): "
        "unknown setting; did you mean max_attempts?"
    )


def test_env_whole_table_must_be_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAPD_JOBS", "not json")
    assert str(error_of()) == (
        "invalid setting RECAPD_JOBS (jobs): must be a JSON object of settings"
    )


def test_overrides_beat_env_and_none_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAPD_DATABASE_URL", "sqlite:///env.db")
    monkeypatch.setenv("RECAPD_JOBS__MAX_ATTEMPTS", "3")
    s = load_settings(database_url="sqlite:///cli.db", node_id=None, jobs={"worker_concurrency": 8})
    assert s.database_url == "sqlite:///cli.db"
    assert s.node_id == ""
    # Nested overrides merge with the environment rather than replacing the whole table.
    assert (s.jobs.max_attempts, s.jobs.worker_concurrency) == (3, 8)


def test_unknown_override_refused() -> None:
    assert "unknown setting" in str(error_of(databse_url="sqlite://"))


# --- TOML file -------------------------------------------------------------------------------

TOML = """
enable_ai_recaps = false
database_url = "sqlite:///from-file.db"
node_id = "file-node"

[ai_recaps]
max_recaps_per_day = 3
enforce_max_posts_per_day = false

[jobs]
max_attempts = 2
poll_interval_seconds = 0.5
"""


def test_toml_file_explicit_argument(tmp_path: Path) -> None:
    path = write_toml(tmp_path, TOML, "conf.toml")
    for arg in (path, str(path)):
        s = load_settings(arg)
        assert s.enable_ai_recaps is False
        assert s.database_url == "sqlite:///from-file.db"
        assert s.node_id == "file-node"
        assert s.ai_recaps.max_recaps_per_day == 3
        assert s.ai_recaps.enforce_max_posts_per_day is False
        assert s.ai_recaps.max_scheduled_recaps == 5
        assert s.jobs.max_attempts == 2
        assert s.jobs.poll_interval_seconds == 0.5


def test_toml_file_from_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_toml(tmp_path, TOML, "conf.toml")
    monkeypatch.setenv("RECAPD_CONFIG", str(path))
    assert load_settings().jobs.max_attempts == 2
    # Settings() alone never reads the file: only load_settings() does.
    assert Settings().jobs.max_attempts == 5


def test_explicit_argument_beats_config_env_var(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RECAPD_CONFIG", str(write_toml(tmp_path, "[jobs]\nmax_attempts = 9\n")))
    other = write_toml(tmp_path, "[jobs]\nmax_attempts = 4\n", "other.toml")
    assert load_settings(other).jobs.max_attempts == 4


def test_env_overrides_file_and_file_overrides_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_toml(tmp_path, TOML, "conf.toml")
    monkeypatch.setenv("RECAPD_JOBS__MAX_ATTEMPTS", "7")
    monkeypatch.setenv("RECAPD_DATABASE_URL", "sqlite:///env.db")
    s = load_settings(path)
    assert s.jobs.max_attempts == 7  # env beats file
    assert s.database_url == "sqlite:///env.db"
    assert s.jobs.poll_interval_seconds == 0.5  # file beats default, merged within [jobs]
    assert s.ai_recaps.max_recaps_per_day == 3
    assert s.jobs.worker_concurrency == 4  # default where neither says anything


def test_toml_unknown_keys_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[ai_recaps]\nmax_recap_per_day = 3\n")
    assert str(error_of(path)) == (
        "invalid setting RECAPD_AI_RECAPS__MAX_RECAP_PER_DAY (ai_recaps.max_recap_per_day): "
        "unknown setting; did you mean max_recaps_per_day?"
    )
    path = write_toml(tmp_path, 'colour = "blue"\n')
    assert str(error_of(path)) == ("invalid setting RECAPD_COLOUR (colour): unknown setting")
    path = write_toml(tmp_path, "[job]\nmax_attempts = 3\n")
    message = str(error_of(path))
    assert message == "invalid setting RECAPD_JOB (job): unknown setting; did you mean jobs?"


def test_toml_wrong_types_named(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'jobs = 3\ndatabase_url = 5\n[ai_recaps]\nenable = "maybe"\n')
    err = error_of(path)
    assert str(err).splitlines() == [
        "3 invalid settings:",
        "  invalid setting RECAPD_DATABASE_URL (database_url): must be a string, got 5",
        "  invalid setting RECAPD_AI_RECAPS__ENABLE (ai_recaps.enable): "
        "must be true or false, got 'maybe'",
        "  invalid setting RECAPD_JOBS (jobs): must be a table of settings",
    ]
    assert err.config_file == path.resolve()


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    err = error_of(missing)
    assert str(err) == f"config file {missing}: no such file"
    assert err.id == CONFIG_ERROR_ID
    assert len(err.problems) == 1


def test_missing_config_file_from_env_var_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAPD_CONFIG", "missing.toml")
    assert "missing.toml: no such file" in str(error_of())


def test_config_file_that_is_a_directory(tmp_path: Path) -> None:
    assert "is a directory" in str(error_of(tmp_path))


def test_unparsable_config_file_names_file_and_line(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[jobs]\nmax_attempts = 3\nworker_concurrency = = 2\n")
    message = str(error_of(path))
    assert "\n" not in message
    assert message.startswith(f"config file {path}: invalid TOML: ")
    assert "line 3" in message


def test_config_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b'node_id = "\xff"\n')
    assert "not UTF-8" in str(error_of(path))


# --- validation rules ------------------------------------------------------------------------

MAX_LIMITS = [name for name in LIMIT_NAMES if name.startswith("max_")]


@pytest.mark.parametrize("name", MAX_LIMITS)
def test_limits_accept_minus_one_and_positive(name: str) -> None:
    assert getattr(AIRecapSettings.model_validate({name: -1}), name) == -1
    assert getattr(AIRecapSettings.model_validate({name: 1}), name) == 1


@pytest.mark.parametrize("name", MAX_LIMITS)
def test_limit_zero_refused_with_hint(name: str) -> None:
    err = error_of(ai_recaps={name: 0})
    assert str(err) == (
        f"invalid setting RECAPD_AI_RECAPS__{name.upper()} (ai_recaps.{name}): "
        "must be -1 (unlimited) or at least 1, got 0 (0 is not allowed: use -1 for unlimited)"
    )
    assert err.id == "config.invalid_setting.app_error"
    assert [(p.setting, p.env_var) for p in err.problems] == [
        (f"ai_recaps.{name}", f"RECAPD_AI_RECAPS__{name.upper()}")
    ]


@pytest.mark.parametrize("name", MAX_LIMITS)
def test_limit_below_minus_one_refused(name: str) -> None:
    assert str(error_of(ai_recaps={name: -5})).endswith(
        f"(ai_recaps.{name}): must be -1 (unlimited) or at least 1, got -5"
    )


def test_limit_zero_from_env_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECAPD_AI_RECAPS__MAX_RECAPS_PER_DAY", "0")
    assert str(error_of()).startswith(
        "invalid setting RECAPD_AI_RECAPS__MAX_RECAPS_PER_DAY (ai_recaps.max_recaps_per_day): "
        "must be -1 (unlimited) or at least 1, got 0"
    )


@pytest.mark.parametrize("value", [0, 1, 1440])
def test_cooldown_accepted(value: int) -> None:
    assert AIRecapSettings(cooldown_minutes=value).cooldown_minutes == value


@pytest.mark.parametrize("value", [-1, 1441])
def test_cooldown_refused(value: int) -> None:
    assert str(error_of(ai_recaps={"cooldown_minutes": value})) == (
        "invalid setting RECAPD_AI_RECAPS__COOLDOWN_MINUTES (ai_recaps.cooldown_minutes): "
        f"must be between 0 (off) and 1440 minutes, got {value}"
    )


# (section, field, bad value, expected message after the colon)
REFUSED = [
    ("ai_recaps", "misfire_grace_seconds", -1, "must be at least 0, got -1"),
    ("ai_recaps", "max_consecutive_failures", 0, "must be at least 1, got 0"),
    ("jobs", "poll_interval_seconds", 0, "must be greater than 0, got 0"),
    ("jobs", "poll_interval_seconds", 61, "must be at most 60, got 61"),
    ("jobs", "scheduler_poll_interval_seconds", 0, "must be greater than 0, got 0"),
    ("jobs", "heartbeat_interval_seconds", -1, "must be greater than 0, got -1"),
    (
        "jobs",
        "wedged_job_timeout_seconds",
        10,
        "must be more than twice jobs.heartbeat_interval_seconds (5), i.e. more than 10, got 10",
    ),
    ("jobs", "lease_ttl_seconds", 0, "must be greater than 0, got 0"),
    (
        "jobs",
        "lease_renew_interval_seconds",
        7.5,
        "must be less than half of jobs.lease_ttl_seconds (15), i.e. less than 7.5, got 7.5",
    ),
    ("jobs", "lease_renew_interval_seconds", 0, "must be greater than 0, got 0"),
    ("jobs", "max_attempts", 0, "must be at least 1, got 0"),
    ("jobs", "retry_base_seconds", 0, "must be greater than 0, got 0"),
    ("jobs", "retry_max_seconds", 1.5, "must be at least jobs.retry_base_seconds (2), got 1.5"),
    (
        "jobs",
        "cleanup_jobs_threshold_days",
        0,
        "must be -1 (never) or at least 1 day, got 0 (use -1 to never clean up)",
    ),
    ("jobs", "cleanup_jobs_threshold_days", -2, "must be -1 (never) or at least 1 day, got -2"),
    ("jobs", "cleanup_batch_size", 0, "must be at least 1, got 0"),
    ("jobs", "cleanup_batch_size", 10_001, "must be at most 10000, got 10001"),
    ("jobs", "worker_concurrency", 0, "must be at least 1, got 0"),
    ("jobs", "worker_concurrency", 257, "must be at most 256, got 257"),
    ("jobs", "shutdown_grace_seconds", -1, "must be at least 0, got -1"),
    ("jobs", "max_attempts", "three", "must be a whole number, got 'three'"),
    ("jobs", "max_attempts", 2.5, "must be a whole number, got 2.5"),
    ("jobs", "heartbeat_interval_seconds", float("inf"), "must be a finite number, got inf"),
]


@pytest.mark.parametrize(("section", "field", "value", "rule"), REFUSED)
def test_each_rule_refused_naming_the_setting(
    section: str, field: str, value: object, rule: str
) -> None:
    err = error_of(None, **{section: {field: value}})
    expected = f"invalid setting RECAPD_{section.upper()}__{field.upper()} ({section}.{field})"
    assert str(err) == f"{expected}: {rule}"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("misfire_grace_seconds", 0),
        ("max_consecutive_failures", 1),
    ],
)
def test_ai_recap_bounds_accepted(field: str, value: int) -> None:
    assert getattr(AIRecapSettings.model_validate({field: value}), field) == value


def test_job_bounds_accepted() -> None:
    j = JobSettings(
        poll_interval_seconds=60,
        heartbeat_interval_seconds=1,
        wedged_job_timeout_seconds=2.01,
        lease_ttl_seconds=10,
        lease_renew_interval_seconds=4.99,
        max_attempts=1,
        retry_base_seconds=3,
        retry_max_seconds=3,
        cleanup_jobs_threshold_days=1,
        cleanup_batch_size=10_000,
        worker_concurrency=256,
        shutdown_grace_seconds=0,
    )
    assert j.worker_concurrency == 256


def test_cross_field_rules_check_against_changed_peer_default() -> None:
    # Raising the heartbeat alone makes the default wedged timeout (60) too short.
    assert "got 60" in str(error_of(jobs={"heartbeat_interval_seconds": 40}))
    assert "(jobs.lease_renew_interval_seconds)" in str(error_of(jobs={"lease_ttl_seconds": 8}))
    assert "(jobs.retry_max_seconds)" in str(error_of(jobs={"retry_base_seconds": 700}))


def test_cross_field_rule_skipped_when_peer_itself_invalid() -> None:
    err = error_of(jobs={"heartbeat_interval_seconds": 0})
    assert [p.setting for p in err.problems] == ["jobs.heartbeat_interval_seconds"]


def test_several_problems_one_line_each() -> None:
    err = error_of(
        database_url="mysql://x",
        ai_recaps={"max_recaps_per_day": 0, "cooldown_minutes": -1},
        jobs={"max_attempts": 0},
    )
    lines = str(err).splitlines()
    assert lines[0] == "4 invalid settings:"
    assert len(lines) == 5
    assert [p.setting for p in err.problems] == [
        "database_url",
        "ai_recaps.max_recaps_per_day",
        "ai_recaps.cooldown_minutes",
        "jobs.max_attempts",
    ]
    for line, problem in zip(lines[1:], err.problems, strict=True):
        assert line == f"  {problem}"
        assert line.startswith(f"  invalid setting {problem.env_var} ({problem.setting}): ")


def test_one_problem_is_one_line() -> None:
    err = error_of(jobs={"max_attempts": 0})
    assert str(err) == (
        "invalid setting RECAPD_JOBS__MAX_ATTEMPTS (jobs.max_attempts): must be at least 1, got 0"
    )
    assert "\n" not in str(err)


# --- database URL ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "sqlalchemy", "postgres", "memory"),
    [
        ("sqlite:///recapd.db", "sqlite:///recapd.db", False, False),
        ("sqlite:///data/sub/recapd.db", "sqlite:///data/sub/recapd.db", False, False),
        (
            "sqlite:////var/lib/recapd/recapd.db",
            "sqlite:////var/lib/recapd/recapd.db",
            False,
            False,
        ),
        ("sqlite://", "sqlite://", False, True),
        ("sqlite:///:memory:", "sqlite:///:memory:", False, True),
        (
            "postgresql://recapd@db.internal:5432/recapd",
            "postgresql+psycopg://recapd@db.internal:5432/recapd",
            True,
            False,
        ),
        (
            "postgresql://recapd:s3cret@localhost/recapd",
            "postgresql+psycopg://recapd:s3cret@localhost/recapd",
            True,
            False,
        ),
        ("postgres://u:p@h:5433/d", "postgresql+psycopg://u:p@h:5433/d", True, False),
        (
            "postgresql+psycopg://u@h/d?sslmode=require",
            "postgresql+psycopg://u@h/d?sslmode=require",
            True,
            False,
        ),
        ("postgresql:///recapd", "postgresql+psycopg:///recapd", True, False),
    ],
)
def test_database_urls_accepted(url: str, sqlalchemy: str, postgres: bool, memory: bool) -> None:
    s = load_settings(database_url=url)
    assert s.database_url == url
    assert to_sqlalchemy_url(s.database_url) == sqlalchemy
    assert s.is_postgres is postgres
    assert s.is_sqlite is not postgres
    assert s.is_sqlite_memory is memory


def test_database_url_surrounding_whitespace_stripped() -> None:
    assert load_settings(database_url=" sqlite:///x.db\n").database_url == "sqlite:///x.db"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "mysql://u@h/d",
        "recapd.db",
        "/var/lib/recapd.db",
        "sqlite:recapd.db",
        "sqlite:///",
        "sqlite://host/recapd.db",
        "sqlite:///data/",
        "postgresql://",
        "postgresql+psycopg2://u@h/d",
        "http://example.com",
    ],
)
def test_database_urls_refused(url: str) -> None:
    message = str(error_of(database_url=url))
    assert message.startswith(
        "invalid setting RECAPD_DATABASE_URL (database_url): is not a supported database URL: "
    )
    for form in ("sqlite:///relative/path.db", "sqlite:////absolute/path.db", "postgresql://"):
        assert form in message
    assert "\n" not in message


def test_database_url_bad_port_refused() -> None:
    message = str(error_of(database_url="postgresql://u@h:notaport/d"))
    assert "(database_url): has an invalid port" in message


def test_database_password_never_shown() -> None:
    message = str(error_of(database_url="mysql://admin:hunter2@db/app"))
    assert "hunter2" not in message
    assert "'mysql://admin:***@db/app'" in message
    s = load_settings(database_url="postgresql://admin:hunter2@db/app")
    assert "hunter2" not in repr(s)
    assert s.redacted_database_url == "postgresql://admin:***@db/app"
    assert "hunter2" in to_sqlalchemy_url(s.database_url)  # the engine still needs it


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://u:p@h/d", "postgresql://u:***@h/d"),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
        ("postgresql://h:5432/d", "postgresql://h:5432/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("no scheme", "no scheme"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


# --- helpers ---------------------------------------------------------------------------------


def test_effective_limit_follows_enforce_toggle() -> None:
    a = AIRecapSettings(
        max_recaps_per_day=20,
        enforce_max_recaps_per_day=False,
        max_posts_per_recap=300,
        enforce_cooldown_minutes=False,
    )
    assert a.effective_limit("max_recaps_per_day") == -1
    assert a.effective_limit("max_posts_per_recap") == 300
    assert a.effective_limit("max_channels_per_recap") == -1  # unlimited by default
    assert a.effective_limit("cooldown_minutes") == 0  # cooldown's "off" is 0
    assert AIRecapSettings().effective_limit("cooldown_minutes") == 60


@pytest.mark.parametrize("name", LIMIT_NAMES)
def test_effective_limit_every_name(name: str) -> None:
    on = AIRecapSettings()
    off = AIRecapSettings.model_validate({f"enforce_{name}": False})
    assert on.effective_limit(name) == getattr(on, name)  # type: ignore[arg-type]
    assert off.effective_limit(name) == (0 if name == "cooldown_minutes" else -1)  # type: ignore[arg-type]


def test_effective_limit_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown limit 'max_nothing'"):
        AIRecapSettings().effective_limit("max_nothing")  # type: ignore[arg-type]


def test_effective_node_id_defaults_to_host_and_pid() -> None:
    node = load_settings().effective_node_id()
    assert node
    assert str(os.getpid()) in node
    assert load_settings(node_id="worker-7").effective_node_id() == "worker-7"


def test_recaps_enabled_needs_both_switches() -> None:
    assert not load_settings(ai_recaps={"enable": False}).recaps_enabled
    assert not load_settings(enable_ai_recaps=False).recaps_enabled
    assert load_settings().recaps_enabled
