"""recapd settings: defaults, then an optional TOML file, then RECAPD_* environment variables.

`load_settings()` is the entry point; it turns every validation failure into a `ConfigError`
that names each broken setting by its environment variable and its dotted TOML path.
"""

from __future__ import annotations

import difflib
import os
import socket
import tomllib
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from recapd.model.chat import DEFAULT_BOT_NAMES

__all__ = [
    "CONFIG_ENV_VAR",
    "CONFIG_ERROR_ID",
    "DEFAULT_SITE_URL",
    "ENV_PREFIX",
    "LIMIT_NAMES",
    "AIRecapSettings",
    "AgentSettings",
    "ConfigError",
    "ConfigProblem",
    "DeliverySettings",
    "JobSettings",
    "LimitName",
    "Settings",
    "load_settings",
    "redact_url",
]

ENV_PREFIX: Final = "RECAPD_"
CONFIG_ENV_VAR: Final = "RECAPD_CONFIG"
CONFIG_ERROR_ID: Final = "config.invalid_setting.app_error"
# `recapd serve`'s default address: the site of the local workspace's links when site_url is
# unset and no server of this process bound another one (`recapd worker`, the CLI).
DEFAULT_SITE_URL: Final = "http://127.0.0.1:8065"

# Custom validation errors carry this type so the formatter knows the text is already final.
_RULE: Final = "recapd_setting"

_ACCEPTED_URLS: Final = (
    "use sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:// or "
    "sqlite:///:memory: (in memory), or postgresql://user:password@host:port/dbname "
    "(postgres:// and postgresql+psycopg:// are accepted too)"
)
_POSTGRES_SCHEMES: Final = frozenset({"postgres", "postgresql", "postgresql+psycopg"})
_SQLITE_MEMORY_URLS: Final = frozenset({"sqlite://", "sqlite:///:memory:"})


