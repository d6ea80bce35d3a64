"""Every setting of a threadline process, in one object read from environment variables (and CLI flags).

`Settings` is a pydantic-settings model: each field is read from `THREADLINE_<FIELD>` (or the alias it names, e.g.
the standard `OPENAI_API_KEY`), typed and validated once, at start-up. `Settings.load()` turns a validation error
into a `SettingsError` whose message names the environment variable. No other module reads the process
environment; they receive the settings (or the values they need) from the Runtime. docs/deployment.md's settings
table is generated from these fields (`settings_table()`; a test keeps it in sync).
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "THREADLINE_"
_isolated: contextvars.ContextVar[bool] = contextvars.ContextVar("settings_isolated", default=False)


def _lowered(value: Any) -> Any:
    """Words (switches such as `on`/`off`, modes, formats) are read without surrounding blanks, in any case."""
    return value.strip().lower() if isinstance(value, str) else value


class SettingsError(ValueError):
    """A setting is invalid; the message names its environment variable."""


class Settings(BaseSettings):
    """The process's settings. Construct with keyword arguments (field names) to override the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,  # VAR= means unset, as before
        extra="ignore",
        populate_by_name=True,
    )

    # -- serving ---------------------------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="bind address (`--host`)")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (`--port`)")
    data_dir: Path = Field(
        Path("var"), description="SQLite database, local file bytes and sandbox sessions (`--data-dir`)"
    )
    database_url: str | None = Field(
        None,
        description="`postgresql://user:pw@host/db` selects PostgreSQL; unset: SQLite file in the data dir "
        "(`--database-url`)",
    )
    blob_url: str | None = Field(
        None,
        description="where file bytes live: a directory (or `file:///dir`), or `s3://bucket/prefix` (credentials "
        "from the standard AWS variables); unset: `<data dir>/files`",
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        repr=False,
        description="comma-separated API keys; none and no stored key: the server is open (warned at start)",
    )
    admin_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        repr=False,
        description="comma-separated admin keys for `/v1/organization/*` (usage, costs, admin keys); more are "
        "added with `threadline keys add-admin` (docs/projects-and-costs.md)",
    )
    prices_file: Path | None = Field(
        None,
        description="JSON or TOML price file (USD per million tokens per model, tool prices) overriding the "
        "`genai-prices` package's prices (docs/projects-and-costs.md)",
    )
    spend_alert_webhook_url: str | None = Field(
        None,
        description="where a spend alert that fires is POSTed as JSON (once per alert and month; a short timeout, "
        "a few retries, never blocking a run); unset: alerts are logged and counted only (docs/projects-and-costs.md)",
    )
    spend_alert_webhook_timeout_s: float = Field(
        5.0, gt=0, le=60, description="timeout of one spend alert webhook POST", json_schema_extra={"unit": "s"}
    )
    poll_after_ms: int = Field(
        250,
        ge=0,
        description="`openai-poll-after-ms` header the SDKs' poll helpers obey",
        json_schema_extra={"unit": "ms"},
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1,
        description="largest request body outside the upload routes (413 before it is read)",
        json_schema_extra={"unit": "bytes"},
    )
    max_file_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1,
        description="largest file for `POST /v1/files` (plus 1 MB of multipart framing)",
        json_schema_extra={"unit": "bytes"},
    )
    max_part_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1,
        description="largest part for `POST /v1/uploads/{id}/parts` (plus 1 MB of framing)",
        json_schema_extra={"unit": "bytes"},
    )

    # -- runs ------------------------------------------------------------------------------------------------------
    run_expires_after_s: int = Field(
        600,
        ge=1,
        validation_alias="THREADLINE_RUN_EXPIRES_AFTER",
        description="time from a run's creation to its `expires_at`",
        json_schema_extra={"unit": "s"},
    )
    run_workers: int = Field(
        32,
        ge=0,
        description="runs one process executes at once from the queue (0: a pure API process; it still executes "
        "the runs it streams)",
        json_schema_extra={"unit": "workers"},
    )
    run_lease_s: float = Field(
        30.0,
        gt=0,
        description="run lease (renewed every third of it); a run whose executor stopped heartbeating is recovered "
        "after it (at once when its process is known to be dead)",
        json_schema_extra={"unit": "s"},
    )

    # -- processes -------------------------------------------------------------------------------------------------
    workers: int = Field(
        0,
        ge=0,
        description="`serve` processes on the port (`--workers`; 0: one per core); more machines: more `serve` "
        "or `threadline worker` processes on one PostgreSQL database",
        json_schema_extra={"unit": "processes"},
    )
    queue_poll_s: float | None = Field(
        None,
        gt=0,
        description="poll for queued runs while a worker is idle (unset: 2 s on PostgreSQL, where NOTIFY wakes "
        "workers at once and the poll is the fallback; 0.5 s on SQLite)",
        json_schema_extra={"unit": "s"},
    )
    cancel_poll_s: float | None = Field(
        None,
        gt=0,
        description="poll for cancels of the runs a process executes (unset: 2 s on PostgreSQL, where NOTIFY "
        "delivers them at once; 0.5 s on SQLite)",
        json_schema_extra={"unit": "s"},
    )

    # -- storage ---------------------------------------------------------------------------------------------------
    storage_reserve_mb: float = Field(
        16.0,
        ge=0,
        description="SQLite: space kept allocated next to the database so deletes work on a full disk (0: off)",
        json_schema_extra={"unit": "MiB"},
    )
    upload_expires_after_s: int = Field(
        3600,
        ge=1,
        validation_alias="THREADLINE_UPLOAD_EXPIRES_AFTER",
        description="time from an Upload's creation to its `expires_at`",
        json_schema_extra={"unit": "s"},
    )
    maintenance_s: float = Field(
        30.0,
        gt=0,
        description="interval of the maintenance pass (storage reserve, expired uploads' parts)",
        json_schema_extra={"unit": "s"},
    )

    # -- model providers -------------------------------------------------------------------------------------------
    openai_api_key: str | None = Field(
        None,
        repr=False,
        validation_alias="OPENAI_API_KEY",
        description="key of the default OpenAI-compatible provider (and of `openai` embeddings)",
    )
    openai_base_url: str | None = Field(
        None,
        validation_alias="OPENAI_BASE_URL",
        description="base URL of the default OpenAI-compatible Chat Completions provider; this or the key routes "
        "every model there",
    )
    anthropic_api_key: str | None = Field(
        None,
        repr=False,
        validation_alias="ANTHROPIC_API_KEY",
        description="`claude-*` models go to Anthropic's Messages API",
    )
    anthropic_base_url: str | None = Field(
        None,
        validation_alias="ANTHROPIC_BASE_URL",
        description="Anthropic base URL (default `https://api.anthropic.com`)",
    )
    providers_file: Path | None = Field(
        None, description="JSON/TOML routes: model names/prefixes → provider, base URL, key (providers/router.py)"
    )
    provider_timeout_s: float = Field(
        600.0, gt=0, description="upstream request timeout", json_schema_extra={"unit": "s"}
    )
    provider_max_attempts: int = Field(
        3,
        ge=1,
        description="attempts per model call (retries with backoff on 429/5xx before the first token)",
        json_schema_extra={"unit": "attempts"},
    )
    anthropic_max_tokens: int = Field(
        4096,
        ge=1,
        description="`max_tokens` sent to Anthropic when the run sets none",
        json_schema_extra={"unit": "tokens"},
    )
    upstream_models: bool = Field(
        True,
        description="`GET /v1/models` also lists what each catch-all / prefix / pattern route's upstream serves "
        "(`off`: the routes file's names only)",
    )
    upstream_models_ttl_s: float = Field(
        300.0, ge=0, description="how long an upstream model list is cached", json_schema_extra={"unit": "s"}
    )
    upstream_models_timeout_s: float = Field(
        3.0, gt=0, description="timeout of an upstream model list request", json_schema_extra={"unit": "s"}
    )

    # -- retrieval -------------------------------------------------------------------------------------------------
    embeddings: Literal["local", "openai"] = Field(
        "local",
        description="`local` (all-MiniLM-L6-v2 on ONNX Runtime, built at setup) or `openai` (an OpenAI-compatible "
        "`/embeddings`)",
    )
    embeddings_model: str = Field("text-embedding-3-small", description="model of `openai` embeddings")
    embeddings_base_url: str | None = Field(
        None, description="base URL of `openai` embeddings (default `OPENAI_BASE_URL`)"
    )
    embeddings_dim: int | None = Field(
        None, ge=1, description="`dimensions` asked of `openai` embeddings (default: the model's)"
    )
    models_dir: Path | None = Field(
        None, description="where the local embedding model is (default `<repo>/.cache/models`)"
    )
    search_mode: Literal["hybrid", "keyword", "vector"] = Field(
        "hybrid", description="vector store search: fused keyword + vector scores, or one of them alone"
    )
    keyword_postings_budget: int = Field(
        5000,
        ge=1,
        description="SQLite keyword search: bound on the summed document frequencies of the query terms sent to FTS5",
        json_schema_extra={"unit": "postings"},
    )
    index_cache_mb: int = Field(
        2048,
        ge=0,
        description="SQLite: memory for the per-store embedding matrices kept for vector search",
        json_schema_extra={"unit": "MiB"},
    )
    expiry_day_seconds: int = Field(
        86400,
        ge=1,
        description="length of a 'day' in vector store `expires_after` policies (shortened by tests)",
        json_schema_extra={"unit": "s"},
    )

    # -- code_interpreter sandbox ----------------------------------------------------------------------------------
    sandbox_max_sessions: int = Field(
        16,
        ge=1,
        description="live sandbox sessions, one per thread (past this the least recently used ends)",
        json_schema_extra={"unit": "sessions"},
    )
    sandbox_idle_s: float = Field(
        3600.0, gt=0, description="an idle session is ended after this", json_schema_extra={"unit": "s"}
    )
    sandbox_timeout_s: float = Field(
        60.0, gt=0, description="wall-clock limit of one code execution", json_schema_extra={"unit": "s"}
    )
    sandbox_memory_mb: int = Field(
        1024, ge=1, description="memory limit of a session", json_schema_extra={"unit": "MiB"}
    )
    sandbox_warm_pool: int = Field(
        1,
        ge=0,
        description="sandboxes started ahead of use (0: none, and no probe at start)",
        json_schema_extra={"unit": "sandboxes"},
    )
    sandbox_max_output_files: int = Field(
        20,
        ge=0,
        description="output files kept per execution (the rest are named as dropped)",
        json_schema_extra={"unit": "files"},
    )
    sandbox_venv: Path = Field(
        Path("/opt/threadline/sandbox-venv"), description="the sandbox's Python (scripts/setup-sandbox.sh builds it)"
    )
    code_interpreter_unsandboxed_unsafe: bool = Field(
        False,
        description="`1`: run code_interpreter code WITHOUT a sandbox (development only; never with untrusted input)",
    )
    sandbox_service: Literal["auto", "external", "off"] = Field(
        "auto",
        description="where sessions live: `auto` the machine's sandbox service, shared by every threadline process "
        "and started on demand; `external` only a `threadline sandbox` the operator runs; `off` inside each process",
    )
    sandbox_service_dir: Path | None = Field(
        None, description="the sandbox service's socket, token, lock and log; unset: `<data dir>/sandbox/service`"
    )
    sandbox_service_linger_s: float = Field(
        60.0,
        gt=0,
        description="an on-demand sandbox service exits this long after the last threadline process detached",
        json_schema_extra={"unit": "s"},
    )

    # -- operations ------------------------------------------------------------------------------------------------
    log_format: Literal["json", "text"] | None = Field(
        None, description="`json` or `text`; unset: JSON unless stderr is a terminal"
    )
    metrics: bool = Field(True, description="Prometheus metrics at `/metrics` (`off` removes the endpoint)")
    prometheus_multiproc_dir: Path | None = Field(
        None,
        validation_alias="PROMETHEUS_MULTIPROC_DIR",
        description="several processes on one host: their shared metrics directory (read by prometheus-client too)",
    )
    tracing: bool = Field(False, description="`1`: OpenTelemetry traces (GenAI conventions) to the `OTEL_*` exporter")
    otel_traces_exporter: str = Field(
        "otlp",
        validation_alias="OTEL_TRACES_EXPORTER",
        description="`otlp` (OTLP over HTTP; endpoint, headers from the standard `OTEL_EXPORTER_OTLP_*`), "
        "`console`, `none`",
    )
    otel_service_name: str = Field(
        "threadline",
        validation_alias="OTEL_SERVICE_NAME",
        description="the traces' `service.name`",
    )

    # -- parsing ---------------------------------------------------------------------------------------------------
    @field_validator("spend_alert_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("api_keys", "admin_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator(
        "embeddings",
        "search_mode",
        "log_format",
        "metrics",
        "tracing",
        "upstream_models",
        "otel_traces_exporter",
        "sandbox_service",
        mode="before",
    )
    @classmethod
    def _normalise_words(cls, value: Any) -> Any:
        return _lowered(value)

    # -- derived ---------------------------------------------------------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'threadline.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "files"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the process environment (no .env or secrets files); only the keyword arguments
        inside from_mapping."""
        return (init_settings,) if _isolated.get() else (init_settings, env_settings)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """The settings `env` (variable names as in the environment) gives, without reading the process
        environment: for tests and for programs that embed threadline. Raises SettingsError."""
        values = {
            name: env[env_name(name, info)] for name, info in cls.model_fields.items() if env_name(name, info) in env
        }
        values = {k: v for k, v in values.items() if v != ""}
        token = _isolated.set(True)
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError(describe_errors(exc)) from None
        finally:
            _isolated.reset(token)

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """The environment's settings with `overrides` (field names; None values are ignored) on top.

        Raises SettingsError naming the environment variable (or flag value) that is invalid."""
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            raise SettingsError(describe_errors(exc, given)) from None


def env_name(name: str, info: FieldInfo | None = None) -> str:
    """The environment variable of field `name`: its alias (e.g. OPENAI_API_KEY), else THREADLINE_<NAME>."""
    info = info or Settings.model_fields[name]
    alias = info.validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + name.upper()


def _field_of(loc: Any) -> str | None:
    if loc in Settings.model_fields:
        return loc
    for name, info in Settings.model_fields.items():
        if env_name(name, info).lower() == str(loc).lower():
            return name
    return None


def describe_errors(exc: ValidationError, given: dict[str, Any] | None = None) -> str:
    """One line per invalid setting: `THREADLINE_<NAME>='value': what is wrong` (secrets are not echoed)."""
    lines = []
    for error in exc.errors():
        loc = error["loc"][0] if error["loc"] else ""
        name = _field_of(loc)
        where = env_name(name) if name else str(loc)
        if name and given and name in given:
            where = "--" + name.replace("_", "-")  # a command-line option
        shown = ""
        if name is None or Settings.model_fields[name].repr:
            shown = f"={error['input']!r}"
        lines.append(f"invalid setting {where}{shown}: {error['msg']}")
    return "\n".join(lines)


def child_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with `overrides` on top: for a threadline process it starts (the sandbox
    service), which reads its settings from it."""
    return {**os.environ, **overrides}


def export(settings: Settings, *names: str) -> None:
    """Put fields `names` of `settings` into this process's environment (as their variables), for child processes
    whose own Settings.load() must see them (`serve --workers N`); None values are removed."""
    for name in names:
        value = getattr(settings, name)
        if value is None:
            os.environ.pop(env_name(name), None)
        else:
            os.environ[env_name(name)] = ",".join(value) if isinstance(value, list) else str(value)


def env_value(name: str) -> str | None:
    """A variable named by configuration rather than by a field (a route's `api_key_env`); None when unset or
    empty."""
    return os.environ.get(name) or None


def _default_text(info: FieldInfo) -> str:
    value = None if info.default_factory is not None else info.default
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "`on`" if value else "`off`"
    return f"`{value}`"


def settings_table() -> str:
    """The Markdown table of every setting (variable, default, unit, meaning) that docs/deployment.md holds."""
    rows = ["| Variable | Default | Unit | Meaning |", "|---|---|---|---|"]
    for name, info in Settings.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        unit = str(extra.get("unit", ""))
        meaning = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{env_name(name, info)}` | {_default_text(info)} | {unit} | {meaning} |")
    return "\n".join(rows)


if __name__ == "__main__":  # `python -m threadline.config` prints the table for docs/deployment.md
    print(settings_table())
