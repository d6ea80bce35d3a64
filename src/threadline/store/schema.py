"""Table definitions used by the store's queries. Migrations under migrations/versions create them.

Each resource keeps its wire object as JSON text in `data` (returned to clients as is), plus the columns that
queries filter or sort on. `seq` gives a stable creation order for cursor pagination.
"""

import sqlalchemy as sa

metadata = sa.MetaData()
Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _project_column() -> sa.Column:
    return sa.Column("project_id", sa.String(64), nullable=False, server_default="proj_default")


def _doc_table(name: str, *extra: object, owned: bool = False) -> sa.Table:
    """A document table; `owned`: each row belongs to a project (a `project_id` column, and `info["owned"]`, by
    which the store filters it by the current project: store/sql.py `owned`)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        *([_project_column()] if owned else []),
        *extra,
        info={"owned": owned},
    )


assistants = _doc_table("assistants", sa.Index("ix_assistants_project", "project_id", "seq"), owned=True)
threads = _doc_table("threads", sa.Index("ix_threads_project", "project_id", "seq"), owned=True)
messages = _doc_table(
    "messages",
    sa.Column("thread_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64)),
    # tokens.message_text_tokens(data), kept in step with data by Store.insert/update (NULL: not counted yet)
    sa.Column("token_count", sa.Integer),
    # what the row is: `message` (an Assistants message; the only rows the Assistants views read) or a conversation
    # item type (function_call, function_call_output, reasoning, ...), whose `data` is then the item itself
    sa.Column("type", sa.String(32), nullable=False, server_default="message"),
    # a message item created through the Conversations API, as sent (roles, parts and annotations `data` cannot hold)
    sa.Column("item", sa.Text),
    sa.Index("ix_messages_thread", "thread_id", "seq"),
    sa.Index("ix_messages_thread_type", "thread_id", "type", "seq"),
    owned=True,
)
runs = _doc_table(
    "runs",
    sa.Column("thread_id", sa.String(64), nullable=False),
    sa.Column("assistant_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("state", sa.Text, nullable=False, server_default="{}"),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Index("ix_runs_thread_status", "thread_id", "status"),
    sa.Index("ix_runs_status", "status"),
    owned=True,
)
responses = _doc_table(
    "responses",
    sa.Column("thread_id", sa.String(64)),  # the conversation (a threads row), if any
    sa.Column("previous_response_id", sa.String(64)),
    sa.Column("input", sa.Text, nullable=False, server_default="[]"),  # this request's input items, with ids
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("state", sa.Text, nullable=False, server_default="{}"),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.Float),
    sa.Index("ix_responses_thread_status", "thread_id", "status"),
    sa.Index("ix_responses_status", "status"),
    owned=True,
)
containers = _doc_table(
    "containers",
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # running / expired
    sa.Column("expires_at", sa.BigInteger),  # clock seconds: last_active_at + expires_after.minutes
    sa.Index("ix_containers_status_expires", "status", "expires_at"),
    sa.Index("ix_containers_project", "project_id", "seq"),
    owned=True,
)
container_files = _doc_table(
    "container_files",
    sa.Column("container_id", sa.String(64), nullable=False),
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("blob_key", sa.String(128), nullable=False),
    sa.Index("ix_container_files_container", "container_id", "seq"),
)
# The events of a background response in order (its SSE stream, replayable by GET ?stream=true).
response_events = sa.Table(
    "response_events",
    metadata,
    sa.Column("response_id", sa.String(64), primary_key=True),
    sa.Column("sequence_number", sa.Integer, primary_key=True),
    sa.Column("data", sa.Text, nullable=False),
)
run_steps = _doc_table(
    "run_steps",
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("thread_id", sa.String(64), nullable=False),
    sa.Index("ix_run_steps_run", "run_id", "seq"),
    owned=True,
)
files = _doc_table(
    "files",
    sa.Column("purpose", sa.String(32), nullable=False),
    sa.Column("blob_key", sa.String(128), nullable=False),
    sa.Index("ix_files_purpose", "purpose", "seq"),
    sa.Index("ix_files_project", "project_id", "seq"),
    sa.Index("ix_files_project_purpose", "project_id", "purpose", "seq"),
    owned=True,
)
uploads = _doc_table(
    "uploads",
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    owned=True,
)
upload_parts = _doc_table(
    "upload_parts",
    sa.Column("upload_id", sa.String(64), nullable=False),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("blob_key", sa.String(128), nullable=False),
    sa.Index("ix_upload_parts_upload", "upload_id"),
)
vector_stores = _doc_table(
    "vector_stores",
    sa.Column("expires_at", sa.BigInteger),
    sa.Index("ix_vector_stores_project", "project_id", "seq"),
    owned=True,
)
vector_store_files = sa.Table(
    "vector_store_files",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("vector_store_id", sa.String(64), nullable=False),
    sa.Column("file_id", sa.String(64), nullable=False),
    sa.Column("batch_id", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("claim_owner", sa.String(64)),  # the process ingesting the file (vector_stores.Ingestor)
    sa.Column("claim_until", sa.Float),
    _project_column(),
    sa.UniqueConstraint("vector_store_id", "file_id", name="uq_vector_store_files"),
    sa.Index("ix_vector_store_files_file", "file_id"),
    sa.Index("ix_vector_store_files_batch", "batch_id"),
    sa.Index("ix_vector_store_files_status", "status", "seq"),
    info={"owned": True},
)
file_batches = _doc_table(
    "file_batches",
    sa.Column("vector_store_id", sa.String(64), nullable=False),
    owned=True,
)
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("key_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("name", sa.String(256)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
# One row per billable happening: a model call (`completion`: one per turn), embedding of chunks (`embedding`),
# file_search calls (`file_search_call`), a code-interpreter session opened (`code_interpreter_session`), a vector
# store's size on a day (`vector_store_bytes`). Aggregated by store/usage.py into OpenAI's usage buckets.
usage_records = sa.Table(
    "usage_records",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),  # Unix seconds (the runtime's clock)
    sa.Column("project_id", sa.String(64), nullable=False, server_default="proj_default"),
    sa.Column("api_key_id", sa.String(64)),  # key_<sha256 prefix> of the key that made the call; never the key
    sa.Column("model", sa.String(256)),
    sa.Column("provider", sa.String(64)),
    sa.Column("assistant_id", sa.String(64)),
    sa.Column("thread_id", sa.String(64)),
    sa.Column("run_id", sa.String(64)),
    sa.Column("response_id", sa.String(64)),  # a Responses API response's usage (model calls, tools)
    sa.Column("container_id", sa.String(64)),  # a response's code-interpreter container (its sessions)
    sa.Column("vector_store_id", sa.String(64)),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cached_input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("quantity", sa.BigInteger, nullable=False, server_default="1"),  # requests, calls, sessions, bytes
    sa.Column("latency_ms", sa.Integer),
    sa.Column("data", sa.Text),  # JSON extras: the prompt's parts (history, retrieved chunks, ...), `estimated`
    sa.Index("ix_usage_records_kind_time", "kind", "created_at"),
    sa.Index("ix_usage_records_run", "run_id"),
    sa.Index("ix_usage_records_thread_kind", "thread_id", "kind", "created_at"),
    sa.Index("ix_usage_records_project_time", "project_id", "created_at"),  # 0011: a project's spend this period
    sa.Index("ix_usage_records_response", "response_id"),
    sa.Index("ix_usage_records_container_kind", "container_id", "kind", "created_at"),
)
admin_api_keys = sa.Table(
    "admin_api_keys",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("name", sa.String(256)),
    sa.Column("redacted_value", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("last_used_at", sa.BigInteger),
)

# Projects and their keys (migration 0009; store/projects.py) and the audit log (store/audit.py).
projects = sa.Table(
    "projects",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(256)),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("archived_at", sa.BigInteger),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
)
project_service_accounts = sa.Table(
    "project_service_accounts",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_project_service_accounts_project", "project_id", "seq"),
)
project_api_keys = sa.Table(
    "project_api_keys",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("project_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("redacted_value", sa.String(64), nullable=False),
    sa.Column("owner_type", sa.String(32), nullable=False),  # service_account | user
    sa.Column("owner_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("last_used_at", sa.BigInteger),
    sa.Index("ix_project_api_keys_project", "project_id", "seq"),
    sa.Index("ix_project_api_keys_owner", "owner_id"),
)
audit_logs = sa.Table(
    "audit_logs",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("effective_at", sa.BigInteger, nullable=False),
    sa.Column("project_id", sa.String(64)),
    sa.Column("actor_id", sa.String(64)),
    sa.Column("resource_id", sa.String(64)),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("ix_audit_logs_effective_at", "effective_at", "seq"),
    sa.Index("ix_audit_logs_project", "project_id", "seq"),
)

# -- limits (migration 0011; store/limits.py) ---------------------------------------------------------------------
# A project's rate limit for one model; a row exists only for a model with some limit set (0 in a field: none).
rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(256), primary_key=True),
    sa.Column("data", sa.Text, nullable=False),  # the ProjectRateLimit fields set (max_*), as JSON
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
# Hard spend limits: `scope` is "organization" or a project id.
spend_limits = sa.Table(
    "spend_limits",
    metadata,
    sa.Column("scope", sa.String(64), primary_key=True),
    sa.Column("threshold_amount", sa.BigInteger, nullable=False),  # cents
    sa.Column("currency", sa.String(8), nullable=False),
    sa.Column("interval", sa.String(16), nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
spend_alerts = sa.Table(
    "spend_alerts",
    metadata,
    sa.Column("seq", Seq, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("scope", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("data", sa.Text, nullable=False),  # the alert object
    sa.Index("ix_spend_alerts_scope", "scope", "seq"),
)
# One row per alert and period it fired in: the primary key makes it fire once per period across processes.
spend_alert_firings = sa.Table(
    "spend_alert_firings",
    metadata,
    sa.Column("alert_id", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(16), primary_key=True),  # "2026-12" (calendar month, UTC)
    sa.Column("fired_at", sa.BigInteger, nullable=False),
    sa.Column("spend_amount", sa.Float, nullable=False),  # cents spent when it fired
)
# Model calls and tokens per project, model and minute (the rate limits' counters; rows only while limits apply).
rate_limit_counts = sa.Table(
    "rate_limit_counts",
    metadata,
    sa.Column("project_id", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(256), primary_key=True),
    sa.Column("minute", sa.BigInteger, primary_key=True),  # Unix seconds of the minute's start
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
)
# One row (id 1): bumped by every change of limits or alerts, so each process's cache knows when to reload (SQLite).
limits_version = sa.Table(
    "limits_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)