def _show(value: Any) -> str:
    """A value as the user wrote it: TOML-style booleans, quoted strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _rule(message: str, got: Any) -> PydanticCustomError:
    return PydanticCustomError(_RULE, "{rule}, got {got}", {"rule": message, "got": _show(got)})


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`, safe for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{tail}"


# ---------------------------------------------------------------------------------------------
# Field rules
# ---------------------------------------------------------------------------------------------


def _limit(value: int) -> int:
    # 0 would read as "nothing allowed" to some and "no limit" to others; -1 is unambiguous.
    if value == -1 or value >= 1:
        return value
    message = "must be -1 (unlimited) or at least 1"
    if value == 0:
        raise PydanticCustomError(
            _RULE, "{rule}, got 0 (0 is not allowed: use -1 for unlimited)", {"rule": message}
        )
    raise _rule(message, value)


def _cooldown(value: int) -> int:
    if 0 <= value <= 1440:
        return value
    raise _rule("must be between 0 (off) and 1440 minutes", value)


def _cleanup_days(value: int) -> int:
    if value == -1 or value >= 1:
        return value
    suffix = " (use -1 to never clean up)" if value == 0 else ""
    raise PydanticCustomError(
        _RULE, "must be -1 (never) or at least 1 day, got {got}" + suffix, {"got": _show(value)}
    )


Limit = Annotated[int, AfterValidator(_limit)]

LimitName = Literal[
    "max_recaps_per_day",
    "max_scheduled_recaps",
    "max_channels_per_recap",
    "max_posts_per_recap",
    "max_tokens_per_recap",
    "max_posts_per_day",
    "cooldown_minutes",
]
LIMIT_NAMES: Final[tuple[str, ...]] = get_args(LimitName)


class AIRecapSettings(BaseModel):
    """Mattermost's `AIRecapSettings`: the switch, per-user limits and schedule robustness."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enable: bool = Field(True, description="Recaps on; off also needs enable_ai_recaps.")

    max_recaps_per_day: Limit = Field(10, description="Recaps a user may get per day; -1 = no cap.")
    enforce_max_recaps_per_day: bool = True
    max_scheduled_recaps: Limit = Field(5, description="Live scheduled recaps per user.")
    enforce_max_scheduled_recaps: bool = True
    max_channels_per_recap: Limit = Field(-1, description="Channels in one recap.")
    enforce_max_channels_per_recap: bool = True
    max_posts_per_recap: Limit = Field(2000, description="Posts read for one recap.")
    enforce_max_posts_per_recap: bool = True
    max_tokens_per_recap: Limit = Field(100_000, description="Estimated tokens per recap.")
    enforce_max_tokens_per_recap: bool = True
    max_posts_per_day: Limit = Field(20_000, description="Posts read per user per day.")
    enforce_max_posts_per_day: bool = True
    cooldown_minutes: Annotated[int, AfterValidator(_cooldown)] = Field(
        60, description="Minimum minutes between manual recaps; 0 = off."
    )
    enforce_cooldown_minutes: bool = True

    bot_usernames: tuple[str, ...] = Field(
        DEFAULT_BOT_NAMES,
        description="Usernames whose posts are a bot's (never a highlight or an owner), "
        "besides accounts flagged as bots and names ending in '-bot', '_bot' or '[bot]'.",
    )

    misfire_grace_seconds: int = Field(
        3600, ge=0, description="How late a missed occurrence may still get its catch-up run."
    )
    max_consecutive_failures: int = Field(
        5, ge=1, description="A schedule pauses itself after this many failed occurrences."
    )
    part_cache_hours: float = Field(
        192.0,
        ge=0,
        le=24 * 366,
        allow_inf_nan=False,
        description="How long a stretch's summary is kept for other recaps to reuse (8 days: "
        "a weekly recap reuses a week of dailies); 0 = no part cache.",
    )
    part_cache_claim_seconds: float = Field(
        300.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="How long other recaps wait for a part another run is computing before "
        "they compute it themselves (that run presumably died).",
    )

    def effective_limit(self, name: LimitName) -> int:
        """The limit in force: the value, or its "off" value (-1; 0 for cooldown) if unenforced."""
        if name not in LIMIT_NAMES:
            raise ValueError(f"unknown limit {name!r}; expected one of {', '.join(LIMIT_NAMES)}")
        value: int = getattr(self, name)
        if getattr(self, f"enforce_{name}"):
            return value
        # Cooldown is "off" at 0, not -1: callers compare it as a duration.
        return 0 if name == "cooldown_minutes" else -1


