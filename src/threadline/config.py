"""Settings, read from environment variables (THREADLINE_*) with CLI overrides."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("var")
    database_url: str | None = None
    blob_url: str | None = None
    api_keys: list[str] = field(default_factory=list)
    run_expires_after_s: int = 600
    run_workers: int = 32
    poll_after_ms: int = 250
    run_lease_s: float = 30.0
    sandbox_max_sessions: int = 16
    sandbox_idle_s: float = 3600.0
    sandbox_timeout_s: float = 60.0
    sandbox_memory_mb: int = 1024
    sandbox_warm_pool: int = 1
    max_body_bytes: int = 8 * 1024 * 1024
    max_file_bytes: int = 512 * 1024 * 1024
    max_part_bytes: int = 64 * 1024 * 1024
    storage_reserve_mb: float = 16.0
    upload_expires_after_s: int = 3600
    maintenance_s: float = 30.0
    sandbox_max_output_files: int = 20
    workers: int = 0  # `serve` processes on the port; 0: one per core
    # Polls for queued runs and for cancels of the runs a process executes (None: 2 s on PostgreSQL, where NOTIFY
    # delivers both at once and the poll is the fallback; 0.5 s on SQLite)
    queue_poll_s: float | None = None
    cancel_poll_s: float | None = None

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'threadline.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "files"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        s = cls()
        s.host = env.get("THREADLINE_HOST", s.host)
        s.port = int(env.get("THREADLINE_PORT", s.port))
        s.data_dir = Path(env.get("THREADLINE_DATA_DIR", str(s.data_dir)))
        s.database_url = env.get("THREADLINE_DATABASE_URL") or None
        s.blob_url = env.get("THREADLINE_BLOB_URL") or None
        s.api_keys = _env_list(env.get("THREADLINE_API_KEYS"))
        s.run_expires_after_s = int(env.get("THREADLINE_RUN_EXPIRES_AFTER", s.run_expires_after_s))
        s.run_workers = int(env.get("THREADLINE_RUN_WORKERS", s.run_workers))
        s.poll_after_ms = int(env.get("THREADLINE_POLL_AFTER_MS", s.poll_after_ms))
        s.run_lease_s = float(env.get("THREADLINE_RUN_LEASE_S", s.run_lease_s))
        s.sandbox_max_sessions = int(env.get("THREADLINE_SANDBOX_MAX_SESSIONS", s.sandbox_max_sessions))
        s.sandbox_idle_s = float(env.get("THREADLINE_SANDBOX_IDLE_S", s.sandbox_idle_s))
        s.sandbox_timeout_s = float(env.get("THREADLINE_SANDBOX_TIMEOUT_S", s.sandbox_timeout_s))
        s.sandbox_memory_mb = int(env.get("THREADLINE_SANDBOX_MEMORY_MB", s.sandbox_memory_mb))
        s.sandbox_warm_pool = int(env.get("THREADLINE_SANDBOX_WARM_POOL", s.sandbox_warm_pool))
        s.max_body_bytes = int(env.get("THREADLINE_MAX_BODY_BYTES", s.max_body_bytes))
        s.max_file_bytes = int(env.get("THREADLINE_MAX_FILE_BYTES", s.max_file_bytes))
        s.max_part_bytes = int(env.get("THREADLINE_MAX_PART_BYTES", s.max_part_bytes))
        s.storage_reserve_mb = float(env.get("THREADLINE_STORAGE_RESERVE_MB", s.storage_reserve_mb))
        s.upload_expires_after_s = int(env.get("THREADLINE_UPLOAD_EXPIRES_AFTER", s.upload_expires_after_s))
        s.maintenance_s = float(env.get("THREADLINE_MAINTENANCE_S", s.maintenance_s))
        s.sandbox_max_output_files = int(env.get("THREADLINE_SANDBOX_MAX_OUTPUT_FILES", s.sandbox_max_output_files))
        s.workers = int(env.get("THREADLINE_WORKERS", s.workers))
        s.queue_poll_s = float(env["THREADLINE_QUEUE_POLL_S"]) if env.get("THREADLINE_QUEUE_POLL_S") else None
        s.cancel_poll_s = float(env["THREADLINE_CANCEL_POLL_S"]) if env.get("THREADLINE_CANCEL_POLL_S") else None
        return s