class JobSettings(BaseModel):
    """The job server: workers, the scheduler, leases, retries and cleanup."""

    # Infinity or NaN in a timing setting would silently disable a loop or a timeout.
    # Defaults are validated too, so the cross-field rules see a changed field's default peer.
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, validate_default=True
    )

    run_jobs: bool = Field(True, description="Run job workers on this node.")
    run_scheduler: bool = Field(True, description="Take part in scheduler leader election.")
    poll_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="Worker poll period when LISTEN/NOTIFY is unavailable."
    )
    scheduler_poll_interval_seconds: float = Field(60.0, gt=0)
    heartbeat_interval_seconds: float = Field(5.0, gt=0)
    wedged_job_timeout_seconds: float = Field(
        60.0, description="A running job with no heartbeat for this long is recovered."
    )
    lease_ttl_seconds: float = Field(15.0, gt=0)
    lease_renew_interval_seconds: float = Field(5.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    retry_base_seconds: float = Field(2.0, gt=0)
    retry_max_seconds: float = Field(600.0)
    cleanup_jobs_threshold_days: Annotated[int, AfterValidator(_cleanup_days)] = Field(
        -1, description="Delete finished jobs older than this; -1 = never."
    )
    cleanup_batch_size: int = Field(500, ge=1, le=10_000)
    worker_concurrency: int = Field(4, ge=1, le=256)
    shutdown_grace_seconds: float = Field(30.0, ge=0)

    # The cross-field rules below run per field (earlier fields are in info.data) so the error
    # names the field to change; they are skipped when the other field is itself invalid.

    @field_validator("wedged_job_timeout_seconds")
    @classmethod
    def _wedged_after_heartbeats(cls, value: float, info: ValidationInfo) -> float:
        heartbeat = info.data.get("heartbeat_interval_seconds")
        if heartbeat is not None and value <= 2 * heartbeat:
            # One late heartbeat must not get a live job recovered and run twice.
            raise _rule(
                f"must be more than twice jobs.heartbeat_interval_seconds ({_show(heartbeat)}), "
                f"i.e. more than {_show(2 * heartbeat)}",
                value,
            )
        return value

    @field_validator("lease_renew_interval_seconds")
    @classmethod
    def _renew_before_expiry(cls, value: float, info: ValidationInfo) -> float:
        ttl = info.data.get("lease_ttl_seconds")
        if ttl is not None and value >= ttl / 2:
            # Renewing in under half the TTL leaves one retry before the lease lapses.
            raise _rule(
                f"must be less than half of jobs.lease_ttl_seconds ({_show(ttl)}), "
                f"i.e. less than {_show(ttl / 2)}",
                value,
            )
        return value

    @field_validator("retry_max_seconds")
    @classmethod
    def _max_not_below_base(cls, value: float, info: ValidationInfo) -> float:
        base = info.data.get("retry_base_seconds")
        if base is not None and value < base:
            raise _rule(f"must be at least jobs.retry_base_seconds ({_show(base)})", value)
        return value


AgentType = Literal["extractive", "openai"]


class AgentSettings(BaseModel):
    """One configured agent, referred to by its id (the key under `agents`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: AgentType = Field("extractive", description="extractive (offline) or openai.")
    display_name: str = ""
    base_url: str = Field(
        "", description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1 (empty: OpenAI)"
    )
    api_key: str = Field("", description="API key for the endpoint (never printed).", repr=False)
    model: str = Field("", description="Model name; required for openai.")
    context_tokens: int = Field(
        32_000, ge=512, description="Tokens one request may use; longer windows are split."
    )
    max_output_tokens: int = Field(1024, ge=64, le=65_536)
    timeout_seconds: float = Field(60.0, gt=0, le=3600)
    max_retries: int = Field(3, ge=0, le=10, description="Retries on 429, 5xx and timeouts.")
    structured_output: Literal["auto", "json_schema", "off"] = Field(
        "auto", description="auto: JSON schema, falling back to plain JSON when refused."
    )
    temperature: float = Field(0.2, ge=0, le=2)

    @field_validator("model")
    @classmethod
    def _strip_model(cls, value: str) -> str:
        return value.strip()

    @model_validator(mode="after")
    def _model_needed(self) -> AgentSettings:
        if self.type == "openai" and not self.model:
            raise ValueError("model is required for an openai agent (the model name)")
        return self

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        url = value.strip()
        if url and urlsplit(url).scheme not in ("http", "https"):
            raise _rule("must be an http:// or https:// URL", url)
        return url


class DeliverySettings(BaseModel):
    """Telling users a recap finished: a direct message from a bot, per-user webhooks."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    direct_message: bool = Field(True, description="Send a direct message from the bot.")
    bot_username: str = Field(
        "recap-bot", pattern=r"^[a-z0-9._-]{3,22}$", description="The bot's username."
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=300)
    max_attempts: int = Field(
        8, ge=1, le=50, description="Attempts of a delivery job (webhook retries, job backoff)."
    )
    allowed_untrusted_internal_connections: str = Field(
        "",
        description="Hosts, IPs or CIDRs (space or comma separated) webhooks may reach on "
        "loopback, private or link-local addresses; none by default (as Mattermost).",
    )


def _default_agents() -> dict[str, AgentSettings]:
    return {"extractive": AgentSettings(display_name="Extractive (offline)")}


# Set by load_settings() for the duration of one Settings() construction.
_config_file: ContextVar[Path | None] = ContextVar("recapd_config_file", default=None)


class Settings(BaseSettings):
    """All recapd settings. Build it with `load_settings()`; `Settings()` alone skips the file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    enable_ai_recaps: bool = Field(
        True, description="The feature flag (EnableAIRecaps); on by default in recapd."
    )
    database_url: str = Field(
        "sqlite:///recapd.db",
        description="SQLite file or PostgreSQL server; store.database maps it to a driver.",
    )
    node_id: str = Field("", description="This node's name in leases and jobs; empty = host-pid.")
    ai_recaps: AIRecapSettings = Field(default_factory=AIRecapSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    agents: dict[str, AgentSettings] = Field(
        default_factory=_default_agents, description="Agents by id; schedules name one."
    )
    default_agent: str = Field("extractive", description="Agent used when none is named.")
    llm_concurrency: int = Field(
        16, ge=1, le=1024, description="Agent calls in flight at once on this node."
    )
    site_url: str = Field(
        "",
        description="Base URL of the chat site, for permalinks; empty = the address `recapd "
        "serve` bound (DEFAULT_SITE_URL where nothing serves).",
    )
    public_url: str = Field(
        "",
        description="recapd's own address, for links to its pages in messages; "
        "empty = site_url when the chat is recapd's own workspace, else no link.",
    )
    session_secret: str = Field(
        "",
        repr=False,
        description="Signs web session cookies; empty = one generated and kept in the database.",
    )
    chat: Literal["local", "mattermost"] = Field(
        "local", description="Where channels are read: recapd's own tables or a Mattermost server."
    )
    mattermost_url: str = Field(
        "", validate_default=True, description="The Mattermost server: https://chat.example.com"
    )
    mattermost_token: str = Field(
        "", repr=False, validate_default=True, description="Bot or admin token (never printed)."
    )
    mattermost_timeout_seconds: float = Field(30.0, gt=0, le=600, allow_inf_nan=False)
    mattermost_max_retries: int = Field(3, ge=0, le=10, description="Retries on 429 and 502-504.")
    mattermost_slash_token: str = Field(
        "", repr=False, description="The /recap slash command's token (empty: command off)."
    )
    mattermost_signin_cache_seconds: float = Field(
        60.0, ge=0, le=3600, allow_inf_nan=False, description="How long a checked token counts."
    )
    mattermost_web_session_hours: float = Field(
        12.0,
        gt=0,
        le=720,
        allow_inf_nan=False,
        description="A web sign-in with a Mattermost token ends this long after it began.",
    )

    @field_validator("agents")
    @classmethod
    def _agent_ids(cls, value: dict[str, AgentSettings]) -> dict[str, AgentSettings]:
        for agent_id in value:
            if not agent_id or len(agent_id) > 64 or any(c.isspace() for c in agent_id):
                raise _rule("agent ids must be 1-64 characters without spaces", agent_id)
        # The offline agent is always there, so a fresh setup can make recaps with no server.
        return {**_default_agents(), **value}

    @field_validator("default_agent")
    @classmethod
    def _default_agent_known(cls, value: str, info: ValidationInfo) -> str:
        agents = info.data.get("agents")
        if agents is not None and value not in agents:
            raise _rule(
                f"must be one of the configured agents ({', '.join(sorted(agents))})", value
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: explicit overrides, then environment, then the TOML file, then defaults."""
        path = _config_file.get()
        if path is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, path))

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        url = value.strip()
        if url in _SQLITE_MEMORY_URLS:
            return url
        if url.startswith("sqlite:///"):
            path = url.removeprefix("sqlite:///").partition("?")[0]
            if path and not path.endswith("/"):
                return url
        scheme, sep, _ = url.partition("://")
        if sep and scheme in _POSTGRES_SCHEMES:
            parts = urlsplit(url)
            try:
                parts.port  # noqa: B018 - urlsplit checks the port only when it is read
            except ValueError:
                raise _rule("has an invalid port (must be 0-65535)", redact_url(url)) from None
            if parts.netloc or parts.path.strip("/"):
                return url
        raise _rule(f"is not a supported database URL: {_ACCEPTED_URLS}", redact_url(url))

    @field_validator("node_id")
    @classmethod
    def _strip_node_id(cls, value: str) -> str:
        return value.strip()

    @field_validator("session_secret")
    @classmethod
    def _long_session_secret(cls, value: str) -> str:
        # A short key can be guessed, and then anyone can forge a session cookie.
        if value and len(value) < 32:
            raise PydanticCustomError(
                _RULE,
                "must be at least 32 characters (or empty: one is generated), got {n}",
                {"n": len(value)},
            )
        return value

    @field_validator("mattermost_url")
    @classmethod
    def _mattermost_url(cls, value: str, info: ValidationInfo) -> str:
        url = value.strip().rstrip("/").removesuffix("/api/v4")
        parts = urlsplit(url)
        if url and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise _rule("must be the http:// or https:// URL of the Mattermost server", url)
        if not url and info.data.get("chat") == "mattermost":
            raise PydanticCustomError(_RULE, "is required when chat is 'mattermost'", {})
        return url

    @field_validator("mattermost_token")
    @classmethod
    def _mattermost_token(cls, value: str, info: ValidationInfo) -> str:
        token = value.strip()
        if not token and info.data.get("chat") == "mattermost":
            raise PydanticCustomError(
                _RULE, "is required when chat is 'mattermost' (a bot or admin token)", {}
            )
        return token

    @property
    def is_sqlite(self) -> bool:
        """True when the database is SQLite (a file or in memory)."""
        return self.database_url.startswith("sqlite:")

    @property
    def is_sqlite_memory(self) -> bool:
        """True for an in-memory SQLite database (one connection must be shared)."""
        return self.database_url in _SQLITE_MEMORY_URLS

    @property
    def is_postgres(self) -> bool:
        """True when the database is PostgreSQL."""
        return self.database_url.partition("://")[0] in _POSTGRES_SCHEMES

    @property
    def recaps_enabled(self) -> bool:
        """Both switches on: the feature flag and `ai_recaps.enable` (as in Mattermost)."""
        return self.enable_ai_recaps and self.ai_recaps.enable

    def site_url_or(self, served_url: str = "") -> str:
        """The local workspace's site: site_url when set, else the address this process
        serves at (`served_url`), else DEFAULT_SITE_URL."""
        return (self.site_url or served_url or DEFAULT_SITE_URL).rstrip("/")

    def pages_url(self, served_url: str = "") -> str:
        """Where recapd's pages are, for links in messages ("" when unknown): public_url, else
        the local workspace's site (see site_url_or)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return self.site_url_or(served_url) if self.chat == "local" else ""

    @property
    def redacted_database_url(self) -> str:
        """database_url with its password masked, for logs and `config show`."""
        return redact_url(self.database_url)

    def effective_node_id(self) -> str:
        """node_id, or `<hostname>-<pid>` when empty (computed per call, so right after fork)."""
        if self.node_id:
            return self.node_id
        return f"{socket.gethostname() or 'localhost'}-{os.getpid()}"

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # Settings get logged; the database password must not be.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "database_url" else value


# ---------------------------------------------------------------------------------------------
# Errors and loading
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One broken setting (or an unreadable file, when `setting` is empty)."""

    setting: str
    env_var: str
    message: str

    def __str__(self) -> str:
        if not self.setting:
            return self.message
        return f"invalid setting {self.env_var} ({self.setting}): {self.message}"


class ConfigError(Exception):
    """Settings that cannot be used; str() is one line per problem."""

    def __init__(self, problems: Sequence[ConfigProblem], config_file: Path | None = None) -> None:
        self.id = CONFIG_ERROR_ID
        self.problems = list(problems)
        self.config_file = config_file
        super().__init__(_render(self.problems))

    @classmethod
    def from_validation_error(
        cls, exc: ValidationError, config_file: Path | None = None
    ) -> ConfigError:
        """Translate a ValidationError raised while building `Settings`."""
        return cls([_problem(error) for error in exc.errors()], config_file)

    @classmethod
    def for_file(cls, path: Path, reason: str) -> ConfigError:
        """An explicitly named config file that is missing or not valid TOML."""
        return cls([ConfigProblem("", CONFIG_ENV_VAR, f"config file {path}: {reason}")], path)


def _render(problems: Sequence[ConfigProblem]) -> str:
    if len(problems) == 1:
        return str(problems[0])
    lines = [f"{len(problems)} invalid settings:"]
    lines.extend(f"  {problem}" for problem in problems)
    return "\n".join(lines)


def _env_var(loc: Sequence[str]) -> str:
    return ENV_PREFIX + "__".join(part.upper() for part in loc)


_BUILTIN_MESSAGES: Final[dict[str, str]] = {
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
}
# Error types whose input is a whole table or absent, so "got ..." would not help.
_NO_INPUT: Final = frozenset({"missing", "model_type", "model_attributes_type", "dict_type"})


def _problem(error: ErrorDetails) -> ConfigProblem:
    loc = [part for part in error["loc"] if isinstance(part, str)]
    setting = ".".join(loc) or "settings"
    kind = error["type"]
    if kind == _RULE:
        message = error["msg"]
    elif kind == "extra_forbidden":
        message = "unknown setting" + _suggestion(loc)
    elif kind == "missing":
        message = "is required"
    elif kind in _NO_INPUT:
        message = "must be a table of settings"
    else:
        template = _BUILTIN_MESSAGES.get(kind)
        ctx = {key: _show(value) for key, value in error.get("ctx", {}).items()}
        if template is not None:
            message = template.format(**ctx)
        else:
            message = error["msg"][:1].lower() + error["msg"][1:]
        message += f", got {_show(error['input'])}"
    return ConfigProblem(setting, _env_var(loc), message)


def _suggestion(loc: Sequence[str]) -> str:
    """A "; did you mean x?" hint for a misspelled key, found among its siblings."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    if not loc:
        return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    return f"; did you mean {close[0]}?" if close else ""


def _settings_error_problem(exc: SettingsError) -> ConfigProblem:
    # pydantic-settings only says 'error parsing value for field "jobs" from source ...'.
    field = str(exc).partition('field "')[2].partition('"')[0]
    if field in Settings.model_fields:
        return ConfigProblem(field, _env_var([field]), "must be a JSON object of settings")
    return ConfigProblem("", "", f"invalid settings: {exc}")


def _resolve_config_file(config_file: str | Path | None) -> Path | None:
    if config_file is None or str(config_file) == "":
        config_file = os.environ.get(CONFIG_ENV_VAR) or None
    if config_file is None:
        return None
    path = Path(config_file).expanduser()
    if not path.exists():
        raise ConfigError.for_file(path, "no such file")
    if path.is_dir():
        raise ConfigError.for_file(path, "is a directory, not a TOML file")
    # Parse once here: pydantic-settings would raise a bare TOMLDecodeError, or nothing at all
    # for a missing file, and an explicitly named file must not be skipped silently.
    try:
        with path.open("rb") as stream:
            tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError.for_file(path, f"invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError.for_file(path, "invalid TOML: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError.for_file(path, f"cannot read: {exc.strerror or exc}") from None
    return path.resolve()


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings: defaults < TOML file (argument or $RECAPD_CONFIG) < env < overrides.

    Overrides whose value is None are ignored, so CLI options left unset fall through.
    """
    path = _resolve_config_file(config_file)
    values = {name: value for name, value in overrides.items() if value is not None}
    token = _config_file.set(path)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError.from_validation_error(exc, path) from None
    except SettingsError as exc:
        raise ConfigError([_settings_error_problem(exc)], path) from None
    finally:
        _config_file.reset(token)
